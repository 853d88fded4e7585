/* lanchor.c: the task records' lifetime (lanchor.h): made, anchored
 * while their task lives (found by its coroutine), let go when it ends;
 * and lmp_step, which retries a letting go that ran out of memory. Below
 * lcore.c: it calls nothing there (lcore.h draws the layers). */
#include <string.h>

#include <lauxlib.h>

#include "lanchor.h"

/* Pushes co (a live thread of L's state, in any status) onto L. */
static void push_thread(lua_State *L, lua_State *co) {
  if (co == L) {
    lua_pushthread(L);
    return;
  }
  if (!lua_checkstack(co, 1)) luaL_error(L, "not enough memory");
  lua_pushthread(co);
  lua_xmove(co, L, 1);
}

/* A live task is found by its coroutine in the anchor table (the main
 * context, which has none, by its address). */
void lmp_push_task(lua_State *L, struct lmp_state *S, struct lmp_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->anchors);
  if (t->is_main) {
    lua_rawgetp(L, -1, t);
  } else {
    push_thread(L, t->co);
    lua_rawget(L, -2);
  }
  lua_remove(L, -2);
}

static void retry_unanchor(struct lmp_state *S);

int lmp_step(struct lmp_state *S, int may_wait) {
  if (S->undone) retry_unanchor(S);
  if (S->ready_head) {
    S->run_ready(S);
    mp_loop_run(S->loop, MP_RUN_NOWAIT);
    return 1;
  }
  if (S->before_wait) S->before_wait(S); /* nothing runs until a turn */
  if (mp_loop_inflight(S->loop) == 0) {
    /* Posts from other threads count only once the loop has taken them:
     * take them (their callbacks may ready a task or start an op) before
     * answering that nothing can run, or they would never arrive. */
    mp_loop_run(S->loop, MP_RUN_NOWAIT);
    return S->ready_head || mp_loop_inflight(S->loop) > 0;
  }
  mp_loop_run(S->loop, may_wait ? MP_RUN_ONCE : MP_RUN_NOWAIT);
  return 1;
}

struct lmp_task *lmp_new_task(lua_State *L, struct lmp_state *S) {
  struct lmp_task *t = lua_newuserdatauv(L, sizeof *t, 0);
  (void)S;
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, LMP_TASK);
  return t;
}

/* anchors[co] = task: both live while the task does (co's stack holds
 * the task at index 1: lmp_spawn). */
void lmp_anchor(lua_State *L, struct lmp_state *S, struct lmp_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->anchors);
  if (t->is_main) lua_pushlightuserdata(L, t);
  else push_thread(L, t->co);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* done[task] = co (weak keys), so co, which keeps the results or error
 * for join, lives as long as the task, and no longer keeps it alive. */
static int move_done(lua_State *L) {
  struct lmp_state *S = lua_touserdata(L, 1);
  struct lmp_task *t = lua_touserdata(L, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->done);
  lmp_push_task(L, S, t);
  push_thread(L, t->co);
  lua_rawset(L, -3);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->anchors);
  push_thread(L, t->co);
  lua_pushnil(L);
  lua_rawset(L, -3);
  return 0;
}

static int try_unanchor(lua_State *L, struct lmp_state *S,
                        struct lmp_task *t) {
  if (!lua_checkstack(L, 3)) return 0;
  lua_pushcfunction(L, move_done);
  lua_pushlightuserdata(L, S);
  lua_pushlightuserdata(L, t);
  if (lua_pcall(L, 2, 0, 0) == LUA_OK) return 1;
  lua_pop(L, 1);
  return 0;
}

/* The task has ended. Out of memory leaves it anchored (its results
 * safe) until lmp_step retries. */
void lmp_unanchor(lua_State *L, struct lmp_state *S, struct lmp_task *t) {
  if (!try_unanchor(L, S, t)) S->undone++;
}

/* Unanchors the ended tasks out of memory left anchored. */
static void retry_unanchor(struct lmp_state *S) {
  lua_State *L = S->L;
  if (!lua_checkstack(L, 4)) return;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->anchors);
  lua_pushnil(L);
  while (S->undone && lua_next(L, -2)) {
    struct lmp_task *t = luaL_testudata(L, -1, LMP_TASK);
    lua_pop(L, 1);
    /* clearing the entry lua_next is at is allowed */
    if (t && t->status == LMP_DONE && !t->is_main) {
      if (!try_unanchor(L, S, t)) break;
      S->undone--;
    }
  }
  lua_settop(L, top);
}

/* Whether the thread at idx, neither running nor normal, is a task's own
 * coroutine (lcoro.c). Not started or ended, its stack is at its base,
 * where lmp_spawn put the task at index 1 (a plain coroutine may hold a
 * task there too: t->co tells). Suspended (parked or waiting) or failed
 * (its error being reported, before fail closes it), it is a key of the
 * anchor table. */
int lmp_is_task_co(lua_State *L, struct lmp_state *S, int idx) {
  lua_State *co = lua_tothread(L, idx);
  struct lmp_task *t;
  idx = lua_absindex(L, idx);
  if (lua_status(co) == LUA_OK) {
    if (lua_gettop(co) < 1 || !lua_checkstack(co, 2)) /* luaL_testudata */
      return 0;
    t = luaL_testudata(co, 1, LMP_TASK);
    return t && t->co == co;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->anchors);
  lua_pushvalue(L, idx);
  int r = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return r;
}
