/* moonport.h: the embedding API.
 *
 * A host creates (or lends) a loop, opens moonport into its own lua_State,
 * and runs ready tasks plus the loop in steps. Everything else, including
 * waking the loop from another thread (mp_loop_post, the
 * PostQueuedCompletionStatus analog) and a pollable descriptor for the
 * host's own event loop (mp_loop_fd), is the core API in mp.h. */
#ifndef MOONPORT_H
#define MOONPORT_H

#ifdef __cplusplus /* C++ hosts: lua.h itself has no guard (lua.hpp) */
extern "C" {
#endif

/* The version: the one source of truth (CMakeLists.txt reads it for the
 * library's SONAME, moonport.pc and the rockspec's check). */
#define MOONPORT_VERSION_MAJOR 0
#define MOONPORT_VERSION_MINOR 1
#define MOONPORT_VERSION_PATCH 0
#define MOONPORT__STR(x) #x
#define MOONPORT__XSTR(x) MOONPORT__STR(x)
#define MOONPORT_VERSION                                          \
  MOONPORT__XSTR(MOONPORT_VERSION_MAJOR) "."                      \
  MOONPORT__XSTR(MOONPORT_VERSION_MINOR) "."                      \
  MOONPORT__XSTR(MOONPORT_VERSION_PATCH)
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if. */
#define MOONPORT_VERSION_NUM                                      \
  (MOONPORT_VERSION_MAJOR * 10000 + MOONPORT_VERSION_MINOR * 100 + \
   MOONPORT_VERSION_PATCH)
/* The version of the library linked in ("0.1.0"), which may differ from
 * the header's MOONPORT_VERSION when the library is shared. */
const char *moonport_version(void);

#include <lua.h>

#include "mp.h"

/* A lua_State with moonport's allocator (size classes without per-block
 * headers, huge-page regions: parked tasks cost less memory and time);
 * close it with moonport_closestate. Any other state works too. */
lua_State *moonport_newstate(void);
void moonport_closestate(lua_State *L);

/* Opens moonport into L and pushes the module table. loop may be NULL
 * (moonport creates one, honouring MOONPORT_BACKEND, and closes it with
 * the state) or a loop the host owns and closes after lua_close. Raises a
 * Lua error if the loop cannot be created. */
int moonport_open(lua_State *L, struct mp_loop *loop);

/* The loop moonport runs in L (NULL before moonport_open). */
struct mp_loop *moonport_loop(lua_State *L);

/* Starts fn (at the top of L's stack, popped) as a task with the nargs
 * values below it (popped too) and pushes the task object. */
void moonport_spawn(lua_State *L, int nargs);

/* Whether the task object at idx has ended (task:done()). */
int moonport_task_done(lua_State *L, int idx);

/* Runs ready tasks and the loop; returns the number of tasks still alive,
 * or -1 on a deadlock: tasks wait (for one another, a channel) with no
 * operation in flight and no post waiting; they are cancelled and a
 * message is pushed on L. MP_RUN_DEFAULT runs until every task has ended;
 * MP_RUN_NOWAIT does one turn without waiting; MP_RUN_ONCE does one turn,
 * waiting for a completion, a timer or a post when no task is ready. While
 * the host holds a reference (moonport_ref), the steps (NOWAIT, ONCE) do
 * not call that a deadlock: the host will feed those tasks, so NOWAIT
 * returns their number and ONCE sleeps until a post or mp_loop_wake. */
int moonport_run(lua_State *L, enum mp_run_mode mode);

/* The number of tasks that failed with nobody joining them (they were
 * reported on stderr); the moonport command exits 1 when it is not 0. */
int moonport_unhandled(lua_State *L);

/* ---- The host's own event loop (docs/embedding.md) ----
 *
 *   for (;;) {
 *     if (moonport_run(L, MP_RUN_NOWAIT) <= 0) break;
 *     struct pollfd p = { mp_loop_fd(moonport_loop(L)), POLLIN, 0 };
 *     poll(&p, 1, moonport_timeout(L));   + the host's own descriptors
 *   }
 *
 * Milliseconds the host may sleep before the next moonport_run: 0 when a
 * task is ready or a completion or post waits, -1 when nothing is due (the
 * descriptor will say when something comes), else until the next timer.
 * Call it right before sleeping: running Lua may change it. */
int moonport_timeout(lua_State *L);

/* The host feeds tasks (by posts, say): while it holds a reference, tasks
 * that only it can wake are idle in steps, not deadlocked. Counted. */
void moonport_ref(lua_State *L);
void moonport_unref(lua_State *L);

/* The number of tasks alive when none can ever run again without the
 * host: none ready, no operation or timer in flight, no post waiting;
 * else 0. */
int moonport_stalled(lua_State *L);

/* Marks the task at idx as the host's to join: its error is neither
 * printed nor counted by moonport_unhandled. */
void moonport_task_watch(lua_State *L, int idx);

/* The coroutine the task at idx runs in. Index 1 of its stack (below the
 * task's function, later its results or error) holds the task itself:
 * that is how moonport knows the coroutine is a task's. */
lua_State *moonport_task_thread(lua_State *L, int idx);

/* Where moonport keeps the thread of the task running now (NULL outside
 * tasks), for a signal handler that interrupts it with lua_sethook as
 * lua.c does: take the address once; reading it is async-signal-safe. */
lua_State *volatile *moonport_running(lua_State *L);

/* Cancels every task (task:cancel() on each): a host stopping its
 * tasks, as the moonport command stops a worker on SIGTERM. Their
 * "cancelled" errors are not reported. Run the state afterwards. */
void moonport_cancel_all(lua_State *L);

/* ---- Workers (docs/workers.md) ----
 *
 * Several states, one thread and one loop each, that share nothing but a
 * record: their count and named channels (mp.shared_channel) carrying
 * the values mp.work copies. mp.worker() returns the state's index and
 * the count. The host makes the record, attaches each state right after
 * moonport_open (before running anything in it), and frees the record
 * once every state attached to it is closed. A state that is attached to
 * none is worker 1 of 1 with a record of its own. A restarted worker (a
 * new state on a new loop) attaches to the index its predecessor held,
 * once that one is closed. */
struct moonport_workers;
struct moonport_workers *moonport_workers_new(int n); /* NULL: no memory */
void moonport_workers_free(struct moonport_workers *w);
/* Makes L worker index (1..n) of w: 0, MP_EINVAL (bad index, no loop) or
 * MP_EBUSY (L already is a worker, or used mp.worker before). */
int moonport_worker_attach(lua_State *L, struct moonport_workers *w,
                           int index);

/* require "moonport" from a stock lua5.4 (build/lib/moonport.so). Tasks
 * still alive when that state closes are dropped with a message on stderr:
 * end the main chunk with mp.run(). */
int luaopen_moonport(lua_State *L);

#ifdef __cplusplus
}
#endif
#endif
