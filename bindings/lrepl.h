/* lrepl.h: line input for the REPL (lrepl.c), and the hook a host with a
 * terminal installs (the moonport command, cmd/mterm.c). Not a public
 * header. */
#ifndef LREPL_H
#define LREPL_H

#include <stddef.h>

#include "lcore.h"

/* One line to read: the prompt and the completion candidates the REPL
 * passes (nwords NUL-terminated strings at words). */
struct lmp_line {
  const struct lmp_lineio *io; /* the reader (NULL: lrepl.c's stdio) */
  char *line;       /* malloc'd; NULL at end of input */
  int interrupted;  /* Ctrl-C dropped the line */
  size_t nwords;    /* completion candidates, NUL-separated in words */
  char *words;
  char prompt[];    /* then the words */
};

void lmp_open_repl(lua_State *L, struct lmp_state *S);
/* Installs io (static, or living as long as the state) as the line input
 * of the state moonport runs in L; NULL: back to lrepl.c's stdio. */
void lmp_repl_set(lua_State *L, const struct lmp_lineio *io);

#endif
