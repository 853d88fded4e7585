/* lhost.c: the embedding API a host drives moonport with (moonport.h):
 * spawning, running in steps or to the end, deadlock reports, the host's
 * references, how long it may sleep, and task queries. The scheduler
 * under it is lsched.c. */
#include "lsched.h"

void moonport_spawn(lua_State *L, int nargs) {
  struct lmp_state *S = lmp_getstate(L);
  int fidx = lua_gettop(L) - nargs;
  lua_insert(L, fidx); /* moonport_spawn takes fn on top: put it first */
  lmp_spawn(L, S, lua_gettop(L) - nargs, nargs);
  lua_replace(L, fidx);
  lua_settop(L, fidx);
}

/* In steps, tasks that nothing in flight can wake are deadlocked, unless
 * the host holds a reference (it feeds them, by posts): then they are
 * idle, NOWAIT returns and ONCE sleeps until a post or mp_loop_wake (a
 * signal handler's, say). */
int moonport_run(lua_State *L, enum mp_run_mode mode) {
  struct lmp_state *S = lmp_getstate(L);
  if (mode != MP_RUN_DEFAULT && !lmp_step(S, mode == MP_RUN_ONCE) &&
      S->ntasks > 0) {
    if (S->host_refs == 0) mode = MP_RUN_DEFAULT; /* reports, cancels */
    else if (mode == MP_RUN_ONCE) {
      mp_loop_wait(S->loop, -1);
      lmp_step(S, 0); /* takes the post, which may ready a task */
    }
  }
  if (mode == MP_RUN_DEFAULT && lmp_run_all(S) < 0)
    return lmp_push_deadlock(L, S);
  return S->ntasks;
}

void moonport_ref(lua_State *L) { lmp_getstate(L)->host_refs++; }

void moonport_unref(lua_State *L) {
  struct lmp_state *S = lmp_getstate(L);
  if (S->host_refs > 0) S->host_refs--;
}

int moonport_timeout(lua_State *L) {
  struct lmp_state *S = lmp_getstate(L);
  return S->ready_head ? 0 : mp_loop_timeout(S->loop);
}

int moonport_stalled(lua_State *L) {
  struct lmp_state *S = lmp_getstate(L);
  if (S->ready_head || mp_loop_inflight(S->loop) > 0 ||
      mp_loop_timeout(S->loop) == 0)
    return 0;
  return S->ntasks;
}

void moonport_task_watch(lua_State *L, int idx) {
  luaL_checkudata(L, idx, LMP_TASK);
  ((struct lmp_task *)lua_touserdata(L, idx))->watched = 1;
}

lua_State *moonport_task_thread(lua_State *L, int idx) {
  return ((struct lmp_task *)luaL_checkudata(L, idx, LMP_TASK))->co;
}

lua_State *volatile *moonport_running(lua_State *L) {
  return &lmp_getstate(L)->running;
}

int moonport_task_done(lua_State *L, int idx) {
  struct lmp_task *t = luaL_checkudata(L, idx, LMP_TASK);
  return t->status == LMP_DONE;
}

void moonport_cancel_all(lua_State *L) { lmp_cancel_all(lmp_getstate(L)); }

int moonport_unhandled(lua_State *L) { return lmp_getstate(L)->unhandled; }
