/* ltask.c: tasks (coroutines run by the loop), the scheduler, sleep,
 * deadlines for mp.timeout, and the park/wake primitive under join and
 * channels.
 *
 * A task suspends by yielding a private sentinel; anything waiting on a
 * completion records the op in task->op, and the one continuation given to
 * lua_yieldk (await_k, park_k) checks that the suspension is still the
 * task's own before it hands the op to the binding. Op callbacks never run
 * Lua: they only move the task to the ready queue, and the scheduler
 * resumes ready tasks between loop turns, so a Lua error can never unwind
 * through the core. Outside any task (a stock lua5.4, the REPL) the same
 * calls run the loop until their own completion arrives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmoonport.h"

static const char sentinel_key = 0; /* yielded by every suspension */
static const char timeout_key = 0;  /* registry: the timeout error object */
#define SENTINEL ((void *)&sentinel_key)

struct lmp_task *lmp_self(struct lmp_state *S) {
  return S->current ? S->current : S->main;
}

struct lmp_state *lmp_getstate(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LMP_STATE_KEY);
  struct lmp_state *S = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return S;
}

void lmp_ready_push(struct lmp_task *t) {
  struct lmp_state *S = t->S;
  if (t->status != LMP_NEW) t->status = LMP_READY;
  t->next = NULL;
  if (S->ready_tail) S->ready_tail->next = t; else S->ready_head = t;
  S->ready_tail = t;
  mp_loop_stop(S->loop); /* a waiting turn returns to run it */
}

static void ready_remove(struct lmp_task *t) {
  struct lmp_state *S = t->S;
  struct lmp_task **p = &S->ready_head, *prev = NULL;
  while (*p && *p != t) prev = *p, p = &(*p)->next;
  if (!*p) return;
  *p = t->next;
  if (S->ready_tail == t) S->ready_tail = prev;
  t->next = NULL;
}

void lmp_push_task(lua_State *L, struct lmp_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->S->anchors);
  lua_rawgeti(L, -1, t->anchor);
  lua_remove(L, -2);
}

/* Raises the pending interruption: a cancel (once) or an expired deadline
 * (for as long as that mp.timeout is on the stack). */
static int raise_interrupt(lua_State *L, struct lmp_task *t) {
  if (t->cancel) {
    t->cancel = 0;
    lua_pushliteral(L, "cancelled");
  } else {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &timeout_key);
  }
  return lua_error(L);
}

static int interrupted(struct lmp_task *t) { return t->cancel || t->nexpired; }

/* Is co running (it is L) or resuming another coroutine? Within a task,
 * those are the coroutines L's suspension would pass through. */
static int on_chain(lua_State *L, lua_State *co) {
  lua_Debug ar;
  return co == L || (lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar));
}

/* Whether L, about to suspend, is interrupted. A deadline applies (is
 * live) only while the coroutine whose mp.timeout pushed it is on L's
 * resume chain: one left in a coroutine suspended elsewhere, closed or
 * dropped waits, harmless, for that coroutine (or its guard's __gc). */
static int interrupted_at(lua_State *L, struct lmp_task *t) {
  t->nexpired = 0;
  for (int i = 0; i < t->ndeadlines; i++) {
    struct lmp_deadline *d = &t->deadlines[i];
    d->live = on_chain(L, d->co);
    if (d->live && !mp_op_inflight(d->op)) t->nexpired++;
  }
  return interrupted(t);
}

void lmp_task_op_cb(struct mp_op *op) {
  struct lmp_task *t = op->data;
  if (!t) {
    mp_op_release(op); /* orphaned: its task or coroutine is gone */
    return;
  }
  if (t->is_main) mp_loop_stop(t->S->loop);
  else if (t->status == LMP_WAITING && t->op == op) lmp_ready_push(t);
}

static int cannot_suspend(lua_State *L, const char *fname) {
  return luaL_error(L, "%s: cannot suspend here (inside a C call such as "
                       "table.sort, string.gsub, tostring or require)", fname);
}

void lmp_op_discard(struct mp_op *op) {
  op->data = NULL;
  if (op->cb) op->cb(op); else mp_op_release(op);
}

