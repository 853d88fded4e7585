/* moonport.h: the embedding API.
 *
 * A host creates (or lends) a loop, opens moonport into its own lua_State,
 * and runs ready tasks plus the loop in steps. Everything else, including
 * waking the loop from another thread (mp_loop_post, the
 * PostQueuedCompletionStatus analog) and a pollable descriptor for the
 * host's own event loop (mp_loop_fd), is the core API in mp.h. */
#ifndef MOONPORT_H
#define MOONPORT_H

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

/* Runs ready tasks and the loop. MP_RUN_DEFAULT runs until every task has
 * ended; MP_RUN_ONCE does one turn, waiting for a completion if no task is
 * ready; MP_RUN_NOWAIT does one turn without waiting. Returns the number of
 * tasks still alive, or -1 on a deadlock (tasks wait for one another and
 * no operation is in flight), with a message pushed on L. Posts from other
 * threads are taken even then. In steps, -1 means no task can run now: a
 * host that feeds tasks itself (from its posts) pops the message and goes
 * on. */
int moonport_run(lua_State *L, enum mp_run_mode mode);

/* The number of tasks that failed with nobody joining them (they were
 * reported on stderr); the moonport command exits 1 when it is not 0. */
int moonport_unhandled(lua_State *L);

/* require "moonport" from a stock lua5.4 (build/lib/moonport.so). */
int luaopen_moonport(lua_State *L);

#endif
