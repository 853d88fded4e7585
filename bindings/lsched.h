/* lsched.h: the scheduler (lsched.c), above the await primitive: it
 * resumes the ready tasks (the hook lmp_step runs), ends them, spawns and
 * cancels them. Used by the task methods (ltask.c) and the embedding
 * entry points (lhost.c). Not a public header. */
#ifndef LSCHED_H
#define LSCHED_H

#include "lcore.h"

/* Spawns the function at index fidx with the nargs values after it (all
 * left in place) and pushes the task. */
struct lmp_task *lmp_spawn(lua_State *L, struct lmp_state *S, int fidx,
                           int nargs);
/* task:cancel() */
void lmp_task_cancel(struct lmp_state *S, struct lmp_task *t);
void lmp_cancel_all(struct lmp_state *S); /* every live task */
/* Runs until every task has ended: 0, or -1 on a deadlock (the stuck
 * tasks cancelled and run to their end); lmp_push_deadlock says so. */
int lmp_run_all(struct lmp_state *S);
int lmp_push_deadlock(lua_State *L, struct lmp_state *S);
/* Installs the scheduler in S (S->run_ready). */
void lmp_open_sched(lua_State *L, struct lmp_state *S);

#endif
