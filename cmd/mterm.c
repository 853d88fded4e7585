/* mterm.c: the moonport command's terminal line input for the REPL
 * (installed with lmp_repl_set; lines are read on a threadpool thread,
 * bindings/lrepl.c), built with GNU readline.
 *
 * On a terminal: line editing, history kept in $HOME/.moonport_history,
 * completion of globals and table fields from a snapshot the REPL passes
 * with each prompt, Ctrl-C (core.readline_interrupt) dropping the
 * half-typed line, and output that other tasks write meanwhile shown above
 * the prompt: while a line is being read, descriptors 1 and 2 point into a
 * pipe this thread drains, clearing and redrawing the prompt and the line
 * around each chunk. Otherwise readline as lua.c uses it: the prompt is
 * printed even when stdin is not a terminal.
 *
 * Only one read is ever in flight (the REPL awaits each line), so
 * readline's process-wide state is used by one thread at a time; `term`
 * below is that process-wide terminal, shared by whatever REPL runs. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "lrepl.h"
#include "mterm.h"

enum { HISTORY_LINES = 1000 };

static struct {
  int ready, tty;
  int ctl;          /* eventfd: Ctrl-C while a line is read */
  int pipe[2];      /* captured output, -1 when not capturing */
  int out, err;     /* the terminal (dups of 1 and 2), -1 if not a tty */
  char *history;    /* the history file, or NULL */
  struct lmp_line *job;
  int done;
  size_t word_at;   /* completion generator position */
  atomic_int quit;  /* the state is closing: end the read, print nothing */
  atomic_uint read_id; /* the line being read (never 0), 0 between reads
                          (for the exit handler and mterm_drop_line) */
  unsigned reads;      /* reads begun: the next read_id */
  int saved_ok;
  struct termios saved; /* the terminal as readline found it */
} term = {.ctl = -1, .pipe = {-1, -1}, .out = -1, .err = -1};

static char *complete_word(const char *text, int state) {
  struct lmp_line *j = term.job;
  size_t len = strlen(text);
  if (!state) term.word_at = 0;
  while (j && term.word_at < j->nwords) {
    const char *w = j->words;
    for (size_t i = 0; i < term.word_at; i++) w += strlen(w) + 1;
    term.word_at++;
    if (strncmp(w, text, len) == 0) return strdup(w);
  }
  return NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)start, (void)end;
  rl_attempted_completion_over = 1; /* no file names */
  return rl_completion_matches(text, complete_word);
}

/* exit() while a line is read (os.exit(code, false) in a task): give the
 * terminal back as readline found it, which it cannot do from its thread
 * (rl_catch_signals is off: the host owns the signals). */
static void term_atexit(void) {
  if (!atomic_load(&term.read_id)) return;
  if (term.out >= 0) dup2(term.out, 1);
  if (term.err >= 0) dup2(term.err, 2);
  if (term.saved_ok) tcsetattr(0, TCSANOW, &term.saved);
  if (term.out >= 0 && write(term.out, "\033[?2004l\r\n", 10) < 0) {}
}

static void term_init(void) {
  term.ready = 1;
  term.tty = isatty(0);
  rl_readline_name = "moonport";
  rl_catch_signals = 0; /* the host owns SIGINT */
  rl_catch_sigwinch = 0;
  if (!term.tty) return;
  /* "mp.ne" is one word to complete, as is "string.fo". */
  rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(,+-*/%^#~[]";
  rl_attempted_completion_function = complete;
  rl_completion_append_character = '\0';
  const char *home = getenv("HOME");
  if (home && *home) {
    size_t n = strlen(home) + sizeof "/.moonport_history";
    if ((term.history = malloc(n))) {
      snprintf(term.history, n, "%s/.moonport_history", home);
      if (read_history(term.history) != 0) write_history(term.history);
    }
  }
  stifle_history(HISTORY_LINES);
  term.saved_ok = tcgetattr(0, &term.saved) == 0;
  atexit(term_atexit);
  term.ctl = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (isatty(1) && pipe2(term.pipe, O_CLOEXEC) == 0) {
    fcntl(term.pipe[0], F_SETFL, O_NONBLOCK);
    term.out = fcntl(1, F_DUPFD_CLOEXEC, 3);
    term.err = isatty(2) ? fcntl(2, F_DUPFD_CLOEXEC, 3) : -1;
    FILE *f = term.out >= 0 ? fdopen(dup(term.out), "w") : NULL;
    if (f) {
      rl_outstream = f;
    } else { /* no capture after all */
      close(term.pipe[0]), close(term.pipe[1]);
      term.pipe[0] = term.pipe[1] = -1;
    }
  }
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w, n -= (size_t)w;
  }
}

/* Copies what tasks wrote into the pipe to the terminal; returns the
 * number of bytes and whether the last one ended a line. */
