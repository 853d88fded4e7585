/* lcore.c: the await primitive every binding suspends with (lcore.h):
 * the task record, await/park/wake and the continuation that checks a
 * suspension is still its task's own; plus the one error path and class
 * registration. The queues (the ready queue, mp.sleep's heap) are
 * lqueue.c's; making and anchoring task records, and lmp_step,
 * lanchor.c's.
 *
 * A task suspends by yielding a private sentinel; anything waiting on a
 * completion records the op in task->op, and the one continuation given to
 * lua_yieldk (await_k, park_k) checks that the suspension is still the
 * task's own before it hands the op to the binding. Op callbacks never run
 * Lua: they only move the task to the ready queue, and the scheduler
 * (lsched.c) resumes ready tasks between loop turns, so a Lua error can
 * never unwind through the core. Outside any task (a stock lua5.4, the
 * REPL) the same calls run the loop until their own completion arrives. */
#include <stdlib.h>
#include <string.h>

#include "lcore.h"

const char lmp_sentinel = 0;       /* yielded by every suspension */
static const char timeout_key = 0; /* registry: the timeout error object */

int lmp_fail(lua_State *L, int err, const char *what) {
  static const struct { int err; const char *msg, *name; } own[] = {
    {MP_ECANCELED, NULL, "cancelled"},
    {LMP_ETIMEOUT, "timed out", "timeout"},
    {LMP_EEOS, "end of stream", "EOF"},
    {LMP_EBADPATH, "invalid socket path", "EINVAL"},
    {LMP_EBADNAME, "invalid name (embedded zero byte)", "EINVAL"},
    {LMP_ETLS, "TLS failure", "ETLS"},
    {LMP_ECERT, "certificate verification failed", "ECERT"}};
  const char *msg = mp_strerror(err), *name = mp_errname(err);
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
    if (own[i].err != err) continue;
    if (own[i].msg) msg = own[i].msg;
    name = own[i].name;
  }
  lua_pushnil(L);
  if (what) lua_pushfstring(L, "%s: %s", what, msg);
  else lua_pushstring(L, msg);
  lua_pushstring(L, name);
  return 3;
}

void lmp_new_class(lua_State *L, struct lmp_state *S, const char *name,
                   const luaL_Reg *meta, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, meta, 1);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, methods, 1);
  lua_setfield(L, -2, "__index");
}

struct lmp_task *lmp_self(struct lmp_state *S) {
  return S->current ? S->current : S->main;
}

struct lmp_state *lmp_getstate(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LMP_STATE_KEY);
  struct lmp_state *S = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return S;
}

/* Pushes the pending interruption: a cancel (once) or an expired
 * deadline (for as long as that mp.timeout is on the stack). */
static int push_interrupt(lua_State *L, struct lmp_task *t) {
  if (t->cancel) {
    t->cancel = 0;
    lua_pushliteral(L, "cancelled");
  } else {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &timeout_key);
  }
  return 1;
}

static int raise_interrupt(lua_State *L, struct lmp_task *t) {
  push_interrupt(L, t);
  return lua_error(L);
}

static int interrupted(struct lmp_task *t) {
  return t->cancel || (t->side && t->side->nexpired);
}

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
  struct lmp_side *dl = t->side;
  if (!dl || !dl->n) return t->cancel;
  dl->nexpired = 0;
  for (int i = 0; i < dl->n; i++) {
    struct lmp_deadline *d = &dl->d[i];
    d->live = on_chain(L, d->co);
    if (d->live && !mp_op_inflight(d->op)) dl->nexpired++;
  }
  return interrupted(t);
}

void lmp_task_op_cb(struct mp_op *op) {
  struct lmp_task *t = op->data;
  if (!t) {
    mp_op_release(op); /* orphaned: its task or coroutine is gone */
    return;
  }
  if (t->is_main) mp_loop_stop(mp_op_loop(op));
  else if (t->status == LMP_WAITING && t->op == op)
    lmp_ready_push(lmp_op_state(op), t);
}

#define CANNOT_SUSPEND "%s: cannot suspend here (inside a C call such as " \
                       "table.sort, string.gsub, tostring or require)"
#define ABANDONED "operation abandoned (a coroutine suspended in moonport " \
                  "was resumed after its task stopped waiting for it, or " \
                  "by another task)"
