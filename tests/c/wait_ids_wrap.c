/* wait_ids_wrap.c: a task's suspension id is 32 bits (lcore.h: the
 * record stays small) and wraps after 2^32 suspensions of the state. The
 * state's counter is set just below the wrap, then every kind of
 * suspension runs across it: none may get id 0 ("no suspension": its
 * continuation would raise "operation abandoned"), sleepers still wake
 * in order, and a coroutine resumed by another task is still told apart
 * from the pending suspension. lcore.c new_wait. */
#include <stdio.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lcore.h"
#include "moonport.h"

/* near_wrap(): the next suspension ids are the last ones below 2^32. */
static int l_near_wrap(lua_State *L) {
  lmp_getstate(L)->lastwait = UINT32_MAX - 40;
  return 0;
}

static int l_wrapped(lua_State *L) {
  lua_pushboolean(L, lmp_getstate(L)->lastwait > UINT32_MAX);
  return 1;
}

static const char script[] =
  "local ok, err = pcall(mp.run, function()\n"
  "  -- every id from 2^32 - 40 on, in a row: one of them wraps\n"
  "  near_wrap()\n"
  "  for _ = 1, 100 do mp.sleep(0) end\n"
  "  assert(wrapped(), 'the ids did not wrap')\n"
  "  -- sleepers started on both sides of the wrap wake in order\n"
  "  near_wrap()\n"
  "  local order, ts = {}, {}\n"
  "  for i = 1, 80 do\n"
  "    ts[i] = mp.spawn(function()\n"
  "      mp.sleep(0.05)\n"
  "      order[#order + 1] = i\n"
  "    end)\n"
  "  end\n"
  "  for i = 1, 80 do ts[i]:join() end\n"
  "  assert(wrapped(), 'the sleepers did not wrap')\n"
  "  for i = 1, 80 do\n"
  "    if order[i] ~= i then\n"
  "      error('sleeper ' .. tostring(order[i]) .. ' woke ' .. i .. 'th')\n"
  "    end\n"
  "  end\n"
  "  -- parks, joins, timeouts and a stale coroutine across the wrap\n"
  "  near_wrap()\n"
  "  local ch = mp.channel()\n"
  "  local p = mp.spawn(function()\n"
  "    for i = 1, 60 do ch:send(i) end\n"
  "  end)\n"
  "  for i = 1, 60 do assert(ch:recv() == i) end\n"
  "  assert(p:join())\n"
  "  assert(mp.timeout(0.001, ch.recv, ch) == false)\n"
  "  -- task a parks in co; task b resumes co: b is refused, a goes on\n"
  "  local co = coroutine.create(function() return ch:recv() end)\n"
  "  local a = mp.spawn(function() return coroutine.resume(co) end)\n"
  "  mp.sleep(0)\n"
  "  local b = mp.spawn(function() return coroutine.resume(co) end)\n"
  "  local _, bok, berr = b:join()\n"
  "  assert(not bok and berr:find('operation abandoned'), berr)\n"
  "  local r = table.pack(mp.timeout(5, a.join, a))\n"
  "  assert(r[1] == true and r[2] == true and r[3] == false,\n"
  "         'the first task did not go on')\n"
  "  assert(wrapped(), 'the parks did not wrap')\n"
  "end)\n"
  "if not ok then print('FAIL: ' .. tostring(err)) os.exit(1) end\n"
  "print('ok')\n";

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  moonport_open(L, NULL);
  lua_setglobal(L, "mp");
  lua_register(L, "near_wrap", l_near_wrap);
  lua_register(L, "wrapped", l_wrapped);
  int r = luaL_dostring(L, script);
  if (r != LUA_OK) { printf("FAIL: %s\n", lua_tostring(L, -1)); return 1; }
  lua_close(L);
  return 0;
}