/* Gives back an op a task no longer waits for: an in-flight op is
 * orphaned (cancelled, released by its callback), a completed one is
 * discarded now (its callback frees what it owns: a descriptor it opened,
 * a buffer it filled). */
void lmp_drop_op(struct mp_op *op) {
  if (mp_op_inflight(op)) {
    op->data = NULL;
    mp_op_cancel(op);
  } else {
    lmp_op_discard(op);
  }
}

/* Ends the task's pending suspension without running its continuation
 * (its coroutine was abandoned, resumed elsewhere, or the task ended). */
static void forget_wait(lua_State *L, struct lmp_task *t) {
  if (t->op) lmp_drop_op(t->op);
  t->op = NULL;
  t->k = NULL;
  t->pk = NULL;
  t->wait = 0;
  if (t->cleanup != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->cleanup);
    t->cleanup = LUA_NOREF;
  }
}

/* Starts a suspension: a task running Lua code has none pending, unless
 * a coroutine that suspended it was resumed by someone else; that one is
 * stale. Returns its id. */
static lua_KContext new_wait(lua_State *L, struct lmp_task *t) {
  if (t->wait) forget_wait(L, t);
  t->wait = ++t->S->lastwait;
  t->wait_co = L;
  return t->wait;
}

/* A coroutine suspended by task `owner` was resumed by another: owner
 * stops waiting for it (its op orphaned) and goes on, finding the
 * coroutine dead or suspended elsewhere. A linear search, on an error
 * path only. */
static void release_owner(lua_State *L, struct lmp_state *S,
                          lua_KContext ctx) {
  struct lmp_task *owner = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->anchors);
  lua_pushnil(L);
  while (!owner && lua_next(L, -2)) {
    struct lmp_task *t = luaL_testudata(L, -1, LMP_TASK);
    if (t && t->wait == ctx) owner = t;
    lua_pop(L, 1);
  }
  lua_pop(L, owner ? 2 : 1);
  if (!owner) return;
  forget_wait(L, owner);
  if (owner->status == LMP_WAITING || owner->status == LMP_PARKED)
    lmp_ready_push(owner);
}

/* The first thing every continuation does: is this the suspension the
 * running task waits on? If not, the coroutine was abandoned (or taken
 * over by another task): its op belongs to someone else or is gone. */
static struct lmp_task *check_wait(lua_State *L, lua_KContext ctx) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  if (!ctx || t->wait != ctx) {
    if (ctx) release_owner(L, S, ctx);
    luaL_error(L, "operation abandoned (a coroutine suspended in moonport "
                  "was resumed after its task stopped waiting for it, or "
                  "by another task)");
  }
  t->wait = 0;
  return t;
}

/* Hands a completed op to its binding, unless the task was interrupted
 * and the op cancelled for it. */
static int op_done(lua_State *L, struct lmp_task *t, struct mp_op *op,
                   lmp_done k) {
  if (op->result == MP_ECANCELED && interrupted(t)) {
    lmp_op_discard(op);
    return raise_interrupt(L, t);
  }
  return k(L, op);
}

static int await_k(lua_State *L, int status, lua_KContext ctx) {
  struct lmp_task *t = check_wait(L, ctx);
  struct mp_op *op = t->op;
  lmp_done k = t->k;
  (void)status;
  t->op = NULL;
  t->k = NULL;
  return op_done(L, t, op, k);
}

