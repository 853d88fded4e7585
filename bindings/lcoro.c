/* lcoro.c: coroutine.yield, running and isyieldable as a script sees them
 * inside a task. A task's own coroutine stands where lua's main chunk
 * would: yielding from it fails as in lua ("attempt to yield from outside a
 * coroutine", catchable by pcall) instead of failing the task, running()
 * reports it as the main thread and isyieldable() is false. Coroutines
 * the script creates behave as usual. C functions, so debug hooks see
 * what they see in lua. init.lua installs them. */
#include "lmoonport.h"

static int task_level(lua_State *L, lua_State *co) {
  struct lmp_task *t = lmp_state(L)->current;
  return t && t->co == co;
}

static int co_yield(lua_State *L) {
  if (task_level(L, L)) {
    lua_pushliteral(L, "attempt to yield from outside a coroutine");
    return lua_error(L);
  }
  return lua_yield(L, lua_gettop(L));
}

static int co_running(lua_State *L) {
  int ismain = lua_pushthread(L);
  lua_pushboolean(L, ismain || task_level(L, L));
  return 2;
}

static int co_isyieldable(lua_State *L) {
  lua_State *co = L;
  if (!lua_isnone(L, 1)) {
    co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
  }
  lua_pushboolean(L, lua_isyieldable(co) && !task_level(L, co));
  return 1;
}

void lmp_open_coro(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg funcs[] = {
    {"co_yield", co_yield}, {"co_running", co_running},
    {"co_isyieldable", co_isyieldable}, {NULL, NULL}};
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