#define DEADLOCK "%s: deadlock: nothing left that could wake the main " \
                 "program"

static int cannot_suspend(lua_State *L, const char *fname) {
  return luaL_error(L, CANNOT_SUSPEND, fname);
}

void lmp_op_discard(struct mp_op *op) {
  op->data = NULL;
  if (op->cb) op->cb(op); else mp_op_release(op);
}

/* Gives back an op a task no longer waits for: an in-flight op is
 * orphaned (cancelled, unless protected: a flush of bytes a write already
 * accepted; released by its callback), a completed one is discarded now
 * (its callback frees what it owns: a descriptor it opened, a buffer it
 * filled). */
void lmp_interrupt_op(struct mp_op *op) {
  if (!mp_op_protected(op)) mp_op_cancel(op);
}

void lmp_drop_op(struct mp_op *op) {
  if (mp_op_inflight(op)) {
    op->data = NULL;
    lmp_interrupt_op(op);
  } else {
    lmp_op_discard(op);
  }
}

/* Ends the task's pending suspension without running its continuation
 * (its coroutine was abandoned, resumed elsewhere, or the task ended). */
void lmp_forget_wait(lua_State *L, struct lmp_state *S, struct lmp_task *t) {
  (void)L;
  lmp_unlink_wait(t);
  t->handed = t->qclosed = 0;
  if (t->sleeping) lmp_sleeper_remove(S, t);
  if (t->op) lmp_drop_op(t->op);
  t->op = NULL;
  t->k = NULL;
  t->pk = NULL;
  t->wait = 0;
  t->cleanup = 0;
}

/* t's side block, made if missing; NULL: out of memory. */
static struct lmp_side *side_of(struct lmp_state *S, struct lmp_task *t) {
  if (t->side) return t->side;
  struct lmp_side *x = mp_loop_realloc(S->loop, NULL, sizeof *x);
  if (!x) return NULL;
  memset(x, 0, sizeof *x);
  t->side = x;
  return x;
}

/* Whether a suspension of t from L cannot be recorded: L is a coroutine
 * inside the task and t has no side record, nor memory for one. To be
 * asked before anything is done that the suspension would undo. */
static int no_side(lua_State *L, struct lmp_state *S, struct lmp_task *t) {
  return L != t->co && !side_of(S, t);
}

/* Starts a suspension: a task running Lua code has none pending, unless
 * a coroutine that suspended it was resumed by someone else; that one is
 * stale. Returns its id. (no_side was asked.)
 * Ids are 32 bits (the record stays small) and wrap, skipping 0. Every
 * check by id also names the coroutine (check_wait, release_owner,
 * run_cleanup), so a stale id could only be taken for a pending one if
 * the same coroutine had suspended exactly 2^32 suspensions of the state
 * earlier and was resumed in between by a resume that bypasses the
 * coroutine wrappers. */
static lua_KContext new_wait(lua_State *L, struct lmp_state *S,
                             struct lmp_task *t) {
  if (t->wait) lmp_forget_wait(L, S, t);
  t->wait = (uint32_t)++S->lastwait;
  if (!t->wait) t->wait = (uint32_t)++S->lastwait;
  if (t->side) t->side->wait_co = L == t->co ? NULL : L;
  return t->wait;
}

#define NOMEM "not enough memory"

/* A coroutine suspended by task `owner` was resumed by another: owner
 * stops waiting for it (its op orphaned) and goes on, finding the
 * coroutine dead or suspended elsewhere. A linear search, on an error
 * path only. Whether owner had been handed something (lmp_wq_wake). */
static int release_owner(lua_State *L, struct lmp_state *S,
                         lua_KContext ctx) {
  struct lmp_task *owner = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->anchors);
  lua_pushnil(L);
  while (!owner && lua_next(L, -2)) {
    struct lmp_task *t = luaL_testudata(L, -1, LMP_TASK);
    if (t && t->wait == (uint32_t)ctx && lmp_wait_co(t) == L) owner = t;
    lua_pop(L, 1);
  }
  lua_pop(L, owner ? 2 : 1);
  if (!owner) return 0;
  int handed = owner->handed;
  lmp_forget_wait(L, S, owner);
  if (owner->status == LMP_WAITING || owner->status == LMP_PARKED)
    lmp_ready_push(S, owner);
  return handed;
}