int lmp_await(lua_State *L, struct mp_op *op, lmp_done k,
              const char *fname) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  if (interrupted_at(L, t) || (!t->is_main && !lua_isyieldable(L))) {
    lmp_op_discard(op); /* its callback frees what it owns */
    if (interrupted(t)) return raise_interrupt(L, t);
    return cannot_suspend(L, fname);
  }
  if (!op->cb) op->cb = lmp_task_op_cb;
  op->data = t;
  if (t->is_main) {
    /* The main context never yields: it runs the loop right here (a
     * finalizer may nest a second wait, hence the saved op). */
    struct mp_op *outer = t->op;
    t->op = op; /* for deadline_cb */
    int r = mp_op_submit(op);
    if (r < 0) {
      op->result = r;
      op->cb(op); /* as on completion: bookkeeping, no wake-up */
    }
    while (mp_op_inflight(op)) lmp_step(S, 1);
    t->op = outer;
    return op_done(L, t, op, k);
  }
  lua_KContext id = new_wait(L, t);
  int r = mp_op_submit(op);
  if (r < 0) {
    t->wait = 0;
    op->result = r;
    op->cb(op); /* as on completion: the task is running, no wake-up */
    return k(L, op);
  }
  t->op = op;
  t->k = k;
  t->status = LMP_WAITING;
  lua_pushlightuserdata(L, SENTINEL);
  return lua_yieldk(L, 1, id, await_k);
}

/* Park continuation: a wake wins over an interruption, which stays
 * pending for the next suspension. */
static int park_k(lua_State *L, int status, lua_KContext ctx) {
  struct lmp_task *t = check_wait(L, ctx);
  lua_KFunction k = t->pk;
  (void)status;
  t->pk = NULL;
  if (t->cleanup != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->cleanup);
    t->cleanup = LUA_NOREF;
  }
  if (t->woken) t->woken = 0;
  else if (interrupted(t)) return raise_interrupt(L, t);
  return k(L, LUA_YIELD, t->pctx);
}

/* Yields with the park continuation; status is what the task is until
 * something readies it. */
static int suspend(lua_State *L, struct lmp_task *t, lua_KFunction k,
                   lua_KContext ctx, int cleanup) {
  lua_KContext id = new_wait(L, t);
  t->pk = k;
  t->pctx = ctx;
  if (cleanup) {
    lua_pushvalue(L, cleanup);
    t->cleanup = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pushlightuserdata(L, SENTINEL);
  return lua_yieldk(L, 1, id, park_k);
}

/* cleanup: stack index of a function l_abandon calls, or 0. */
static int park(lua_State *L, lua_KFunction k, lua_KContext ctx,
                const char *fname, int cleanup) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  if (interrupted_at(L, t)) return raise_interrupt(L, t);
  if (t->woken) {
    t->woken = 0;
    return k(L, LUA_OK, ctx);
  }
  if (t->is_main) {
    while (!t->woken && !interrupted(t)) {
      if (!lmp_step(S, 1))
        return luaL_error(L, "%s: deadlock: nothing left that could wake "
                             "the main program", fname);
    }
    if (!t->woken) return raise_interrupt(L, t);
    t->woken = 0;
    return k(L, LUA_OK, ctx);
  }
  if (!lua_isyieldable(L)) return cannot_suspend(L, fname);
  t->status = LMP_PARKED;
  return suspend(L, t, k, ctx, cleanup);
}

int lmp_park(lua_State *L, lua_KFunction k, lua_KContext ctx,
             const char *fname) {
  return park(L, k, ctx, fname, 0);
}

/* A running task is never queued: its status may still say PARKED if a
 * resume that bypasses the coroutine wrappers swallowed its suspension. */
void lmp_wake(struct lmp_task *t) {
  if (t->status == LMP_DONE) return;
  t->woken = 1;
  if (t->status == LMP_PARKED && t != t->S->current) lmp_ready_push(t);
  else if (t->is_main) mp_loop_stop(t->S->loop);
}

void lmp_task_release_ops(struct lmp_task *t) {
  if (t->op) lmp_drop_op(t->op);
  t->op = NULL;
  t->wait = 0;
  for (int i = 0; i < t->ndeadlines; i++) lmp_drop_op(t->deadlines[i].op);
  t->ndeadlines = t->nexpired = 0;
}

/* Wakes every task joining t; the waiters table maps t -> { joiners }. */
static void wake_joiners(lua_State *L, struct lmp_task *t) {
  struct lmp_state *S = t->S;
  if (!t->has_joiners) return;
  t->has_joiners = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->waiters);
  lmp_push_task(L, t);
  if (lua_rawget(L, -2) == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      lmp_wake(luaL_checkudata(L, -1, LMP_TASK));
      lua_pop(L, 1);
    }
    lmp_push_task(L, t);
    lua_pushnil(L);
    lua_rawset(L, -4);
  }
  lua_pop(L, 2);
}

