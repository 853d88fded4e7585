/* lrepl.c: line input for the REPL, read on a threadpool thread so the
 * loop keeps serving every other task while the user types.
 *
 * Lines come from stdio (as lua.c without readline: the prompt is printed
 * even when stdin is not a terminal) unless the host installed its own
 * line input (lmp_repl_set): the moonport command's terminal, with line
 * editing, history, completion from the words passed here, Ctrl-C
 * (core.readline_interrupt) dropping the half-typed line and output of
 * other tasks shown above the prompt (cmd/mterm.c).
 *
 * Only one read is ever in flight (the REPL awaits each line), so what
 * sits behind the line input is used by one thread at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lrepl.h"

enum { MAX_LINE = 1 << 20 };

static void read_plain(struct lmp_line *j) {
  char *buf = malloc(MAX_LINE);
  fputs(j->prompt, stdout);
  fflush(stdout);
  if (!buf || !fgets(buf, MAX_LINE, stdin)) {
    free(buf);
    j->line = NULL;
  } else {
    buf[strcspn(buf, "\n")] = 0;
    j->line = buf;
  }
}

static void read_line(struct mp_op *op) {
  struct lmp_line *j = op->u.work.arg;
  if (j->io) j->io->read(j);
  else read_plain(j);
  op->result = 0;
}

static void line_cb(struct mp_op *op) {
  if (!op->data) { /* orphaned: nobody will read this line */
    struct lmp_line *j = op->u.work.arg;
    if (j) free(j->line);
  }
  lmp_task_op_cb(op);
}

static int readline_k(lua_State *L, struct mp_op *op) {
  struct lmp_line *j = op->u.work.arg;
  char *line = j->line;
  int interrupted = j->interrupted;
  if (op->result < 0) free(line), line = NULL; /* never ran */
  mp_op_release(op); /* frees j (op->owned) */
  if (line) lua_pushstring(L, line);
  else if (interrupted) lua_pushboolean(L, 0);
  else lua_pushnil(L);
  free(line);
  return 1;
}

/* core.readline(prompt [, words]): a line without its newline; nil at the
 * end of input; false if Ctrl-C dropped it. words: completion candidates
 * (an array of strings). */
static int l_readline(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  size_t plen, wlen = 0, nwords = 0;
  const char *prompt = luaL_optlstring(L, 1, "> ", &plen);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    for (lua_Integer i = 1; lua_rawgeti(L, 2, i) == LUA_TSTRING; i++) {
      wlen += strlen(lua_tostring(L, -1)) + 1;
      nwords++;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  struct mp_op *op = mp_op_new(S->loop, line_cb, NULL);
  struct lmp_line *j = op ? calloc(1, sizeof *j + plen + 1 + wlen) : NULL;
  if (!j) {
    if (op) mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  j->io = S->lineio;
  memcpy(j->prompt, prompt, plen + 1);
  j->words = j->prompt + plen + 1;
  char *w = j->words;
  for (size_t i = 1; i <= nwords; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i);
    size_t n = strlen(lua_tostring(L, -1)) + 1;
    memcpy(w, lua_tostring(L, -1), n);
    w += n;
    lua_pop(L, 1);
  }
  j->nwords = nwords;
  mp_op_own(op, j, NULL);
  mp_op_prep_work(op, read_line, j);
  return lmp_await(L, op, readline_k, "readline");
}

/* core.addhistory(entry): remembers a (complete) entry, in the line
 * input's history if it keeps one. */
static int l_addhistory(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  const char *line = luaL_checkstring(L, 1);
  if (*line && S->lineio && S->lineio->add_history)
    S->lineio->add_history(line);
  return 0;
}

/* core.readline_interrupt(): Ctrl-C while a line is being typed. */
static int l_readline_interrupt(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  if (S->lineio && S->lineio->interrupt) S->lineio->interrupt();
  return 0;
}

void lmp_repl_set(lua_State *L, const struct lmp_lineio *io) {
  struct lmp_state *S = lmp_getstate(L);
  if (S) S->lineio = io;
}

void lmp_open_repl(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg funcs[] = {
    {"readline", l_readline}, {"addhistory", l_addhistory},
    {"readline_interrupt", l_readline_interrupt}, {NULL, NULL}};
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
