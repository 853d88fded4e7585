/* lwork.h: mp.work (lwork.c). Not a public header. */
#ifndef LWORK_H
#define LWORK_H

#include "lcore.h"

void lmp_open_work(lua_State *L, struct lmp_state *S);
/* mp.work's value encoding, exposed for tests/fuzz/work.c. */
const char *lmp_work_encode(lua_State *L, int idx, int n, int *bad);
const char *lmp_work_decode(lua_State *L, const char *p, int n);

#endif
