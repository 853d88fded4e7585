/* lsem.h: semaphores and locks (lsem.c). Not a public header. */
#ifndef LSEM_H
#define LSEM_H

#include "lcore.h"

void lmp_open_sem(lua_State *L, struct lmp_state *S);

#endif
