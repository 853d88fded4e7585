/* lfs.h: path operations (lfs.c), and what lfile.c shares with them. Not
 * a public header. */
#ifndef LFS_H
#define LFS_H

#include "lcore.h"

void lmp_push_stat(lua_State *L, const struct mp_stat *st);
const char *lmp_checkpath(lua_State *L, int i); /* a string without NULs */
/* Awaits op, prepared on the path at stack 1 with err the prep's result
 * (a failed prep: nil, "path: message", code), then returns k(L, op). */
int lmp_path_await(lua_State *L, struct mp_op *op, int err, lmp_done k,
                   const char *fname);
void lmp_open_fs(lua_State *L, struct lmp_state *S); /* core.fs paths */

#endif
