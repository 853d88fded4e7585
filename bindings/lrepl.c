/* lrepl.c: line input for the REPL, read on a threadpool thread so the
 * loop keeps serving every other task while the user types.
 *
 * With readline (line editing, history) when built with it and stdin is a
 * terminal; plain fgets otherwise. Only one read is ever in flight (the
 * REPL awaits each line), so readline's global state is used by one
 * thread at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef MP_WITH_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#include "lmoonport.h"

enum { MAX_LINE = 1 << 20 };

struct line_job {
  char prompt[64];
  char *line; /* malloc'd, NULL at end of input */
  int tty;
};

static void read_line(struct mp_op *op) {
  struct line_job *j = op->u.work.arg;
#ifdef MP_WITH_READLINE
  if (j->tty) {
    rl_catch_signals = 0; /* the host owns SIGINT */
    j->line = readline(j->prompt);
    if (j->line && *j->line) add_history(j->line);
    op->result = 0;
    return;
  }
#endif
  char *buf = malloc(MAX_LINE);
  if (j->tty) {
    fputs(j->prompt, stdout);
    fflush(stdout);
  }
  if (!buf || !fgets(buf, MAX_LINE, stdin)) {
    free(buf);
    j->line = NULL;
  } else {
    buf[strcspn(buf, "\n")] = 0;
    j->line = buf;
  }
  op->result = 0;
}

static void line_cb(struct mp_op *op) {
  if (!op->data) { /* orphaned: nobody will read this line */
    struct line_job *j = op->u.work.arg;
    if (j) free(j->line);
  }
  lmp_task_op_cb(op);
}

static int readline_k(lua_State *L, struct mp_op *op) {
  struct line_job *j = op->u.work.arg;
  char *line = j->line;
  if (op->result < 0) free(line), line = NULL; /* never ran */
  mp_op_release(op); /* frees j (op->owned) */
  if (!line) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushstring(L, line);
  free(line);
  return 1;
}

/* core.readline(prompt): a line without its newline, or nil at the end of
 * input. */
static int l_readline(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  const char *prompt = luaL_optstring(L, 1, "> ");
  struct mp_op *op = mp_op_new(S->loop, line_cb, NULL);
  struct line_job *j = op ? calloc(1, sizeof *j) : NULL;
  if (!j) {
    if (op) mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  snprintf(j->prompt, sizeof j->prompt, "%s", prompt);
  j->tty = isatty(0);
  op->owned = j;
  mp_op_prep_work(op, read_line, j);
  return lmp_await(L, op, readline_k, "readline");
}

void lmp_open_repl(lua_State *L, struct lmp_state *S) {
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, l_readline, 1);
  lua_setfield(L, -2, "readline");
}
