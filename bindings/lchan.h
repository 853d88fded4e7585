/* lchan.h: the primitives channels (init.lua) are built on. Not a public
 * header. */
#ifndef LCHAN_H
#define LCHAN_H

#include "lcore.h"

void lmp_open_chan(lua_State *L, struct lmp_state *S);

#endif
