/* ldeadline.h: the deadlines under mp.timeout (ldeadline.c). Not a public
 * header. */
#ifndef LDEADLINE_H
#define LDEADLINE_H

#include "lcore.h"

void lmp_open_deadline(lua_State *L, struct lmp_state *S);

#endif
