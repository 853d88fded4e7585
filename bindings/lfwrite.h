/* lfwrite.h: the writing methods of file objects (lfwrite.c), for the
 * class in lfile.c. */
#ifndef LFWRITE_H
#define LFWRITE_H

#include "lfile.h"

int lfile_write(lua_State *L);
int lfile_pwrite(lua_State *L);
int lfile_flush(lua_State *L);

#endif
