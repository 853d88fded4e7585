/* module.c: luaopen_moonport, so require "moonport" works from a stock
 * lua5.4 with build/lib on package.cpath. */
#include "lmoonport.h"

int luaopen_moonport(lua_State *L) { return moonport_open(L, NULL); }
