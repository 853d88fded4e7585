/* lcore.h: the lowest layer of the bindings: the per-state record, the
 * task record, the await primitive every binding suspends with, class
 * registration and the one error path. Not a public header.
 *
 * The layering (a file includes only headers of its own or lower layers;
 * `grep -n '#include "' bindings/l*.c` shows it):
 *   1. lcore.h        state, tasks, await/park/wake, lmp_fail
 *   2. lbuf.h         the read buffer (and the handle object)
 *   3. objects        lfile.h, lsock.h, lfs.h, lwork.h, lcoro.h,
 *                     ldeadline.h, ldebug.h, lrepl.h, lchan.h
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

#include "moonport.h"

/* Task states. */
enum {
  LMP_NEW,     /* spawned, waiting for its first turn */
  LMP_READY,   /* in the ready queue */
  LMP_RUNNING, /* being resumed (or the main context, always) */
  LMP_WAITING, /* suspended on task->op */
  LMP_PARKED,  /* suspended until lmp_wake (join, channel, sleep(0)) */
  LMP_DONE
};

struct lmp_state;
struct lmp_leakcheck;

/* What runs when an op a task waited on completes: op is the task's again
 * (released by k or resubmitted); interruptions were raised before. */
typedef int (*lmp_done)(lua_State *L, struct mp_op *op);

/* An mp.timeout deadline: its timer, and the coroutine whose mp.timeout
 * pushed it; it applies to a suspension only while co is on the
 * suspending coroutine's resume chain (live). */
struct lmp_deadline {
  struct mp_op *op;
  lua_State *co;
  lua_KContext id;       /* what its guard (the Lua side) names it by */
  int live;
};

/* What few tasks need, kept out of the task record: allocated by the
 * first mp.timeout deadline, the first suspension that came from a
 * coroutine inside the task, or the first task that joins it. */
struct lmp_side {
  lua_State *wait_co;    /* the coroutine that suspended (when the task's
                            wait is pending), if not the task's own */
  struct lmp_task *joiners; /* tasks parked in join on this one, newest
                               first (lmp_park_join); a realloc of the
                               block moves the first one's jprev */
  int n, cap;            /* mp.timeout deadlines */
  int nexpired;          /* fired deadlines that apply (live) */
  struct lmp_deadline d[]; /* oldest first */
};

/* Every parked task has one, so it is kept small (bench/parked.sh): 48
 * bytes. Its state is reached through the caller (a core function's
 * upvalue) or the loop (lmp_op_state), not through the record. */
struct lmp_task {
  lua_State *co;         /* the coroutine (kept by S->anchors, then
                            S->done: lmp_anchor) */
  union {
    struct mp_op *op;    /* the op it waits on, until its continuation */
    struct lmp_task **jprev; /* joining: what points to it in its
                                target's list (next: the one after) */
  };
  union {                /* one suspension at a time: */
    lmp_done k;          /* waiting on op: what gets op then */
    lua_KFunction pk;    /* parked: what runs when it wakes */
    size_t slot;         /* sleeping: its entry in S->sleepers */
  };
  struct lmp_task *next; /* ready queue, or the joiner list */
  struct lmp_side *side; /* NULL until needed */
  /* Id of the pending suspension, 0 if none: unique among the pending
   * ones, it wraps after 2^32 suspensions of the state (see new_wait). */
  uint32_t wait;
  unsigned status : 3;
  unsigned cancel : 1;   /* cancel() requested, not yet raised */
  unsigned woken : 1;    /* lmp_wake arrived, not yet consumed by a park */
  unsigned failed : 1, joined : 1, reported : 1, watched : 1, is_main : 1;
  unsigned has_joiners : 1; /* S->waiters holds an entry for it */
  unsigned joining : 1;  /* on a target's joiner list (jprev, next) */
  unsigned joined_by : 1; /* a task parked in join on it, until it ends
                             (its failure is then not reported) */
  unsigned sleeping : 1; /* in mp.sleep: an entry in S->sleepers */
  unsigned cleanup : 1;  /* parked: the function lmp_wait or
                            lmp_park_cleanup left in its frame runs if
                            the coroutine is abandoned */
};
/* Once DONE, co's stack holds the task, then its results or error. */

/* The coroutine a pending suspension (t->wait) came from. */
static inline lua_State *lmp_wait_co(const struct lmp_task *t) {
  return t->side && t->side->wait_co ? t->side->wait_co : t->co;
}

/* A task in mp.sleep: an entry in its state's min-heap, ordered by due
 * time, then by start (the suspension id, t->wait). */
struct lmp_sleeper {
  int64_t due;
  struct lmp_task *t;
};

/* The REPL's line input: lrepl.c reads lines with stdio unless the host
 * installed its own (lmp_repl_set: the moonport command's terminal, with
 * line editing, cmd/mterm.c). What sits behind it (a terminal) may be
 * process-wide. Only read is required. */
