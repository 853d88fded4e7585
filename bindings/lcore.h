/* lcore.h: the lowest layer of the bindings: the per-state record, the
 * task record, the await primitive every binding suspends with, class
 * registration and the one error path. Not a public header.
 *
 * The layering (a file includes only headers of its own or lower layers;
 * `grep -n '#include "' bindings/l*.c` shows it):
 *   1. lcore.h        await/park/wake, lmp_fail; below it, lanchor.h
 *                     (task records anchored, lmp_step) and lqueue.h
 *                     (the ready queue, mp.sleep's heap: no Lua), under
 *                     those lstate.h (the state and task records: types
 *                     only) and lptrset.h (an address set)
 *   2. lbuf.h         the read buffer (and the handle object)
 *   3. objects        lfile.h, lsock.h, lfs.h, lwork.h, lcoro.h,
 *                     ldeadline.h, ldebug.h, lrepl.h, lchan.h, lsem.h
 *                     (none includes another but lbuf.h/lcore.h)
 *   4. lsched.h       the scheduler; ltask.h the task methods; lhost.c
 *   5. lmoonport.c    opens everything
 * Where a lower layer needs something above it (the await primitive
 * running ready tasks outside any task), the state holds a hook the
 * higher layer installs. */
#ifndef LCORE_H
#define LCORE_H

#include <lauxlib.h>
#include <lua.h>

#include "lanchor.h"
#include "lqueue.h"
#include "lstate.h"
#include "moonport.h"

/* What every suspension yields (the coroutine wrappers pass it up). */
extern const char lmp_sentinel;
#define LMP_SENTINEL ((void *)&lmp_sentinel)

#define LMP_STATE "moonport.state"    /* the state userdata's metatable */
#define LMP_STATE_KEY "moonport.S"   /* registry: the state userdata */

/* The state, from the first upvalue of every core function. */
#define lmp_state(L) \
  ((struct lmp_state *)lua_touserdata(L, lua_upvalueindex(1)))
struct lmp_state *lmp_getstate(lua_State *L); /* from the registry */

/* The task running now: a real task, or S->main outside any task. */
struct lmp_task *lmp_self(struct lmp_state *S);
/* The state an op of its was made for (moonport_open keeps S as its
 * loop's data): what op callbacks reach it by. */
static inline struct lmp_state *lmp_op_state(const struct mp_op *op) {
  return mp_loop_data(mp_op_loop(op));
}

/* ---- The error path ----
 *
 * Pushes nil, "what: message" (just the message when what is NULL) and
 * the code (mp_errname: "ENOENT", "EAI_NONAME", ...; "cancelled" for
 * MP_ECANCELED) for any MP_E* error, the resolver's MP_EAI_* included;
 * returns 3. This is the only place that builds an IO failure: special
 * wordings (a socket's "closed" or "timeout", a path "name: message")
 * are made by choosing err and what before calling it. */
int lmp_fail(lua_State *L, int err, const char *what);
/* Codes of the bindings that lmp_fail words itself: a socket deadline
 * ("timed out", "timeout"), a stream's end ("end of stream", "EOF"), and
 * two net argument failures named "EINVAL". */
enum {
  LMP_ETIMEOUT = -5100, LMP_EEOS = -5101, LMP_EBADPATH = -5102,
  LMP_EBADNAME = -5103,
  LMP_ETLS = -5104, LMP_ECERT = -5105 /* TLS: ltls.c adds the reason */
};

/* Registers an object type: metatable `name` with the metamethods meta and
 * an __index table of methods, every function with S as upvalue 1. Leaves
 * the metatable on the stack. An existing metatable (the task's, made by
 * lmp_open_core) gets the functions added. */
void lmp_new_class(lua_State *L, struct lmp_state *S, const char *name,
                   const luaL_Reg *meta, const luaL_Reg *methods);

/* ---- Tasks (the records: lanchor.h; the ready queue: lqueue.h) ---- */

/* ---- The await primitive ---- */

/* Suspends the caller until op (prepared, owned by the caller) completes,
 * then returns k(L, op). Works inside tasks (yields), inside a user
 * coroutine in a task (the yield is forwarded), and outside any task
 * (runs the loop until op completes). The continuation is the core's: it
 * checks that the suspension is the running task's own (a coroutine
 * abandoned while suspended and resumed later, or resumed by another task,
 * gets the error "operation abandoned" and its op is never touched), takes
 * the op back and raises "cancelled" or the timeout error when the task
 * was interrupted (the op is then discarded through its callback), and
 * only then calls k. So k never sees an op that is not its own. fname
 * names the Lua function for error messages. (lmp_await and lmp_park must
 * be called from a core function, whose upvalue 1 is the state.) */
int lmp_await(lua_State *L, struct mp_op *op, lmp_done k, const char *fname);
/* Gives op up without waiting: data is cleared and its callback runs, which
 * releases it, freeing what it owns (or it is released if it has none). */
void lmp_op_discard(struct mp_op *op);
/* Gives back an op its task no longer waits for: orphaned if in flight
 * (released by its callback on completion; cancelled unless protected),
 * else discarded now. */
void lmp_drop_op(struct mp_op *op);
/* A cancel or timeout interrupting the task waiting on op: cancels op
 * unless it is protected (a flush of bytes write() already accepted: a
 * regular file's, bounded), which the task then waits for before raising
 * the interruption, so they reach the file. */
void lmp_interrupt_op(struct mp_op *op);
/* The callback lmp_await installs when op->cb is NULL: readies the task,
 * or releases an orphaned op (data NULL). Op types that own more than
 * op->owned install their own callback that frees it and chains here.
 * A callback runs when the op completes (also on a failed submit, before
 * k), and again with data NULL if the op is then discarded rather than
 * handed to k: it frees what it owns only when data is NULL, and its
 * other bookkeeping must be idempotent. */
