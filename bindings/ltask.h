/* ltask.h: the task methods and the core table's task functions (spawn,
 * join, sleep, run...), over the scheduler. Not a public header. */
#ifndef LTASK_H
#define LTASK_H

#include "lsched.h"

void lmp_open_task(lua_State *L, struct lmp_state *S);

#endif
