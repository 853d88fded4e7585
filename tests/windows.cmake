# The tests of the Windows build, run under wine64 through
# CMAKE_CROSSCOMPILING_EMULATOR (docs/windows.md). Included by
# tests/CMakeLists.txt in place of the Unix tests.
#
# Every test needs the wine fixture (a persistent wineserver and wine's
# services started outside ctest's pipes) and has a timeout; winedbg is
# disabled so that a crash fails with its exception code, never 0.
set(MP_WINE_ENV "WINEDEBUG=-all;WINEDLLOVERRIDES=mscoree,mshtml,winedbg.exe=d")
if(CMAKE_CROSSCOMPILING_EMULATOR MATCHES "wine")
  get_filename_component(_wine_dir "${CMAKE_CROSSCOMPILING_EMULATOR}"
                         DIRECTORY)
  find_program(MP_WINESERVER NAMES wineserver wineserver64
               PATHS ${_wine_dir} /usr/lib/wine
               NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  set(_fix ${CMAKE_SOURCE_DIR}/cmake/wine-fixture.sh)
  add_test(NAME wine_setup COMMAND sh ${_fix} setup
           ${CMAKE_CROSSCOMPILING_EMULATOR} ${MP_WINESERVER})
  add_test(NAME wine_cleanup COMMAND sh ${_fix} cleanup
           ${CMAKE_CROSSCOMPILING_EMULATOR} ${MP_WINESERVER})
  set_tests_properties(wine_setup PROPERTIES FIXTURES_SETUP wine
                       ENVIRONMENT "${MP_WINE_ENV}" TIMEOUT 120)
  set_tests_properties(wine_cleanup PROPERTIES FIXTURES_CLEANUP wine)
endif()

# mp_win_test(NAME TIMEOUT COMMAND...): a test under wine.
function(mp_win_test name timeout)
  add_test(NAME ${name} COMMAND ${ARGN})
  set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED wine
    TIMEOUT ${timeout}
    ENVIRONMENT "${MP_WINE_ENV};MP_EXPECT_BACKEND=iocp;MP_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

# The command's option parsing (a pure function): the first exe under
# wine, which shows the toolchain and the fixture work.
add_executable(args_test c/args.c ${CMAKE_SOURCE_DIR}/cmd/margs.c)
target_include_directories(args_test PRIVATE ${CMAKE_SOURCE_DIR}/cmd)
mp_win_test(args 60 args_test)

# Everything below needs moonport.exe and the whole runtime (the IOCP
# backend, sockets, processes).
if(MP_NO_EXE)
  return()
endif()

# C unit tests of the core (runner_win.c): those of test-list-win.h, each
# in its own process with a timeout, crashes reported as such.
file(GLOB MP_WIN_C_TESTS CONFIGURE_DEPENDS c/test-iocp*.c
     c/test-win-*.c) # W3: test-win-proc.c
add_executable(mp_tests c/runner_win.c c/test-loop.c c/test-timer.c
               c/test-post.c c/test-net.c ${MP_WIN_C_TESTS})
target_link_libraries(mp_tests PRIVATE mp_runtime pthread)
mp_win_test(c 300 mp_tests)

# The busted specs, run by moonport.exe with tests/win/busted.lua (busted
# itself loads Linux C modules); what Windows cannot do is skipped by name
# with its reason (tests/win/skip.lua), never silently.
set(MP_WIN_LUA_PATH
    "${CMAKE_SOURCE_DIR}/tests/win/?.lua\\;${CMAKE_SOURCE_DIR}/tests/lua/?.lua\\;\\;")
file(GLOB MP_SPECS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/lua/*_spec.lua)
foreach(spec ${MP_SPECS})
  get_filename_component(name ${spec} NAME_WE)
  mp_win_test(lua-${name} 300 moonport -l busted ${spec})
  set_property(TEST lua-${name} APPEND PROPERTY ENVIRONMENT
    "LUA_PATH=${MP_WIN_LUA_PATH};MOONPORT_LEAK_CHECK=1;MOONPORT=$<TARGET_FILE:moonport>")
  set_tests_properties(lua-${name} PROPERTIES
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/lua)
endforeach()

# The command end to end under wine (tests/win/cli.sh): run by bash on
# the host, which starts moonport.exe through wine for each case.
add_test(NAME e2e-cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/win/cli.sh
         ${CMAKE_CROSSCOMPILING_EMULATOR} $<TARGET_FILE:moonport>)
set_tests_properties(e2e-cli PROPERTIES FIXTURES_REQUIRED wine TIMEOUT 300
                     ENVIRONMENT "${MP_WINE_ENV}")
