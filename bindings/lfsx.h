/* lfsx.h: the rest of mp.fs (issue 14: chmod, chown, utime, symlink,
 * readlink, realpath, truncate, mkdtemp, tmpfile, fdopen, copy),
 * file:truncate and stream:sendfile (lfsx.c). Not a public header. */
#ifndef LFSX_H
#define LFSX_H

#include "lcore.h"

/* After lmp_open_file and lmp_open_socket: adds methods to their
 * classes. */
void lmp_open_fsx(lua_State *L, struct lmp_state *S);

#endif
