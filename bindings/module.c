/* module.c: luaopen_moonport, so require "moonport" works from a stock
 * lua5.4 with build/lib on package.cpath. */
#include "lcore.h"

/* Only here (a stock interpreter) are tasks left when the state closes
 * a surprise: hosts decide that themselves (docs/embedding.md). */
int luaopen_moonport(lua_State *L) {
  int n = moonport_open(L, NULL);
  lmp_getstate(L)->warn_dropped = 1;
  return n;
}