static void finish(struct lmp_task *t) {
  struct lmp_state *S = t->S;
  lua_State *L = S->L;
  forget_wait(L, t);
  /* Readied by sleep(0) just before a yield that never reached the
   * scheduler (it failed in a coroutine wrapper): once unanchored, a
   * queued task would be freed under the queue. */
  if (t->status == LMP_READY) ready_remove(t);
  lmp_task_release_ops(t);
  t->status = LMP_DONE;
  S->ntasks--;
  wake_joiners(L, t);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->anchors);
  luaL_unref(L, -1, t->anchor);
  lua_pop(L, 1);
  t->anchor = LUA_NOREF;
}

static int traceback(lua_State *L) {
  luaL_traceback(L, lua_touserdata(L, 1), lua_touserdata(L, 2), 0);
  return 1;
}

/* What lua.c prints for an error object that is not a string. */
static int describe(lua_State *L) {
  if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    return 1;
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

/* Prints a failure nobody is waiting for, at once, with its traceback.
 * The error stays as it is on co's stack, for a later join; a __tostring
 * that raises is reported, never propagated. */
static void report(struct lmp_task *t) {
  struct lmp_state *S = t->S;
  lua_State *L = S->L, *co = t->co;
  int top = lua_gettop(L), type = lua_type(co, -1);
  if (type == LUA_TSTRING && strcmp(lua_tostring(co, -1), "cancelled") == 0)
    return; /* asked for */
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);
  if (type == LUA_TSTRING || type == LUA_TNUMBER) {
    lua_tostring(L, -1); /* the copy: a number becomes its text */
  } else {
    lua_pushcfunction(L, describe);
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      lua_pop(L, 1);
      lua_pushfstring(L, "(error object is a %s value; its __tostring "
                         "raised an error)", lua_typename(L, type));
    }
  }
  /* The traceback needs memory: without it, the message alone. */
  const char *msg = lua_tostring(L, -1);
  lua_pushcfunction(L, traceback);
  lua_pushlightuserdata(L, co);
  lua_pushlightuserdata(L, (void *)msg);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK)
    fprintf(stderr, "moonport: error in task: %s\n", lua_tostring(L, -1));
  else
    fprintf(stderr, "moonport: error in task: %s\n", msg);
  fflush(stderr);
  lua_settop(L, top);
  t->reported = 1;
  S->unhandled++;
}

static void fail(struct lmp_task *t) {
  lua_State *L = t->S->L, *co = t->co;
  int st;
  t->failed = 1;
  if (!t->watched && !t->has_joiners) report(t);
  /* Lua does not unwind a failed coroutine: closing it runs its pending
   * to-be-closed variables. It leaves the error (or a newer one raised by
   * a __close handler) at index 1; a yield-shaped failure leaves nothing,
   * so keep a copy. */
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);
#if LUA_VERSION_RELEASE_NUM >= 50406
  st = lua_closethread(co, L);
#else
  st = lua_resetthread(co);
#endif
  if (st == LUA_OK) {
    lua_settop(co, 0);
    lua_xmove(L, co, 1);
  } else {
    lua_settop(co, 1);
    lua_pop(L, 1);
  }
  t->nres = 1;
  finish(t);
}

static void resume_task(struct lmp_state *S, struct lmp_task *t) {
  lua_State *co = t->co;
  int nargs = 0, nres = 0, st;
  if (t->status == LMP_NEW) {
    if (t->cancel) { /* cancelled before its first turn: never runs */
      lua_settop(co, 0);
      lua_pushliteral(co, "cancelled");
      t->failed = 1;
      t->nres = 1;
      finish(t);
      return;
    }
    nargs = lua_gettop(co) - 1;
  }
  struct lmp_task *prev = S->current;
  t->status = LMP_RUNNING;
  S->current = t;
  S->running = co;
  st = lua_resume(co, S->L, nargs, &nres);
  S->current = prev;
  S->running = prev ? prev->co : NULL;
  if (st == LUA_YIELD) {
    if (nres == 1 && lua_touserdata(co, -1) == SENTINEL) {
      lua_pop(co, 1);
      return; /* waiting on an op or parked */
    }
    /* A bare coroutine.yield at the task's top level: like the main chunk
     * of lua, a task is not a coroutine the script may yield from. */
    lua_pop(co, nres);
    lua_pushliteral(co, "attempt to yield from outside a coroutine");
    st = LUA_ERRRUN;
  }
  if (st == LUA_OK) {
    t->nres = nres;
    finish(t);
  } else {
    fail(t);
  }
}

