-- LuaRocks: `luarocks --lua-version 5.4 make` builds the Lua module with
-- CMake (only the module: MP_LUA_MODULE_ONLY) into the tree. The version
-- must match bindings/moonport.h (tests/e2e/luarocks.sh checks it).
rockspec_format = "3.0"
package = "moonport"
version = "0.1.0-1"
source = {
   -- this checkout, for `luarocks make`; a rockspec published to a rocks
   -- server names the repository and its tag here
   url = "git+file://.",
}
description = {
   summary = "Lua 5.4 runtime for asynchronous IO on a completion-port loop",
   detailed = [[
      IO calls suspend the calling task (a coroutine) until their
      completion arrives, on io_uring or epoll with a threadpool.
   ]],
   license = "MIT",
}
supported_platforms = { "linux" }
dependencies = {
   "lua >= 5.4, < 5.5",
}
build = {
   type = "cmake",
   variables = {
      MP_LUA_MODULE_ONLY = "ON",
      MP_INSTALL_CMOD_DIR = "$(LIBDIR)",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      CMAKE_BUILD_TYPE = "Release",
      LUA_INCDIR = "$(LUA_INCDIR)",
   },
}
