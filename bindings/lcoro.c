/* lcoro.c: coroutine.yield, running and isyieldable as a script sees them
 * inside a task. A task's own coroutine stands where lua's main chunk
 * would: yielding from it fails as in lua ("attempt to yield from outside a
 * coroutine", catchable by pcall) instead of failing the task, running()
 * reports it as the main thread and isyieldable() is false. Coroutines
 * the script creates behave as usual. C functions, so debug hooks see
 * what they see in lua. init.lua installs them. */
#include "lcoro.h"

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

/* What lua's coroutine.close says of co: NULL if it may be closed. */
static const char *unclosable(lua_State *L, lua_State *co) {
  lua_Debug ar;
  if (co == L) return "running";
  if (lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar)) return "normal";
  return NULL; /* suspended, not started, dead or failed */
}

/* coroutine.close as lua's, but a coroutine suspended in moonport first
 * gives back what it waited on (ltask.c lmp_release). From init.lua's
 * pass: upvalue 2 maps a coroutine passing a suspension up to the one
 * below it, upvalue 3 holds the one at the end of such a chain (where the
 * suspension came from). */
static int co_close(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_State *co = lua_tothread(L, 1);
  const char *state = unclosable(L, co);
  /* a task's coroutine is its main chunk, which lua cannot close either;
   * it also keeps the task's results or error for join */
  if (!state && lmp_is_task_co(L, lmp_state(L), 1)) state = "normal";
  if (state) return luaL_error(L, "cannot close a %s coroutine", state);
  lua_settop(L, 1);
  if (lua_status(co) == LUA_YIELD) {
    lua_pushvalue(L, 1); /* walk down the chain: [co, c] */
    for (;;) {
      lua_pushvalue(L, 2);
      if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TTHREAD) break;
      lua_replace(L, 2);
    }
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(3)) != LUA_TNIL)
      lmp_release(L, lmp_state(L), lua_tothread(L, 2));
    lua_settop(L, 1);
  }
#if LUA_VERSION_RELEASE_NUM >= 50406
  int st = lua_closethread(co, L);
#else
  int st = lua_resetthread(co);
#endif
  lua_pushboolean(L, st == LUA_OK);
  if (st == LUA_OK) return 1;
  lua_xmove(co, L, 1); /* the error of a __close handler */
  return 2;
}

/* core.co_unresumable(co): whether coroutine.resume must refuse co as
 * lua refuses its main thread: a task's coroutine not started or ended.
 * Lua would take the task at its index 1 and the results above for a
 * body to call, and the error that left would let close reset what join
 * returns. Suspended, it fails where it waits ("operation abandoned"). */
static int co_unresumable(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  lua_pushboolean(L, co && lua_status(co) == LUA_OK &&
                         lmp_is_task_co(L, lmp_state(L), 1));
  return 1;
}

/* core.co_close(via, parked): coroutine.close over init.lua's tables. */
static int make_close(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, co_close, 3);
  return 1;
}

void lmp_open_coro(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg funcs[] = {
    {"co_yield", co_yield}, {"co_running", co_running},
    {"co_isyieldable", co_isyieldable}, {"co_close", make_close},
    {"co_unresumable", co_unresumable},
    {NULL, NULL}};
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
