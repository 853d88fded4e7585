/* mterm.h: the command's terminal line input for the REPL (readline). */
#ifndef MTERM_H
#define MTERM_H

#include <lua.h>

/* Makes the terminal the line input of the moonport state in L. */
void mterm_install(lua_State *L);

#endif
