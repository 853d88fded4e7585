/* lchan.c: the C half of channels (init.lua): a task parks with a
 * cleanup (run if its coroutine is abandoned, so the channel takes its
 * waiter back), another wakes it with the value handed over in Lua. */
#include "lchan.h"

static int nothing_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L, (void)status, (void)ctx;
  return 0;
}

/* core.park([cleanup]): cleanup runs if the coroutine that parks is
 * abandoned (see l_abandon), so a channel can take its waiter back. */
static int l_park(lua_State *L) {
  lua_settop(L, 1);
  if (lua_isnil(L, 1)) return lmp_park(L, nothing_k, "park");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  return lmp_park_cleanup(L, nothing_k, "park");
}

/* core.wait(leave, a, b): parks as core.park(function() leave(a, b) end)
 * would, allocating nothing, and returns the error park would raise (nil
 * when woken): a waiter takes its record back without a pcall. */
static int l_wait(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  /* the name errors give (a constant of the caller's: it outlives the
   * settop that drops it) */
  return lmp_wait(L, luaL_optstring(L, 4, "park"));
}

static int l_wake(lua_State *L) {
  lmp_wake(lmp_state(L), luaL_checkudata(L, 1, LMP_TASK));
  return 0;
}

/* core.waiting(task[, co]): is task suspended on co's park (by default
 * its own coroutine's), so that what is
 * handed to co's waiter will be returned? Not if a resume that bypasses
 * the coroutine wrappers (one saved before moonport was loaded, or a C
 * library's lua_resume) swallowed co's suspension: the task ran on. The
 * main context parks without yielding: always. */
static int l_waiting(lua_State *L) {
  struct lmp_task *t = luaL_checkudata(L, 1, LMP_TASK);
  lua_State *co = lua_isnoneornil(L, 2) ? t->co : lua_tothread(L, 2);
  lua_pushboolean(L, t->is_main || (t->wait && lmp_wait_co(t) == co &&
                                    t != lmp_state(L)->current));
  return 1;
}

/* core.self(): the running task and, if the caller is a coroutine inside
 * it rather than its own, that coroutine (a waiter's record keeps it only
 * then: a smaller table). */
static int l_self(lua_State *L) {
  struct lmp_task *t = lmp_self(lmp_state(L));
  lmp_push_task(L, lmp_state(L), t);
  if (t->is_main || L == t->co) return 1;
  lua_pushthread(L);
  return 2;
}

void lmp_open_chan(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg funcs[] = {
    {"park", l_park}, {"wait", l_wait}, {"wake", l_wake},
    {"waiting", l_waiting},
    {"self", l_self}, {NULL, NULL}};
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
