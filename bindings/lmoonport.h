/* lmoonport.h: helpers shared by the binding files (lmp_*). */
#ifndef LMOONPORT_H
#define LMOONPORT_H

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

struct lmp_task {
  struct lmp_state *S;
  lua_State *co;         /* the coroutine (the userdata's user value) */
  struct mp_op *op;      /* the op it waits on, until its continuation */
  lmp_done k;            /* what gets op then */
  lua_KFunction pk;      /* parked: what runs when it wakes */
  lua_KContext pctx;
  lua_KContext wait;     /* id of the pending suspension, 0 if none */
  lua_State *wait_co;    /* the coroutine that suspended (when wait) */
  int cleanup;           /* parked: ref of the function run if abandoned */
  struct lmp_task *next; /* ready queue */
  struct lmp_deadline *deadlines; /* mp.timeout timers, oldest first */
  int ndeadlines, capdeadlines;
  int nexpired;          /* fired deadlines that apply (live) */
  int anchor;            /* ref in S's anchor table while not DONE */
  int nres;              /* DONE: results (or the error) on co's stack */
  unsigned char status;
  unsigned char cancel;  /* cancel() requested, not yet raised */
  unsigned char woken;   /* lmp_wake arrived, not yet consumed by a park */
  unsigned char failed, joined, reported, watched, is_main;
  unsigned char has_joiners; /* S->waiters holds an entry for it */
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
  lua_State *volatile running; /* the running task's thread (a signal
                                  handler reads it: moonport_running) */
  int anchors;              /* registry ref: task anchor table */
  lua_KContext lastwait;    /* suspension ids, unique in this state */
  int waiters;              /* registry ref: target task -> joiners */
  int taskcos;              /* registry ref: the tasks' coroutines (weak) */
  struct lmp_leakcheck *leakcheck; /* MOONPORT_LEAK_CHECK (ldebug.c) */
};

#define LMP_TASK "moonport.task"
#define LMP_STATE "moonport.state"    /* the state userdata's metatable */
#define LMP_STATE_KEY "moonport.S"   /* registry: the state userdata */

/* The state, from the first upvalue of every core function. */
#define lmp_state(L) \
  ((struct lmp_state *)lua_touserdata(L, lua_upvalueindex(1)))
struct lmp_state *lmp_getstate(lua_State *L); /* from the registry */

/* The task running now: a real task, or S->main outside any task. */
struct lmp_task *lmp_self(struct lmp_state *S);

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
/* The callback lmp_await installs when op->cb is NULL: readies the task,
 * or releases an orphaned op (data NULL). Op types that own more than
 * op->owned install their own callback that frees it and chains here.
 * A callback runs when the op completes (also on a failed submit, before
 * k), and again with data NULL if the op is then discarded rather than
 * handed to k: it frees what it owns only when data is NULL, and its
 * other bookkeeping must be idempotent. */
void lmp_task_op_cb(struct mp_op *op);

/* Suspends the caller until lmp_wake(task) (or returns at once if a wake
 * already arrived), then returns k(L, LUA_YIELD or LUA_OK, ctx). Raises
 * "cancelled" or the timeout error, unless a wake arrived first: then the
 * interruption applies to the next suspension, so what a waker handed over
 * (a channel value) is never lost. */
int lmp_park(lua_State *L, lua_KFunction k, lua_KContext ctx,
             const char *fname);
void lmp_wake(struct lmp_task *t);
/* co is being closed: the task whose suspension came from it lets go. */
int lmp_is_task_co(lua_State *L, struct lmp_state *S, int idx);
void lmp_release(lua_State *L, struct lmp_state *S, lua_State *co);

/* Pushes "nil, message, code" for an MP_E* error; returns 3. */
int lmp_fail(lua_State *L, int err, const char *what);

/* Registration of each object type's functions into the core table at
 * the top of the stack (each closure gets S as upvalue 1). */
void lmp_open_task(lua_State *L, struct lmp_state *S);
void lmp_open_work(lua_State *L, struct lmp_state *S);
/* mp.work's value encoding (lwork.c), exposed for tests/fuzz/work.c. */
const char *lmp_work_encode(lua_State *L, int idx, int n, int *bad);
const char *lmp_work_decode(lua_State *L, const char *p, int n);
void lmp_open_repl(lua_State *L, struct lmp_state *S);
int lmp_repl_fd(int fd); /* a descriptor of the REPL's terminal */
void lmp_repl_abort(void); /* state closing: end a line being read */
void lmp_open_coro(lua_State *L, struct lmp_state *S); /* lcoro.c */
void lmp_open_file(lua_State *L, struct lmp_state *S); /* core.fs.open */
void lmp_open_fs(lua_State *L, struct lmp_state *S);   /* core.fs paths */

/* lfs.c: shared with lfile.c. */
struct statx;
void lmp_push_stat(lua_State *L, const struct statx *st);
const char *lmp_checkpath(lua_State *L, int i); /* a string without NULs */
void lmp_open_socket(lua_State *L, struct lmp_state *S); /* lstream.c */
void lmp_open_server(lua_State *L, struct lmp_state *S); /* lserver.c */
void lmp_open_udp(lua_State *L, struct lmp_state *S);    /* ludp.c */
void lmp_open_dns(lua_State *L, struct lmp_state *S);    /* ldns.c */

/* Registers an object type: metatable `name` with the metamethods meta and
 * an __index table of methods, every function with S as upvalue 1. Leaves
 * the metatable on the stack. */
void lmp_new_class(lua_State *L, struct lmp_state *S, const char *name,
                   const luaL_Reg *meta, const luaL_Reg *methods);

/* ldebug.c: mp.debug, and the leak check at state close. */
void lmp_push_debug(lua_State *L, struct lmp_state *S);
void lmp_leakcheck_start(struct lmp_state *S);
void lmp_leakcheck_end(struct lmp_state *S, size_t nlive, int close_err);

/* The scheduler (ltask.c). */
void lmp_task_spawn(lua_State *L, struct lmp_state *S, int nargs);
void lmp_run_ready(struct lmp_state *S);
int lmp_step(struct lmp_state *S, int may_wait); /* 0: nothing can run */
void lmp_task_cancel(struct lmp_task *t); /* task:cancel() */
void lmp_ready_push(struct lmp_task *t); /* to the ready queue */
/* Gives back an op its task no longer waits for: orphaned if in flight
 * (released by its callback on completion), else discarded now. */
void lmp_drop_op(struct mp_op *op);
void lmp_open_deadline(lua_State *L, struct lmp_state *S); /* ldeadline.c */
/* Runs until every task has ended: 0, or -1 on a deadlock (the stuck
 * tasks cancelled and run to their end); lmp_push_deadlock says so. */
int lmp_run_all(struct lmp_state *S);
int lmp_push_deadlock(lua_State *L, struct lmp_state *S);
void lmp_push_task(lua_State *L, struct lmp_task *t);
void lmp_task_release_ops(struct lmp_task *t);

#endif