/* The first thing every continuation does: is this the suspension the
 * running task waits on? If not, the coroutine was abandoned (or taken
 * over by another task): its op belongs to someone else or is gone. */
static struct lmp_task *check_wait(lua_State *L, lua_KContext ctx) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  if (!ctx || t->wait != (uint32_t)ctx || lmp_wait_co(t) != L) {
    if (ctx) release_owner(L, S, ctx);
    luaL_error(L, ABANDONED);
  }
  t->wait = 0;
  lmp_unlink_wait(t); /* resumed by a foreign resume */
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
  if (interrupted_at(L, t) || (!t->is_main && !lua_isyieldable(L)) ||
      (!t->is_main && no_side(L, S, t))) {
    lmp_op_discard(op); /* its callback frees what it owns */
    if (interrupted(t)) return raise_interrupt(L, t);
    if (!lua_isyieldable(L)) return cannot_suspend(L, fname);
    return luaL_error(L, NOMEM);
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
  lua_KContext id = new_wait(L, S, t);
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
  lua_pushlightuserdata(L, LMP_SENTINEL);
  return lua_yieldk(L, 1, id, await_k);
}

/* Park continuation: a wake wins over an interruption, which stays
 * pending for the next suspension. */
static int park_k(lua_State *L, int status, lua_KContext ctx) {
  struct lmp_task *t = check_wait(L, ctx);
  lua_KFunction k = t->pk;
  (void)status;
  t->pk = NULL;
  t->cleanup = 0;
  if (t->woken) t->woken = 0;
  else if (interrupted(t)) return raise_interrupt(L, t);
  return k(L, LUA_YIELD, 0);
}

/* lmp_park_join's continuation: the end of the target (at stack index 1)
 * wins over an interruption as a wake does, also when the interruption
 * readied the joiner (taking it off the list) before the end came. */
static int join_park_k(lua_State *L, int status, lua_KContext ctx) {
  struct lmp_task *t = check_wait(L, ctx);
  const struct lmp_task *target = lua_touserdata(L, 1);
  lua_KFunction k = t->pk;
  (void)status;
  t->pk = NULL;
  if (t->woken || target->status == LMP_DONE) t->woken = 0;
  else if (interrupted(t)) return raise_interrupt(L, t);
  return k(L, LUA_YIELD, 0);
}

/* Yields with the continuation yk (k: what park_k then runs); status is
 * what the task is until something readies it. With cleanup, the stack
 * holds the function and its two values (lmp_park_cleanup, lmp_wait):
 * the id above them says whose frame it is (run_cleanup). */
static int suspend(lua_State *L, struct lmp_state *S, struct lmp_task *t,
                   lua_KFunction k, int cleanup, lua_KFunction yk) {
  lua_KContext id = new_wait(L, S, t);
  t->pk = k;
  t->cleanup = cleanup;
  if (cleanup) lua_pushlightuserdata(L, (void *)id);
  lua_pushlightuserdata(L, LMP_SENTINEL);
  return lua_yieldk(L, 1, id, yk);
}

static int park(lua_State *L, lua_KFunction k, const char *fname,
                int cleanup, int join) {
  struct lmp_task *target = join ? lua_touserdata(L, 1) : NULL;
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  if (interrupted_at(L, t)) return raise_interrupt(L, t);
  if (t->woken) {
    t->woken = 0;
    return k(L, LUA_OK, 0);
  }
  if (t->is_main) {
    while (!t->woken && !interrupted(t)) {
      if (!lmp_step(S, 1)) return luaL_error(L, DEADLOCK, fname);
    }
    if (!t->woken) return raise_interrupt(L, t);
    t->woken = 0;
    return k(L, LUA_OK, 0);
  }
  if (!lua_isyieldable(L)) return cannot_suspend(L, fname);
  if (no_side(L, S, t) || (target && !side_of(S, target)))
    return luaL_error(L, NOMEM);
  if (cleanup) lua_settop(L, 3);
  if (!target) {
    t->status = LMP_PARKED;
    return suspend(L, S, t, k, cleanup, park_k);
  }
  lua_KContext id = new_wait(L, S, t); /* it may unlink a stale join */
  /* Queued while running (a sleep(0) whose yield a foreign resume
   * swallowed): next is about to be the list's. */
  if (t->status == LMP_READY) lmp_ready_remove(S, t);
  t->status = LMP_PARKED;
  struct lmp_task **head = &target->side->joiners;
  t->next = *head;
  if (t->next) t->next->jprev = &t->next;
  t->jprev = head;
  *head = t;
  t->joining = 1;
  t->pk = k;
  lua_pushlightuserdata(L, LMP_SENTINEL);
  return lua_yieldk(L, 1, id, join_park_k);
}