/* Runs the tasks ready now; those readied meanwhile run next turn. Each
 * task leaves the queue only when its turn comes, so an error escaping
 * (out of memory) leaves the rest queued rather than lost. */
void lmp_run_ready(struct lmp_state *S) {
  struct lmp_task *last = S->ready_tail, *t;
  while ((t = S->ready_head)) {
    S->ready_head = t->next;
    if (!S->ready_head) S->ready_tail = NULL;
    resume_task(S, t);
    if (t == last) break;
  }
}

int lmp_step(struct lmp_state *S, int may_wait) {
  if (S->ready_head) {
    lmp_run_ready(S);
    mp_loop_run(S->loop, MP_RUN_NOWAIT);
    return 1;
  }
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

static struct lmp_task *new_task(lua_State *L, struct lmp_state *S) {
  struct lmp_task *t = lua_newuserdatauv(L, sizeof *t, 1);
  memset(t, 0, sizeof *t);
  t->S = S;
  t->anchor = LUA_NOREF;
  t->cleanup = LUA_NOREF;
  luaL_setmetatable(L, LMP_TASK);
  return t;
}

static void anchor(lua_State *L, struct lmp_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->S->anchors);
  lua_pushvalue(L, -2);
  t->anchor = luaL_ref(L, -2);
  lua_pop(L, 1);
}

/* Spawns the function at index fidx with the nargs values after it (all
 * left in place) and pushes the task. */
static struct lmp_task *spawn(lua_State *L, struct lmp_state *S, int fidx,
                              int nargs) {
  struct lmp_task *t = new_task(L, S);
  lua_State *co = lua_newthread(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->taskcos);
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  t->co = co;
  lua_setiuservalue(L, -2, 1);
  luaL_checkstack(co, nargs + 1, "too many arguments to spawn");
  for (int i = 0; i <= nargs; i++) lua_pushvalue(L, fidx + i);
  lua_xmove(L, co, nargs + 1);
  t->status = LMP_NEW;
  anchor(L, t);
  S->ntasks++;
  lmp_ready_push(t);
  return t;
}

void lmp_task_spawn(lua_State *L, struct lmp_state *S, int nargs) {
  int fidx = lua_gettop(L) - nargs;
  spawn(L, S, fidx, nargs);
}

void lmp_task_cancel(struct lmp_task *t) {
  if (t->status == LMP_DONE || t->is_main) return;
  t->cancel = 1;
  if (t->status == LMP_WAITING && t->op) mp_op_cancel(t->op);
  else if (t->status == LMP_PARKED && t != t->S->current) lmp_ready_push(t);
}

/* ---- Lua functions ---- */

static struct lmp_task *check_task(lua_State *L, int i) {
  return luaL_checkudata(L, i, LMP_TASK);
}

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  spawn(L, lmp_state(L), 1, lua_gettop(L) - 1);
  return 1;
}

/* Copies a finished task's outcome: true, results... or false, err. */
static int push_outcome(lua_State *L, struct lmp_task *t) {
  struct lmp_state *S = t->S;
  lua_State *co = t->co;
  if (!t->joined) {
    t->joined = 1;
    if (t->reported) S->unhandled--; /* handled after all */
  }
  luaL_checkstack(L, t->nres + 1, "too many results");
  luaL_checkstack(co, t->nres, "too many results");
  lua_pushboolean(L, !t->failed);
  for (int i = 1; i <= t->nres; i++) lua_pushvalue(co, i);
  lua_xmove(co, L, t->nres);
  return t->nres + 1;
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = check_task(L, 1);
  (void)ctx;
  (void)status;
  if (t->status == LMP_DONE) return push_outcome(L, t);
  /* waiters[t] = { ..., self } */
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->waiters);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  t->has_joiners = 1; /* before the append, which may run out of memory */
  lmp_push_task(L, lmp_self(S));
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  lua_settop(L, 1);
  return lmp_park(L, join_k, 0, "join");
}

