/* lproc.h: mp.proc (lproc.c). Not a public header. */
#ifndef LPROC_H
#define LPROC_H

#include "lcore.h"

void lmp_open_proc(lua_State *L, struct lmp_state *S);

#endif
