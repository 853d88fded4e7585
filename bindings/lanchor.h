/* lanchor.h: the task records' lifetime (lanchor.c), under lcore.h,
 * which includes it: a record made, anchored while its task lives,
 * pushed by its coroutine, let go when it ends; and lmp_step. Not a
 * public header. */
#ifndef LANCHOR_H
#define LANCHOR_H

#include "lstate.h"

/* Pushes a new task record (status 0, no coroutine yet). */
struct lmp_task *lmp_new_task(lua_State *L, struct lmp_state *S);
/* Anchors the task at the top of the stack, with its coroutine t->co (set
 * first; none for the main context): neither is collected while the task
 * is alive. lmp_unanchor lets the task go when it ends; from then on the
 * task keeps co alive. lmp_push_task pushes an anchored task. */
void lmp_anchor(lua_State *L, struct lmp_state *S, struct lmp_task *t);
void lmp_unanchor(lua_State *L, struct lmp_state *S, struct lmp_task *t);
void lmp_push_task(lua_State *L, struct lmp_state *S, struct lmp_task *t);

/* Runs the ready tasks (through S->run_ready) and a loop turn, waiting
 * for a completion if may_wait and nothing is ready; 0: nothing can run
 * (no task ready, no op in flight, no post waiting). */
int lmp_step(struct lmp_state *S, int may_wait);
/* Whether the thread at idx is a task's own coroutine. */
int lmp_is_task_co(lua_State *L, struct lmp_state *S, int idx);

#endif
