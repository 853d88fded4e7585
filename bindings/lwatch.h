/* lwatch.h: mp.fs.watch and the watcher object (lwatch.c). Not a public
 * header. */
#ifndef LWATCH_H
#define LWATCH_H

#include "lcore.h"

void lmp_open_watch(lua_State *L, struct lmp_state *S); /* core.fs.watch */

#endif
