/* mterm.h: the command's terminal line input for the REPL (readline). */
#ifndef MTERM_H
#define MTERM_H

#include <lua.h>

/* Makes the terminal the line input of the moonport state in L. */
void mterm_install(lua_State *L);
/* The line read in progress (never 0), or 0; safe in a signal handler. */
unsigned mterm_read_id(void);
/* A Ctrl-C the command spent elsewhere (it stopped a background task
 * running Lua code) while read id was in progress: drops that line, as a
 * Ctrl-C at the prompt does, if it is still being read. */
void mterm_drop_line(unsigned id);

#endif
