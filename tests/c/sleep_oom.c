/* sleep_oom.c: out of memory arming mp.sleep's timer for an earlier
 * sleeper (a new block of op records refused) must leave the later
 * sleepers their timer: one left without is never woken (the scheduler
 * cancels it as deadlocked). lqueue.c sleep_arm / sleep_cb. */
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "moonport.h"
#include "mp.h"

static int armed, consumed;

static int refuse(void *ud, size_t size) {
  (void)ud;
  if (armed && size >= 128 * sizeof(struct mp_op)) {
    armed = 0;
    consumed = 1;
    return 1;
  }
  return 0;
}

static int l_arm(lua_State *L) {
  armed = lua_toboolean(L, 1);
  consumed = 0;
  return 0;
}

static int l_consumed(lua_State *L) {
  lua_pushboolean(L, consumed);
  return 1;
}

static const char script[] =
  "local ch, ts = mp.channel(), {}\n"
  "local ok, err = pcall(mp.run, function()\n"
  "  local a = mp.spawn(mp.sleep, 30)\n"
  "  mp.sleep(0)\n"
  "  local refused\n"
  "  for i = 1, 300 do\n"
  "    ts[i] = mp.spawn(mp.timeout, 10, ch.recv, ch)\n"
  "    mp.sleep(0)\n"
  "    arm(true)\n"
  "    local ok = pcall(mp.sleep, 0.001)\n"
  "    local hit = consumed()\n"
  "    arm(false)\n"
  "    if hit then refused = i break end\n"
  "  end\n"
  "  assert(refused, 'no block of op records was refused')\n"
  "  ch:close()\n"
  "  for _, t in ipairs(ts) do t:join() end\n"
  "  for _ = 1, 3 do mp.sleep(0) end\n"
  "  assert(mp.debug.stats().timers == 1, 'the sleeper lost its timer')\n"
  "  a:cancel()\n"
  "  assert(select(2, a:join()) == 'cancelled')\n"
  "end)\n"
  "if not ok then print('FAIL: ' .. tostring(err)) os.exit(1) end\n"
  "print('ok')\n";

int main(void) {
  struct mp_loop *loop;
  if (mp_loop_new(&loop, NULL) < 0) return 2;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  moonport_open(L, loop);
  lua_setglobal(L, "mp");
  lua_register(L, "arm", l_arm);
  lua_register(L, "consumed", l_consumed);
  mp_loop_set_alloc_fail(loop, refuse, NULL);
  int r = luaL_dostring(L, script);
  if (r != LUA_OK) { printf("FAIL: %s\n", lua_tostring(L, -1)); return 1; }
  lua_close(L);
  mp_loop_drain(loop);
  mp_loop_close(loop);
  return 0;
}