void lmp_task_op_cb(struct mp_op *op);

/* Suspends the caller until lmp_wake(task) (or returns at once if a wake
 * already arrived), then returns k(L, LUA_YIELD or LUA_OK, 0). Raises
 * "cancelled" or the timeout error, unless a wake arrived first: then the
 * interruption applies to the next suspension, so what a waker handed over
 * (a channel value) is never lost. lmp_park_cleanup: if the parked
 * coroutine is abandoned or closed, the function at stack index 1 runs
 * with the values at 2 and 3 (so a channel can take its waiter back): they
 * stay in the caller's frame (the stack is cut to those three), so
 * nothing is allocated to park. */
int lmp_park(lua_State *L, lua_KFunction k, const char *fname);
int lmp_park_cleanup(lua_State *L, lua_KFunction k, const char *fname);
/* As lmp_park, for a task (not the main context) that waits for the
 * task at stack index 1 (kept there) to end: it parks on that target's
 * joiner list, which costs no memory per joiner (the record's ready-queue
 * link and op word chain it while it is parked); lmp_wake_joiners wakes
 * them in the order they came. The target's end wins over an
 * interruption, as a wake does. */
int lmp_park_join(lua_State *L, lua_KFunction k, const char *fname);
void lmp_wake_joiners(struct lmp_state *S, struct lmp_task *target);
/* The side block moved (realloc): its first joiner points at it. */
static inline void lmp_side_moved(struct lmp_side *x) {
  if (x->joiners) x->joiners->jprev = &x->joiners;
}
void lmp_wake(struct lmp_state *S, struct lmp_task *t);
/* Parks the running task (not the main context) at the tail of q until
 * lmp_wq_wake (or an interruption, or its coroutine let go) takes it
 * off; then runs k, which calls lmp_wq_resumed first. The
 * caller's frame is cut to 3 values, which stay there while it is
 * parked (the object's own: a value to hand over, the place where one
 * is handed); if the task sets t->cleanup (a hand-over that must be
 * passed on if the coroutine is abandoned or closed), the function at 1
 * runs with 2 and 3, as lmp_park_cleanup's. Raises as lmp_park does
 * before it parks. A parked waiter costs no memory: it is linked through
 * its own record, and unlinked in O(1) from wherever it is. */
int lmp_park_wq(lua_State *L, struct lmp_wq *q, lua_KFunction k,
                const char *fname);
/* What lmp_park_wq would raise for the running task before it parks,
 * but for an interruption (cannot suspend here, out of memory), pushed
 * (1), or 0: for a caller that raises it at another level. */
int lmp_wq_refusal(lua_State *L, const char *fname);
/* Whether queued t is not suspended there any more: its task runs on
 * after a resume that bypasses the coroutine wrappers swallowed the park
 * (its wait coroutine may be gone: read nothing of it then). */
static inline int lmp_wq_stale(struct lmp_state *S,
                               const struct lmp_task *t) {
  return t == S->current;
}
/* Takes queued t off for a hand-over (handed) or the close and readies
 * it. */
void lmp_wq_wake(struct lmp_state *S, struct lmp_task *t, int handed);
/* What k of lmp_park_wq calls first: raises "operation abandoned" if the
 * suspension is not the running task's own, unless its task had been
 * handed something: LMP_WQ_FOREIGN (its task let go of it; what was
 * handed is the resumer's to keep or pass on: lmp_abandoned raises the
 * message then); else LMP_WQ_HANDED or LMP_WQ_CLOSED, or raises a
 * pending interruption, or LMP_WQ_AGAIN (woken for nothing: taken off as
 * stale, its task running on, then resumed through the wrappers: it gets
 * back in line). */
enum { LMP_WQ_AGAIN, LMP_WQ_HANDED, LMP_WQ_CLOSED, LMP_WQ_FOREIGN };
int lmp_wq_resumed(lua_State *L, lua_KContext ctx);
int lmp_abandoned(lua_State *L);
/* As lmp_park_cleanup, but what it would raise (an interruption,
 * "operation abandoned", cannot suspend, the main program's deadlock) is
 * returned instead: 0 results when woken; an interruption and true (to
 * be raised as it is); a message naming fname (to be raised with the
 * position of the caller's caller), so a waiter takes itself out of its
 * queue without a pcall. */
int lmp_wait(lua_State *L, const char *fname);
/* Suspends the task for ns nanoseconds (> 0) from now, then returns
 * nothing; raises "cancelled" or the timeout error when interrupted. A
 * sleeping task costs an entry in its state's heap of sleepers (no op:
 * one loop timer serves them all). */
int lmp_sleep(lua_State *L, int64_t ns, const char *fname);
/* sleep(0): lets the other ready tasks run, then returns nothing. */
int lmp_yield(lua_State *L, const char *fname);
/* Ends t's pending suspension without running its continuation. */
void lmp_forget_wait(lua_State *L, struct lmp_state *S, struct lmp_task *t);
/* Gives back the op and deadlines a task holds (it ended, or was
 * collected). */
void lmp_task_release_ops(struct lmp_state *S, struct lmp_task *t);
/* co is being closed: the task whose suspension came from it lets go. */
void lmp_release(lua_State *L, struct lmp_state *S, lua_State *co);

/* Registers the task metatable (__gc), the main context's task record
 * and the core table's await-level fields: SENTINEL, TIMEOUT, abandon.
 * First of all the lmp_open_* calls. */
void lmp_open_core(lua_State *L, struct lmp_state *S);

#endif