int lmp_park(lua_State *L, lua_KFunction k, const char *fname) {
  return park(L, k, fname, 0, 0);
}

int lmp_park_cleanup(lua_State *L, lua_KFunction k, const char *fname) {
  return park(L, k, fname, 1, 0);
}

int lmp_park_join(lua_State *L, lua_KFunction k, const char *fname) {
  return park(L, k, fname, 0, 1);
}

/* The list is newest first: reversed, then woken in turn. */
void lmp_wake_joiners(struct lmp_state *S, struct lmp_task *target) {
  struct lmp_task *j = target->side ? target->side->joiners : NULL;
  struct lmp_task *order = NULL;
  if (!j) return;
  target->side->joiners = NULL;
  while (j) {
    struct lmp_task *after = j->next;
    j->op = NULL;
    j->joining = 0;
    j->next = order;
    order = j;
    j = after;
  }
  while ((j = order)) {
    order = j->next;
    j->next = NULL;
    lmp_wake(S, j);
  }
}

/* A running task is never queued: its status may still say PARKED if a
 * resume that bypasses the coroutine wrappers swallowed its suspension. */
void lmp_wake(struct lmp_state *S, struct lmp_task *t) {
  if (t->status == LMP_DONE) return;
  t->woken = 1;
  if (t->status == LMP_PARKED && !t->sleeping && t != S->current)
    lmp_ready_push(S, t);
  else if (t->is_main) mp_loop_stop(S->loop);
}

static int nothing_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L, (void)status, (void)ctx;
  return 0;
}

int lmp_park_wq(lua_State *L, struct lmp_wq *q, lua_KFunction k,
                const char *fname) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  if (interrupted_at(L, t)) return raise_interrupt(L, t);
  if (!lua_isyieldable(L)) return cannot_suspend(L, fname);
  if (no_side(L, S, t)) return luaL_error(L, NOMEM);
  lua_settop(L, 3);
  lua_KContext id = new_wait(L, S, t); /* it may unlink a stale wait */
  /* queued while running (see park): next is about to be the queue's */
  if (t->status == LMP_READY) lmp_ready_remove(S, t);
  t->status = LMP_PARKED;
  t->next = NULL;
  t->jprev = q->tailp;
  *q->tailp = t;
  q->tailp = &t->next;
  t->wq = q;
  t->queued = 1;
  t->handed = t->qclosed = 0;
  lua_pushlightuserdata(L, (void *)id); /* whose frame (run_cleanup) */
  lua_pushlightuserdata(L, LMP_SENTINEL);
  return lua_yieldk(L, 1, id, k);
}

int lmp_wq_refusal(lua_State *L, const char *fname) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  if (t->is_main) return 0;
  if (!lua_isyieldable(L)) lua_pushfstring(L, CANNOT_SUSPEND, fname);
  else if (no_side(L, S, t)) lua_pushliteral(L, NOMEM);
  else return 0;
  return 1;
}

void lmp_wq_wake(struct lmp_state *S, struct lmp_task *t, int handed) {
  lmp_wq_remove(t);
  if (handed) t->handed = 1;
  else t->qclosed = 1;
  lmp_ready_push(S, t);
}

int lmp_abandoned(lua_State *L) {
  return luaL_error(L, ABANDONED);
}

int lmp_wq_resumed(lua_State *L, lua_KContext ctx) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  if (!ctx || t->wait != (uint32_t)ctx || lmp_wait_co(t) != L) {
    /* resumed by another task: what was handed over is the resumer's */
    if (ctx && release_owner(L, S, ctx)) return LMP_WQ_FOREIGN;
    return lmp_abandoned(L);
  }
  t->wait = 0;
  lmp_unlink_wait(t); /* resumed by a foreign resume */
  t->cleanup = 0;
  if (t->handed) {
    t->handed = 0;
    return LMP_WQ_HANDED;
  }
  if (t->qclosed) {
    t->qclosed = 0;
    return LMP_WQ_CLOSED;
  }
  if (interrupted(t)) return raise_interrupt(L, t);
  return LMP_WQ_AGAIN;
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  struct lmp_task *t = check_wait(L, ctx);
  (void)status;
  if (!t->sleeping) return 0; /* due */
  lmp_sleeper_remove(lmp_state(L), t);
  if (interrupted(t)) return raise_interrupt(L, t);
  return 0;
}