static int task_join(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = check_task(L, 1);
  lua_settop(L, 1);
  if (t == lmp_self(S)) return luaL_error(L, "join: a task cannot join itself");
  return join_k(L, LUA_OK, 0);
}

static int task_cancel(lua_State *L) {
  lmp_task_cancel(check_task(L, 1));
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

static int task_gc(lua_State *L) {
  struct lmp_task *t = check_task(L, 1);
  lmp_task_release_ops(t);
  free(t->deadlines);
  t->deadlines = NULL;
  return 0;
}

static int l_current(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  if (S->current) lmp_push_task(L, S->current);
  else lua_pushnil(L);
  return 1;
}

static int sleep_done(lua_State *L, struct mp_op *op) {
  (void)L;
  mp_op_release(op);
  return 0;
}

static int nothing_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L, (void)status, (void)ctx;
  return 0;
}

static int l_sleep(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  luaL_checktype(L, 1, LUA_TNUMBER); /* "1" is a mistake, not a second */
  lua_Number s = lua_tonumber(L, 1);
  luaL_argcheck(L, s >= 0, 1, "non-negative number expected");
  if (s == 0) { /* yield to the other ready tasks */
    struct lmp_task *t = lmp_self(S);
    if (interrupted_at(L, t)) return raise_interrupt(L, t);
    if (t->is_main) {
      lmp_step(S, 0);
      return 0;
    }
    if (!lua_isyieldable(L)) return cannot_suspend(L, "sleep");
    lmp_ready_push(t);
    return suspend(L, t, nothing_k, 0, 0);
  }
  /* Up to ~146 years; math.huge sleeps until cancelled. */
  int64_t ns = s >= 4.6e9 ? INT64_C(1) << 62 : (int64_t)(s * 1e9);
  struct mp_op *op = mp_op_new(S->loop, NULL, NULL);
  if (!op) return luaL_error(L, "not enough memory");
  mp_loop_update_time(S->loop); /* the sleep starts now, not at turn start */
  mp_op_prep_timer(op, ns);
  return lmp_await(L, op, sleep_done, "sleep");
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
    t = spawn(L, S, 1, base - 1);
    t->watched = 1; /* run reports its failure by raising it */
  }
  if (lmp_run_all(S) < 0) {
    lmp_push_deadlock(L, S);
    return lua_error(L);
  }
  if (!t) return 0;
  int n = push_outcome(L, t);
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

/* ---- park / wake, for channels written in Lua ---- */

/* core.park([cleanup]): cleanup runs if the coroutine that parks is
 * abandoned (see l_abandon), so a channel can take its waiter back. */
static int l_park(lua_State *L) {
  lua_settop(L, 1);
  if (!lua_isnil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  return park(L, nothing_k, 0, "park", lua_isnil(L, 1) ? 0 : 1);
}

static int l_wake(lua_State *L) {
  lmp_wake(check_task(L, 1));
  return 0;
}

/* core.waiting(task, co): is task suspended on co's park, so that what is
 * handed to co's waiter will be returned? Not if a resume that bypasses
 * the coroutine wrappers (one saved before moonport was loaded, or a C
 * library's lua_resume) swallowed co's suspension: the task ran on. The
 * main context parks without yielding: always. */
static int l_waiting(lua_State *L) {
  struct lmp_task *t = check_task(L, 1);
  lua_State *co = lua_tothread(L, 2);
  lua_pushboolean(L, t->is_main || (t->wait && t->wait_co == co &&
                                    t != t->S->current));
  return 1;
}

static int l_self(lua_State *L) {
  lmp_push_task(L, lmp_self(lmp_state(L)));
  return 1;
}

/* The coroutine wrappers call this when a user coroutine suspended on IO
 * but the task cannot yield to the loop (a C call is in between): the
 * suspension ends here (its op orphaned, the task out of the ready queue,
 * a park's cleanup run), so nothing waits on it; resuming that coroutine
 * later raises "operation abandoned". */
static int l_abandon(lua_State *L) {
  struct lmp_task *t = lmp_self(lmp_state(L));
  int cleanup = t->cleanup;
  if (t->is_main || !t->wait) return 0;
  t->cleanup = LUA_NOREF;
  if (t->status == LMP_READY) ready_remove(t); /* sleep(0) */
  forget_wait(L, t);
  t->status = LMP_RUNNING;
  if (cleanup != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, cleanup);
    luaL_unref(L, LUA_REGISTRYINDEX, cleanup);
    lua_call(L, 0, 0);
  }
  return 0;
}

