/* ldebug.h: mp.debug, and the leak check at state close (ldebug.c). Not a
 * public header. */
#ifndef LDEBUG_H
#define LDEBUG_H

#include "lcore.h"

void lmp_push_debug(lua_State *L, struct lmp_state *S);
void lmp_leakcheck_start(struct lmp_state *S);
void lmp_leakcheck_end(struct lmp_state *S, size_t nlive, int close_err);

#endif
