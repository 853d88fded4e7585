/* lworker.h: mp.worker and shared channels (lworker.c); the public half
 * (moonport_workers_*) is in moonport.h. Not a public header. */
#ifndef LWORKER_H
#define LWORKER_H

#include "lcore.h"

void lmp_open_worker(lua_State *L, struct lmp_state *S);

#endif