/* Whether the thread at idx is a task's own coroutine (lcoro.c). */
int lmp_is_task_co(lua_State *L, struct lmp_state *S, int idx) {
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->taskcos);
  lua_pushvalue(L, idx);
  int r = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return r;
}

/* Before coroutine.close closes co (lcoro.c): if co is where a task's
 * suspension came from, that task stops waiting (its op orphaned,
 * released on completion; a park's cleanup run, so a channel takes its
 * waiter back) and, unless it is the caller, goes on to find co dead. */
void lmp_release(lua_State *L, struct lmp_state *S, lua_State *co) {
  struct lmp_task *owner = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->anchors);
  lua_pushnil(L);
  while (!owner && lua_next(L, -2)) {
    struct lmp_task *t = luaL_testudata(L, -1, LMP_TASK);
    if (t && !t->is_main && t->wait && t->wait_co == co) owner = t;
    lua_pop(L, 1);
  }
  lua_pop(L, owner ? 2 : 1);
  if (!owner) return;
  int cleanup = owner->cleanup;
  owner->cleanup = LUA_NOREF;
  forget_wait(L, owner);
  if (owner != S->current) {
    owner->woken = 0; /* a wake for co: its cleanup passes a value on */
    if (owner->status == LMP_WAITING || owner->status == LMP_PARKED)
      lmp_ready_push(owner);
  }
  if (cleanup != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, cleanup);
    luaL_unref(L, LUA_REGISTRYINDEX, cleanup);
    lua_call(L, 0, 0);
  }
}

static int timeout_tostring(lua_State *L) {
  lua_pushliteral(L, "timeout");
  return 1;
}

void lmp_open_task(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg methods[] = {
    {"join", task_join}, {"cancel", task_cancel}, {"done", task_done},
    {NULL, NULL}};
  static const luaL_Reg metamethods[] = {
    {"__tostring", task_tostring}, {"__gc", task_gc}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"spawn", l_spawn}, {"current", l_current}, {"sleep", l_sleep},
    {"now", l_now}, {"run", l_run}, {"backend", l_backend},
    {"park", l_park}, {"wake", l_wake}, {"waiting", l_waiting},
    {"self", l_self}, {"abandon", l_abandon}, {NULL, NULL}};
  lmp_new_class(L, S, LMP_TASK, metamethods, methods);
  lua_pushliteral(L, LMP_TASK); /* scripts cannot reach __gc */
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  lua_pushlightuserdata(L, SENTINEL);
  lua_setfield(L, -2, "SENTINEL");
  /* Kept alive, so the scheduler's lua_pushliteral(co, "cancelled")
   * finds it interned and cannot run out of memory (and lose a task). */
  lua_pushliteral(L, "cancelled");
  lua_setfield(L, LUA_REGISTRYINDEX, "moonport.cancelled");
  /* The timeout error: prints as "timeout", unique by identity. */
  lua_newtable(L);
  lua_newtable(L);
  lua_pushcfunction(L, timeout_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &timeout_key);
  lua_setfield(L, -2, "TIMEOUT");

  /* The main context as a task object, so it can park and be woken. */
  struct lmp_task *m = new_task(L, S);
  m->is_main = 1;
  m->status = LMP_RUNNING;
  anchor(L, m);
  lua_pop(L, 1);
  S->main = m;
}