struct lmp_line;
struct lmp_lineio {
  /* On a pool thread: sets line->line (malloc'd, NULL at the end of
   * input) or line->interrupted (Ctrl-C dropped it). */
  void (*read)(struct lmp_line *line);
  void (*add_history)(const char *entry); /* a complete entry */
  void (*interrupt)(void); /* Ctrl-C: drop the line being typed */
  void (*abort)(void);     /* the state is closing: end a read now */
  /* Whether h is one of its process-wide handles, kept until exit (the
   * leak check at state close skips them). */
  int (*owns)(mp_handle_t h);
};

struct lmp_state {
  struct mp_loop *loop;
  lua_State *L;             /* the main state */
  int own_loop;
  int closing;
  struct lmp_task *current; /* the task being resumed, NULL in main */
  struct lmp_task *main;    /* pseudo-task for the main context */
  struct lmp_task *ready_head, *ready_tail;
  int ntasks;               /* spawned and not DONE */
  int unhandled;
  int deadlocked;            /* tasks cancelled by the last deadlock */
  int warn_dropped;         /* opened by require: say so if tasks are lost */
  int host_refs;            /* moonport_ref: the host feeds tasks */
  int shared_process;       /* a worker: other states share the process */
  lua_State *volatile running; /* the running task's thread (a signal
                                  handler reads it: moonport_running) */
  int anchors;              /* registry ref: co -> task while not DONE */
  int done;                 /* registry ref: task -> co once DONE (weak
                               keys) */
  int undone;               /* DONE tasks still anchored (out of memory) */
  uint64_t lastwait;        /* suspension and deadline ids */
  int waiters;              /* registry ref: target task -> joiners */
  /* mp.sleep's timers (lcore.c): the sleeping tasks, and one loop timer
   * armed for the earliest (sleep_op, due at sleep_due) */
  struct lmp_sleeper *sleepers;
  size_t nsleepers, capsleepers;
  struct mp_op *sleep_op;
  int64_t sleep_due;
  struct lmp_leakcheck *leakcheck; /* MOONPORT_LEAK_CHECK (ldebug.c) */
  /* Hooks the layers above install (lsched.c, the host's lmp_repl_set): */
  void (*run_ready)(struct lmp_state *S); /* resumes the ready tasks */
  const struct lmp_lineio *lineio;        /* the REPL's line input */
  /* Set while mp.stdout's bytes wait in C stdio's buffer of stdout
   * (lfwrite.c): lmp_step calls it before the loop may wait, to write
   * them out (through drain_op when stdout is not writable yet); a
   * failure is kept in drain_err for mp.stdout's next write. */
  void (*before_wait)(struct lmp_state *S);
  struct mp_op *drain_op;
  int drain_err;
};

/* What every suspension yields (the coroutine wrappers pass it up). */
extern const char lmp_sentinel;
#define LMP_SENTINEL ((void *)&lmp_sentinel)

#define LMP_TASK "moonport.task"
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

/* ---- Tasks and the ready queue ---- */

/* Pushes a new task record (status 0, no coroutine yet). */
struct lmp_task *lmp_new_task(lua_State *L, struct lmp_state *S);
/* Anchors the task at the top of the stack, with its coroutine t->co (set
 * first; none for the main context): neither is collected while the task
 * is alive. lmp_unanchor lets the task go when it ends; from then on the
 * task keeps co alive. lmp_push_task pushes an anchored task. */
void lmp_anchor(lua_State *L, struct lmp_state *S, struct lmp_task *t);
void lmp_unanchor(lua_State *L, struct lmp_state *S, struct lmp_task *t);
void lmp_push_task(lua_State *L, struct lmp_state *S, struct lmp_task *t);
/* to the ready queue */
void lmp_ready_push(struct lmp_state *S, struct lmp_task *t);
void lmp_ready_remove(struct lmp_state *S, struct lmp_task *t);

/* Runs the ready tasks (through S->run_ready) and a loop turn, waiting
 * for a completion if may_wait and nothing is ready; 0: nothing can run
 * (no task ready, no op in flight, no post waiting). */
int lmp_step(struct lmp_state *S, int may_wait);

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
/* Whether the thread at idx is a task's own coroutine. */
int lmp_is_task_co(lua_State *L, struct lmp_state *S, int idx);
/* co is being closed: the task whose suspension came from it lets go. */
void lmp_release(lua_State *L, struct lmp_state *S, lua_State *co);

/* Registers the task metatable (__gc), the main context's task record
 * and the core table's await-level fields: SENTINEL, TIMEOUT, abandon.
 * First of all the lmp_open_* calls. */
void lmp_open_core(lua_State *L, struct lmp_state *S);

#endif
