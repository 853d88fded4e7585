/* lrepl.h: line input for the REPL (lrepl.c). Not a public header. */
#ifndef LREPL_H
#define LREPL_H

#include "lcore.h"

void lmp_open_repl(lua_State *L, struct lmp_state *S);
int lmp_repl_fd(int fd); /* a descriptor of the REPL's terminal */
void lmp_repl_abort(void); /* state closing: end a line being read */

#endif
