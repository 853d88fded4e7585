/* ltask.c: the task object (join, cancel, done) and the core table's
 * task functions: spawn, current, sleep, now, run, backend. The scheduler
 * under them is lsched.c, the await primitive lcore.c. */
#include <string.h>

#include "ltask.h"

static struct lmp_task *check_task(lua_State *L, int i) {
  return luaL_checkudata(L, i, LMP_TASK);
}

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lmp_spawn(L, lmp_state(L), 1, lua_gettop(L) - 1);
  return 1;
}

/* Copies a finished task's outcome: true, results... or false, err. */
static int push_outcome(lua_State *L, struct lmp_state *S,
                        struct lmp_task *t) {
  lua_State *co = t->co;
  int nres = lua_gettop(co) - 1; /* above the task itself (lmp_spawn) */
  if (!t->joined) {
    t->joined = 1;
    if (t->reported) S->unhandled--; /* handled after all */
  }
  luaL_checkstack(L, nres + 1, "too many results");
  luaL_checkstack(co, nres, "too many results");
  lua_pushboolean(L, !t->failed);
  for (int i = 2; i <= nres + 1; i++) lua_pushvalue(co, i);
  lua_xmove(co, L, nres);
  return nres + 1;
}

/* Pushes waiters[t] for the task t at 1 (made if missing), above the
 * waiters table itself. */
static void push_joiners(lua_State *L, struct lmp_state *S) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->waiters);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
}

/* task_join checked the task at 1. */
static int join_k(lua_State *L, int status, lua_KContext ctx) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lua_touserdata(L, 1);
  (void)ctx;
  (void)status;
  if (t->status == LMP_DONE) return push_outcome(L, S, t);
  if (!lmp_self(S)->is_main) { /* on t's joiner list: no memory */
    t->joined_by = 1;
    return lmp_park_join(L, join_k, "join");
  }
  /* The main context does not yield (a finalizer may nest another
   * join): waiters[t] = { ..., main } */
  push_joiners(L, S);
  t->has_joiners = 1; /* before the append, which may run out of memory */
  lmp_push_task(L, S, lmp_self(S));
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  lua_settop(L, 1);
  return lmp_park(L, join_k, "join");
}

/* core.join_watch(t): the caller is woken (lmp_wake) when t ends, as a
 * joiner is, without parking here (mp.select parks on several things at
 * once); core.join_unwatch(t, watcher) takes that back. While watched, a
 * failure of t is not reported: the select that returns it handles it. */
static int l_join_watch(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = check_task(L, 1);
  if (t->status == LMP_DONE) return 0;
  lua_settop(L, 1);
  push_joiners(L, S);
  t->has_joiners = 1;
  lmp_push_task(L, S, lmp_self(S));
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  return 0;
}

static int l_join_unwatch(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = check_task(L, 1);
  struct lmp_task *self = check_task(L, 2);
  lua_settop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->waiters);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) != LUA_TTABLE) return 0; /* t ended: woken all */
  lua_Integer n = luaL_len(L, -1), i = n;
  while (i >= 1) { /* the last entry of self: the one watch added */
    lua_rawgeti(L, -1, i);
    int me = lua_touserdata(L, -1) == self;
    lua_pop(L, 1);
    if (me) break;
    i--;
  }
  if (i < 1) return 0;
  for (; i < n; i++) {
    lua_rawgeti(L, -1, i + 1);
    lua_rawseti(L, -2, i);
  }
  lua_pushnil(L);
  lua_rawseti(L, -2, n);
  if (n == 1) { /* nobody else joins t */
    t->has_joiners = 0;
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, -4);
  }
  return 0;
}

static int task_join(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = check_task(L, 1);
  lua_settop(L, 1);
  if (t == lmp_self(S)) return luaL_error(L, "join: a task cannot join itself");
  return join_k(L, LUA_OK, 0);
}

static int task_cancel(lua_State *L) {
  lmp_task_cancel(lmp_state(L), check_task(L, 1));
  return 0;
}

static int task_done(lua_State *L) {
  lua_pushboolean(L, check_task(L, 1)->status == LMP_DONE);
  return 1;
}

static int task_tostring(lua_State *L) {
  struct lmp_task *t = check_task(L, 1);
  static const char *const names[] = {"new", "ready", "running", "waiting",
                                      "waiting", "done"};
  lua_pushfstring(L, "task (%s): %p", t->failed ? "failed" : names[t->status],
                  (void *)t);
  return 1;
}

static int l_current(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  if (S->current) lmp_push_task(L, S, S->current);
  else lua_pushnil(L);
  return 1;
}

static int l_sleep(lua_State *L) {
  luaL_checktype(L, 1, LUA_TNUMBER); /* "1" is a mistake, not a second */
  lua_Number s = lua_tonumber(L, 1);
  luaL_argcheck(L, s >= 0, 1, "non-negative number expected");
  if (s == 0) return lmp_yield(L, "sleep"); /* to the other tasks */
  /* Up to ~146 years; math.huge sleeps until cancelled. */
  int64_t ns = s >= 4.6e9 ? INT64_C(1) << 62 : (int64_t)(s * 1e9);
  return lmp_sleep(L, ns, "sleep");
}

static int l_now(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  mp_loop_update_time(S->loop);
  lua_pushnumber(L, (lua_Number)mp_loop_now(S->loop) / 1e9);
  return 1;
}

static int l_run(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = NULL;
  int base = lua_gettop(L);
  if (S->current) return luaL_error(L, "run: cannot be called inside a task");
  if (base > 0) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    t = lmp_spawn(L, S, 1, base - 1);
    t->watched = 1; /* run reports its failure by raising it */
  }
  if (lmp_run_all(S) < 0) {
    lmp_push_deadlock(L, S);
    return lua_error(L);
  }
  if (!t) return 0;
  int n = push_outcome(L, S, t);
  if (t->failed) return lua_error(L);
  return n - 1;
}

static int l_backend(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  lua_pushstring(L, mp_loop_backend(S->loop));
  const char *why = mp_loop_fallback_reason(S->loop);
  if (why) {
    lua_pushstring(L, why);
    return 2;
  }
  return 1;
}

void lmp_open_task(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg methods[] = {
    {"join", task_join}, {"cancel", task_cancel}, {"done", task_done},
    {NULL, NULL}};
  static const luaL_Reg metamethods[] = {
    {"__tostring", task_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"spawn", l_spawn}, {"current", l_current}, {"sleep", l_sleep},
    {"now", l_now}, {"run", l_run}, {"backend", l_backend},
    {"join_watch", l_join_watch}, {"join_unwatch", l_join_unwatch},
    {NULL, NULL}};
  lmp_new_class(L, S, LMP_TASK, metamethods, methods);
  lua_pop(L, 1);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