static int sleep_done(lua_State *L, struct mp_op *op) {
  (void)L;
  mp_op_release(op);
  return 0;
}

int lmp_sleep(lua_State *L, int64_t ns, const char *fname) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  mp_loop_update_time(S->loop); /* the sleep starts now, not at turn start */
  if (t->is_main) { /* it may nest (a finalizer): an op of its own */
    struct mp_op *op = mp_op_new(S->loop, NULL, NULL);
    if (!op) return luaL_error(L, "not enough memory");
    mp_op_prep_timer(op, ns);
    return lmp_await(L, op, sleep_done, fname);
  }
  if (interrupted_at(L, t)) return raise_interrupt(L, t);
  if (!lua_isyieldable(L)) return cannot_suspend(L, fname);
  if (no_side(L, S, t)) return luaL_error(L, NOMEM);
  if (lmp_sleep_reserve(S) < 0) return luaL_error(L, "not enough memory");
  lua_KContext id = new_wait(L, S, t);
  if (lmp_sleep_insert(S, t, mp_loop_now(S->loop) + ns) < 0) {
    t->wait = 0;
    return luaL_error(L, "not enough memory");
  }
  t->status = LMP_PARKED;
  lua_pushlightuserdata(L, LMP_SENTINEL);
  return lua_yieldk(L, 1, id, sleep_k);
}

/* Yields to the other ready tasks (sleep(0)): the main context runs one
 * turn without waiting instead. */
int lmp_yield(lua_State *L, const char *fname) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  if (interrupted_at(L, t)) return raise_interrupt(L, t);
  if (t->is_main) {
    lmp_step(S, 0);
    return 0;
  }
  if (!lua_isyieldable(L)) return cannot_suspend(L, fname);
  if (no_side(L, S, t)) return luaL_error(L, NOMEM);
  lmp_ready_push(S, t);
  return suspend(L, S, t, nothing_k, 0, park_k);
}

/* An interruption as lmp_wait returns it: the value, then true (raised
 * as it is, where a message gets its caller's position). */
static int wait_interrupt(lua_State *L, struct lmp_task *t) {
  push_interrupt(L, t);
  lua_pushboolean(L, 1);
  return 2;
}

/* lmp_wait's continuation: park_k, but what park_k raises is returned. */
static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  (void)status;
  if (!ctx || t->wait != (uint32_t)ctx || lmp_wait_co(t) != L) {
    if (ctx) release_owner(L, S, ctx);
    lua_pushliteral(L, ABANDONED);
    return 1;
  }
  t->wait = 0;
  t->pk = NULL;
  t->cleanup = 0;
  if (t->woken) t->woken = 0;
  else if (interrupted(t)) return wait_interrupt(L, t);
  return 0;
}

int lmp_wait(lua_State *L, const char *fname) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  if (interrupted_at(L, t)) return wait_interrupt(L, t);
  if (t->woken) {
    t->woken = 0;
    return 0;
  }
  if (t->is_main) {
    while (!t->woken && !interrupted(t)) {
      if (!lmp_step(S, 1)) {
        lua_pushfstring(L, DEADLOCK, fname);
        return 1;
      }
    }
    if (!t->woken) return wait_interrupt(L, t);
    t->woken = 0;
    return 0;
  }
  if (!lua_isyieldable(L)) {
    lua_pushfstring(L, CANNOT_SUSPEND, fname);
    return 1;
  }
  if (no_side(L, S, t)) {
    lua_pushliteral(L, NOMEM);
    return 1;
  }
  lua_settop(L, 3);
  t->status = LMP_PARKED;
  return suspend(L, S, t, NULL, 1, wait_k);
}

