/* lstate.h: the types under the bindings' core: the per-state record,
 * the task record and what hangs off it (wait queues, mp.timeout
 * deadlines, mp.sleep's heap entries). Types and inline helpers only: no
 * function defined in a .c file, so lqueue.c, below lcore.c, can use
 * them (lcore.h includes this). Not a public header. */
#ifndef LSTATE_H
#define LSTATE_H

#include <lua.h>

#include "lptrset.h"
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

/* A FIFO of tasks parked on an object (a channel's receivers or
 * senders, a lock's waiters), linked through their own records (jprev,
 * next: free while a task is parked), so a waiter costs no memory: see
 * lmp_park_wq. Its address must not change while it holds tasks. */
struct lmp_wq {
  struct lmp_task *head;
  struct lmp_task **tailp; /* &head when empty, else &last->next */
};
static inline void lmp_wq_init(struct lmp_wq *q) {
  q->head = NULL;
  q->tailp = &q->head;
}

/* Every parked task has one, so it is kept small (bench/parked.sh): 48
 * bytes. Its state is reached through the caller (a core function's
 * upvalue) or the loop (lmp_op_state), not through the record. */
struct lmp_task {
  lua_State *co;         /* the coroutine (kept by S->anchors, then
                            S->done: lmp_anchor) */
  union {
    struct mp_op *op;    /* the op it waits on, until its continuation */
    struct lmp_task **jprev; /* joining or queued: what points to it
                                in its list (next: the one after) */
  };
  union {                /* one suspension at a time: */
    lmp_done k;          /* waiting on op: what gets op then */
    lua_KFunction pk;    /* parked: what runs when it wakes */
    size_t slot;         /* sleeping: its entry in S->sleepers */
    struct lmp_wq *wq;   /* queued: the queue it is on */
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
  unsigned queued : 1;   /* on an lmp_wq (jprev, next, wq) */
  unsigned handed : 1;   /* taken off its lmp_wq by a hand-over */
  unsigned qclosed : 1;  /* taken off its lmp_wq by the object's close */
};
/* Once DONE, co's stack holds the task, then its results or error. */
#define LMP_TASK "moonport.task" /* its metatable (lmp_open_core) */

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
  /* mp.sleep's timers (lqueue.c): the sleeping tasks, and one loop timer
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
  /* The blocks of the live streams (lsock.c): their methods' check. */
  struct lmp_ptrset streams;
};

#endif
