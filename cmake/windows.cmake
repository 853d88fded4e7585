# The Windows build (docs/windows.md), cross-compiled with mingw-w64
# (cmake/mingw-w64-x86_64.cmake) and tested under wine: `make
# test-windows`. Included by CMakeLists.txt in place of the Unix targets.
# Lua is a static library built from Debian's source package (fetched by
# scripts/lua-src.sh into the build tree); everything links statically,
# so moonport.exe needs no DLL but the system's.
if(NOT MP_LUA_SRC_DIR)
  execute_process(
    COMMAND sh ${CMAKE_SOURCE_DIR}/scripts/lua-src.sh
            ${CMAKE_BINARY_DIR}/lua-src
    OUTPUT_VARIABLE MP_LUA_SRC_DIR OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE r)
  if(NOT r EQUAL 0)
    message(FATAL_ERROR "no Lua sources (scripts/lua-src.sh failed)")
  endif()
  set(MP_LUA_SRC_DIR ${MP_LUA_SRC_DIR} CACHE PATH "Lua 5.4's src/")
endif()
file(GLOB MP_LUA_SOURCES ${MP_LUA_SRC_DIR}/*.c)
list(FILTER MP_LUA_SOURCES EXCLUDE REGEX "/(lua|luac)\\.c$")
add_library(lua54 STATIC ${MP_LUA_SOURCES})
target_include_directories(lua54 PUBLIC ${MP_LUA_SRC_DIR})
target_compile_definitions(lua54 PUBLIC LUA_COMPAT_5_3)
target_compile_options(lua54 PRIVATE -w) # not our code; not our warnings
set(LUA_INCLUDE_DIRS ${MP_LUA_SRC_DIR})

# C99 printf (%zu, %lld) in our code, whatever the C runtime has.
add_compile_definitions(__USE_MINGW_ANSI_STDIO=1)
add_link_options(-static)

# The core: the portable files, then every Windows one (W2's IOCP backend
# and files, W3's sockets and processes join as they appear).
file(GLOB MP_WIN_SOURCES CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/runtime/*_win.c
     ${CMAKE_SOURCE_DIR}/runtime/backend_iocp.c)
add_library(mp_runtime STATIC
  runtime/loop.c runtime/op.c runtime/timer.c runtime/threadpool.c
  runtime/error.c runtime/resolve.c runtime/addr.c runtime/watchq.c ${MP_WIN_SOURCES})
target_include_directories(mp_runtime PUBLIC runtime)
target_link_libraries(mp_runtime PUBLIC ws2_32 mswsock)

file(GLOB MP_LUA_MODULES CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/lua/moonport/*.lua)
string(REPLACE ";" "|" MP_LUA_MODULE_ARG "${MP_LUA_MODULES}")
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/lmp_embedded.c
  COMMAND ${CMAKE_COMMAND} -DOUT=${CMAKE_BINARY_DIR}/lmp_embedded.c
          "-DFILES=${MP_LUA_MODULE_ARG}" -P ${CMAKE_SOURCE_DIR}/scripts/embed.cmake
  DEPENDS ${MP_LUA_MODULES} ${CMAKE_SOURCE_DIR}/scripts/embed.cmake
  VERBATIM)
file(GLOB MP_BINDING_SOURCES CONFIGURE_DEPENDS bindings/l*.c)
# No mp.http (no libhttp-parser for Windows) and no TLS (ltls.c without
# MP_WITH_TLS: ENOSYS) yet.
list(FILTER MP_BINDING_SOURCES EXCLUDE REGEX "/lhttp\\.c$")
add_library(mp_lua STATIC ${MP_BINDING_SOURCES}
            ${CMAKE_BINARY_DIR}/lmp_embedded.c)
target_include_directories(mp_lua PUBLIC bindings)
target_link_libraries(mp_lua PUBLIC mp_runtime lua54)

# moonport.exe; its REPL reads plain lines (no readline on Windows).
# Until the IOCP backend has landed only the libraries build.
if(NOT EXISTS ${CMAKE_SOURCE_DIR}/runtime/backend_iocp.c)
  message(STATUS "no runtime/backend_iocp.c yet: no moonport.exe")
  set(MP_NO_EXE ON)
endif()
if(NOT MP_NO_EXE)
add_executable(moonport cmd/main.c cmd/margs.c)
target_include_directories(moonport PRIVATE cmd)
target_link_libraries(moonport PRIVATE mp_lua)
set_target_properties(moonport PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
endif()

if(MP_BUILD_TESTS)
  enable_testing()
  add_subdirectory(tests)
endif()