/* Runs the cleanup of suspension id that t just let go of, which came
 * from co (a live thread: the caller holds it): the function lmp_wait or
 * lmp_park_cleanup left in its frame on co's stack, with the two values
 * after it, if co is still suspended there (a park a foreign resume
 * swallowed leaves a wait whose coroutine may have run on, or been
 * collected and its address reused). */
static void run_cleanup(lua_State *L, lua_State *co, int cleanup,
                        lua_KContext id) {
  if (!cleanup || !co || lua_status(co) != LUA_YIELD ||
      lua_gettop(co) < 4 || lua_touserdata(co, 4) != (void *)id)
    return;
  lua_checkstack(co, 3); /* within the parked frame: cannot fail */
  for (int i = 1; i <= 3; i++) lua_pushvalue(co, i);
  lua_xmove(co, L, 3);
  lua_call(L, 2, 0);
}

void lmp_task_release_ops(struct lmp_state *S, struct lmp_task *t) {
  lmp_unlink_wait(t);
  if (t->sleeping) lmp_sleeper_remove(S, t);
  if (t->op) lmp_drop_op(t->op);
  t->op = NULL;
  t->wait = 0;
  if (!t->side) return;
  for (int i = 0; i < t->side->n; i++) lmp_drop_op(t->side->d[i].op);
  t->side->n = t->side->nexpired = 0;
}

/* Only a task has this __gc (its metatable is protected): no check. */
static int task_gc(lua_State *L) {
  struct lmp_task *t = lua_touserdata(L, 1);
  lmp_task_release_ops(lmp_state(L), t);
  /* Joiners left (lua_close finalizes in any order): they let go of the
   * list, which goes with the side block. */
  for (struct lmp_task *j = t->side ? t->side->joiners : NULL, *after; j;
       j = after) {
    after = j->next;
    j->next = NULL;
    j->op = NULL;
    j->joining = 0;
  }
  free(t->side);
  t->side = NULL;
  return 0;
}

/* The coroutine wrappers call this when a user coroutine suspended on IO
 * but the task cannot yield to the loop (a C call is in between): the
 * suspension ends here (its op orphaned, the task out of the ready queue,
 * a park's cleanup run), so nothing waits on it; resuming that coroutine
 * later raises "operation abandoned". */
static int l_abandon(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  int cleanup = t->cleanup;
  lua_KContext id = t->wait;
  /* the end of the chain that suspended: t->wait_co, unless that wait
   * is stale (its coroutine may be gone) */
  lua_State *co = lua_tothread(L, 1);
  if (co != lmp_wait_co(t)) co = NULL;
  if (t->is_main || !t->wait) return 0;
  if (t->status == LMP_READY) lmp_ready_remove(S, t); /* sleep(0) */
  lmp_forget_wait(L, S, t);
  t->status = LMP_RUNNING;
  run_cleanup(L, co, cleanup, id);
  return 0;
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
    if (t && !t->is_main && t->wait && lmp_wait_co(t) == co) owner = t;
    lua_pop(L, 1);
  }
  lua_pop(L, owner ? 2 : 1);
  if (!owner) return;
  int cleanup = owner->cleanup;
  lua_KContext id = owner->wait;
  lmp_forget_wait(L, S, owner);
  if (owner != S->current) {
    owner->woken = 0; /* a wake for co: its cleanup passes a value on */
    if (owner->status == LMP_WAITING || owner->status == LMP_PARKED)
      lmp_ready_push(S, owner);
  }
  run_cleanup(L, co, cleanup, id);
}

static int timeout_tostring(lua_State *L) {
  lua_pushliteral(L, "timeout");
  return 1;
}

void lmp_open_core(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg meta[] = {{"__gc", task_gc}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"abandon", l_abandon}, {NULL, NULL}};
  /* The task type: its methods come with lsched.c/ltask.c (lmp_new_class
   * adds them); __gc is here, before the first task is made, so that
   * every task is marked for finalization. */
  luaL_newmetatable(L, LMP_TASK);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, meta, 1);
  lua_pushliteral(L, LMP_TASK); /* scripts cannot reach __gc */
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  lua_pushlightuserdata(L, LMP_SENTINEL);
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
  struct lmp_task *m = lmp_new_task(L, S);
  m->is_main = 1;
  m->status = LMP_RUNNING;
  lmp_anchor(L, S, m);
  lua_pop(L, 1);
  S->main = m;
}