static size_t drain(int *eol) {
  char buf[4096];
  size_t total = 0;
  ssize_t n;
  while ((n = read(term.pipe[0], buf, sizeof buf)) > 0) {
    write_all(term.out, buf, (size_t)n);
    *eol = buf[n - 1] == '\n';
    total += (size_t)n;
  }
  return total;
}

/* Output arrived while the prompt is shown: clear the prompt and the line
 * being edited, print the output, then draw them again below it. */
static void show_output(void) {
  int eol = 1;
  rl_clear_visible_line();
  fflush(rl_outstream);
  if (drain(&eol) && !eol) write_all(term.out, "\n", 1);
  rl_on_new_line();
  rl_redisplay();
}

static void on_line(char *line) {
  term.job->line = line;
  term.done = 1;
  rl_callback_handler_remove(); /* no new prompt until asked */
}

static void read_tty(struct lmp_line *j) {
  uint64_t n;
  if (++term.reads == 0) term.reads = 1;
  atomic_store(&term.read_id, term.reads);
  while (read(term.ctl, &n, sizeof n) > 0) {} /* an old Ctrl-C */
  if (atomic_load(&term.quit)) { /* closing: no line (after the drain) */
    atomic_store(&term.read_id, 0);
    return;
  }
  int capture = term.pipe[0] >= 0;
  if (capture) {
    dup2(term.pipe[1], 1);
    if (term.err >= 0) dup2(term.pipe[1], 2);
  }
  term.job = j;
  term.done = 0;
  rl_callback_handler_install(j->prompt, on_line);
  while (!term.done) {
    struct pollfd p[3] = {{.fd = 0, .events = POLLIN},
                          {.fd = term.ctl, .events = POLLIN},
                          {.fd = term.pipe[0], .events = POLLIN}};
    if (poll(p, capture ? 3 : 2, -1) < 0) continue; /* EINTR */
    if (p[2].revents & POLLIN) show_output();
    if (p[1].revents & POLLIN) { /* Ctrl-C (or closing): drop the line */
      int quit = atomic_load(&term.quit);
      while (read(term.ctl, &n, sizeof n) > 0) {}
      if (!quit) fputs("^C", rl_outstream);
      rl_replace_line("", 0);
      rl_point = rl_end = 0;
      if (!quit) rl_redisplay();
      rl_crlf();
      fflush(rl_outstream);
      rl_callback_handler_remove();
      j->interrupted = !quit; /* closing: end of input */
      break;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) rl_callback_read_char();
  }
  term.job = NULL;
  if (capture) {
    int eol;
    dup2(term.out, 1);
    if (term.err >= 0) dup2(term.err, 2);
    drain(&eol);
  }
  atomic_store(&term.read_id, 0);
}

static void term_read(struct lmp_line *j) {
  if (!term.ready) term_init();
  if (term.tty) read_tty(j);
  else j->line = readline(j->prompt); /* as lua.c: prompt and echo */
}

static void term_add_history(const char *line) {
  if (!term.ready || !term.tty) return;
  add_history(line);
  if (term.history) {
    append_history(1, term.history);
    history_truncate_file(term.history, HISTORY_LINES);
  }
}

/* Ctrl-C while a line is being typed. */
static void term_interrupt(void) {
  uint64_t one = 1;
  if (term.ctl >= 0 && write(term.ctl, &one, sizeof one) < 0) {}
}

unsigned mterm_read_id(void) { return atomic_load(&term.read_id); }

void mterm_drop_line(unsigned id) {
  /* (a read that ends between the check and the write leaves the wake-up
   * to the next one, which drains it as an old Ctrl-C) */
  if (id && atomic_load(&term.read_id) == id) term_interrupt();
}

/* The state is closing (os.exit in a task, say) while a line may be read
 * on a pool thread: end that read, or the close would wait for a key. */
static void term_abort(void) {
  atomic_store(&term.quit, 1);
  term_interrupt();
}

/* The terminal's descriptors are process-wide, as readline's state is:
 * opened on the first line read and kept until exit (the leak check at
 * state close skips them). */
static int term_owns(mp_handle_t fd) {
  if (!term.ready || fd < 0) return 0;
  return fd == term.ctl || fd == term.pipe[0] || fd == term.pipe[1] ||
         fd == term.out || fd == term.err ||
         (rl_outstream && rl_outstream != stdout &&
          fd == fileno(rl_outstream));
}

void mterm_install(lua_State *L) {
  static const struct lmp_lineio io = {
    .read = term_read, .add_history = term_add_history,
    .interrupt = term_interrupt, .abort = term_abort, .owns = term_owns};
  atomic_store(&term.quit, 0); /* a new state: reads are wanted again */
  lmp_repl_set(L, &io);
}
