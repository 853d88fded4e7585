/* host.c: a host built against an installed moonport with nothing but
 * `pkg-config --cflags --libs moonport` (tests/install/install.sh). It
 * checks the version macros against the library and against argv[1] (the
 * .pc file's version), registers the module the way a host does, and runs
 * tasks that sleep, read argv[2] on the loop, run a threadpool job and
 * pass values over a channel, then checks what they returned.
 * Prints "ok" lines and exits 0, or says what failed and exits 1. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include <moonport.h>

static const char script[] =
  "local path = ...\n"
  "local mp = require 'moonport'\n"
  "local ch = mp.channel()\n"
  "mp.spawn(function()\n"
  "  mp.sleep(0.01)\n"
  "  ch:send(assert(mp.fs.readfile(path)))\n"
  "  ch:send(mp.work(function(a, b) return a * b end, 6, 7))\n"
  "  ch:close()\n"
  "end)\n"
  "local got = {}\n"
  "for v in function() return ch:recv() end do got[#got + 1] = v end\n"
  "result = #got .. ' ' .. #got[1] .. ' ' .. got[2] .. ' ' .. mp.backend()\n";

static int fail(const char *what) {
  printf("not ok - %s\n", what);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 3) return fail("usage: host VERSION FILE");
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", MOONPORT_VERSION_MAJOR,
           MOONPORT_VERSION_MINOR, MOONPORT_VERSION_PATCH);
  if (strcmp(MOONPORT_VERSION, want) != 0) return fail("MOONPORT_VERSION");
  if (MOONPORT_VERSION_NUM != MOONPORT_VERSION_MAJOR * 10000 +
      MOONPORT_VERSION_MINOR * 100 + MOONPORT_VERSION_PATCH)
    return fail("MOONPORT_VERSION_NUM");
  if (strcmp(moonport_version(), MOONPORT_VERSION) != 0)
    return fail("moonport_version() is the header's");
  if (strcmp(argv[1], MOONPORT_VERSION) != 0)
    return fail("moonport.pc's version is the header's");
  printf("ok - version %s\n", moonport_version());

  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  /* require "moonport" works once the module is registered. */
  luaL_requiref(L, "moonport", luaopen_moonport, 0);
  lua_pop(L, 1);
  if (!moonport_loop(L)) return fail("moonport_loop");
  if (luaL_loadstring(L, script) != LUA_OK) return fail(lua_tostring(L, -1));
  lua_pushstring(L, argv[2]);
  lua_insert(L, -2);
  moonport_spawn(L, 1);
  lua_pop(L, 1);
  int alive = moonport_run(L, MP_RUN_DEFAULT);
  if (alive != 0) return fail(alive < 0 ? lua_tostring(L, -1) : "alive");
  if (moonport_unhandled(L)) return fail("a task failed");
  lua_getglobal(L, "result");
  printf("ok - tasks ran: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1)
                                                     : "(no result)");
  lua_close(L);
  return 0;
}
