/* lcoro.h: coroutine.yield, running, isyieldable and close as a script
 * sees them inside a task (lcoro.c). Not a public header. */
#ifndef LCORO_H
#define LCORO_H

#include "lcore.h"

void lmp_open_coro(lua_State *L, struct lmp_state *S);

#endif
