/* main.c: the moonport command, a thin host over the embedding API.
 *
 *   moonport [options] [script [args...]]
 *
 * The command line is lua.c's (options parsed in margs.c): -e stat,
 * -l [g=]mod, -i, -v, -E, -W, --, - and LUA_INIT, plus --backend NAME. The
 * script, each -e and LUA_INIT run as tasks (the script with its arguments
 * from the global `arg`, as `...`); errors print once, as lua.c prints
 * them. The command exits 0 when every task has ended, 1 at once if the
 * script raises, and 1 at the end if a task nobody joined raised.
 * --workers N runs N such states, one thread each (run_workers). */
#ifndef _WIN32
#include <pthread.h>
#endif
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <io.h> /* _isatty */
#define isatty _isatty
#else
#include <unistd.h>
#endif

#include <lauxlib.h>
#include <lualib.h>

#include "margs.h"
#include "moonport.h"
#include "mp_os.h"
#ifdef MP_WITH_READLINE
#include "mterm.h"
#endif

#define MP_VERSION "moonport " MOONPORT_VERSION

static const char *progname = "moonport";

#ifdef _WIN32
#define MP_BACKEND_NAMES "iocp"
#else
#define MP_BACKEND_NAMES "io_uring, epoll"
#endif

/* Ctrl-C, as in lua.c: the handler sets a hook on the Lua thread that is
 * running (the running task's coroutine, or the main state) so that even
 * `while true do end` raises "interrupted!"; a task suspended in the loop
 * is woken and cancelled by the host loop instead (its "cancelled" error
 * is reported as "interrupted!"). These statics belong to the host
 * program, not to the library; each worker thread has its own (and no
 * handler: the main thread routes signals to the workers). */
static _Thread_local lua_State *host_L;
static _Thread_local struct mp_loop *host_loop;
static _Thread_local lua_State *volatile *running; /* moonport_running */
#ifndef _WIN32
static pthread_t main_thread;
#endif
static _Thread_local volatile sig_atomic_t got_sigint;
static _Thread_local volatile sig_atomic_t sigint_hooked; /* it stopped
                                                             running Lua */
static _Thread_local int sig_cancelled; /* a task was cancelled because of
                                           Ctrl-C */
static _Thread_local volatile unsigned sigint_read; /* the line read when
                                                     Ctrl-C came (mterm) */
static _Thread_local int in_repl; /* the REPL keeps the handler after
                                     Ctrl-C */
static _Thread_local int main_runs_lua; /* the main state runs Lua (-l),
                                           not the loop */
static _Thread_local lua_State *repl_co; /* the REPL task's: never
                                            interrupted */

/* A worker (--workers): its thread runs a state as the command runs one;
 * the main thread starts it, asks it to stop and restarts it. */
struct team;
struct worker {
  struct team *team;
  int index, ok;
  int nfails, oldest;   /* failure times kept in fails[], a ring */
  int64_t fails[64];    /* (mp_loop_now) of the last restart.burst */
  struct mp_os_thread *thread;
  struct mp_loop *loop; /* the state's, under team->lock (for stop_op) */
  atomic_int stop;      /* stop: cancel every task and end */
  struct mp_op stop_op; /* posted to loop: its turn ends, stop is seen */
  struct mp_op done;    /* posted to the main thread's loop at the end */
};
static _Thread_local struct worker *self; /* the worker this thread runs */

static int stop_asked(void) { return self && atomic_load(&self->stop); }

/* MOONPORT_GC_TORTURE=1: a full collection on every line of every task
 * (the hook is inherited by coroutines created afterwards), to flush out
 * anything that refers to a collectable object it does not pin. */
static void gc_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_gc(L, LUA_GCCOLLECT);
}

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

#ifdef _WIN32
/* The C runtime's signal() is SetConsoleCtrlHandler: Ctrl-C runs the
 * handler on a thread Windows starts for it, reset to the default before
 * the call. That thread sees none of the main thread's thread-locals:
 * set_sigint, on the main thread, leaves it their addresses. */
static void on_sigint(int sig);
static struct {
  volatile sig_atomic_t *got, *hooked;
  int *in_repl, *main_runs_lua;
  lua_State *volatile **running;
  lua_State **repl_co, **host_L;
  struct mp_loop **host_loop;
} ctrl;

static void on_ctrl_c(int sig) {
  (void)sig;
  signal(SIGINT, *ctrl.in_repl ? on_ctrl_c : SIG_DFL); /* a second ends it */
  *ctrl.got = 1;
  lua_State *co = **ctrl.running;
  int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  if (co && co != *ctrl.repl_co) {
    lua_sethook(co, stop_hook, mask, 1);
    *ctrl.hooked = 1;
  } else if (*ctrl.main_runs_lua) {
    lua_sethook(*ctrl.host_L, stop_hook, mask, 1);
  }
  mp_loop_wake(*ctrl.host_loop);
}

static void set_sigint(void (*handler)(int)) {
  if (self) return; /* the main thread routes the workers' signals */
  if (handler == on_sigint) {
    ctrl.got = &got_sigint;
    ctrl.hooked = &sigint_hooked;
    ctrl.in_repl = &in_repl;
    ctrl.main_runs_lua = &main_runs_lua;
    ctrl.running = &running;
    ctrl.repl_co = &repl_co;
    ctrl.host_L = &host_L;
    ctrl.host_loop = &host_loop;
    handler = on_ctrl_c;
  }
  signal(SIGINT, handler);
}
#else
static void set_sigint(void (*handler)(int)) {
  if (self) return; /* the main thread routes the workers' signals */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}
#endif

static void on_sigint(int sig) {
#ifdef _WIN32 /* on_ctrl_c runs instead */
  (void)sig;
#else
  if (!pthread_equal(pthread_self(), main_thread)) {
    pthread_kill(main_thread, sig); /* a pool thread took it */
    return;
  }
#endif
  if (!in_repl) set_sigint(SIG_DFL); /* a second Ctrl-C ends the process */
#ifdef MP_WITH_READLINE
  sigint_read = mterm_read_id();
#endif
  got_sigint = 1;
  lua_State *co = *running;
  int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  if (co && co != repl_co) {
    lua_sethook(co, stop_hook, mask, 1);
    sigint_hooked = 1;
  } else if (main_runs_lua) {
    lua_sethook(host_L, stop_hook, mask, 1);
  }
  mp_loop_wake(host_loop);
}

/* lua.c's message handler: the message with a traceback; an error object
 * with __tostring gives its string, any other its type. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  } else if (sig_cancelled && strcmp(msg, "cancelled") == 0) {
    msg = "interrupted!"; /* the host cancelled it for Ctrl-C */
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* The body of every task the command starts: docall(chunk, args...) runs
 * the chunk under msghandler (a yieldable pcall, so the chunk may do IO)
 * and re-raises the message with its traceback. */
static int docall_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  return lua_gettop(L) - 1;
}

static int docall(lua_State *L) {
  int n = lua_gettop(L) - 1;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushcfunction(L, msghandler);
  lua_insert(L, 1);
  return docall_k(L, lua_pcallk(L, n, LUA_MULTRET, 1, 0, docall_k), 0);
}

/* warn(), as luaL_newstate sets it up: off until "@on" (or -W). */
static void warn_off(void *ud, const char *msg, int tocont);
static void warn_cont(void *ud, const char *msg, int tocont);

static int warn_control(lua_State *L, const char *msg, int tocont) {
  if (tocont || *msg++ != '@') return 0;
  if (strcmp(msg, "off") == 0) lua_setwarnf(L, warn_off, L);
  else if (strcmp(msg, "on") == 0) lua_setwarnf(L, warn_cont, L);
  return 1;
}

static void warn_off(void *ud, const char *msg, int tocont) {
  warn_control(ud, msg, tocont);
}

static void warn_more(void *ud, const char *msg, int tocont) {
  lua_writestringerror("%s", msg);
  if (tocont) {
    lua_setwarnf(ud, warn_more, ud);
  } else {
    lua_writestringerror("%s", "\n");
    lua_setwarnf(ud, warn_cont, ud);
  }
}

static void warn_cont(void *ud, const char *msg, int tocont) {
  if (warn_control(ud, msg, tocont)) return;
  lua_writestringerror("%s", "Lua warning: ");
  warn_more(ud, msg, tocont);
}

/* os.exit in the command closes the state unless told not to, so what
 * file writes buffered, __close handlers and __gc still run (C's exit
 * flushes stdio for io the same way). Called from a task, it first closes
 * the to-be-closed variables of the running coroutine: lua closes those
 * of the main chunk, which here runs as a task. */
static int os_exit_closing(lua_State *L) {
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_settop(L, 2);
  if (lua_toboolean(L, 2) && lua_pushthread(L) == 0) {
    int status = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? EXIT_SUCCESS
                                                            : EXIT_FAILURE)
                                     : (int)luaL_optinteger(L, 1, 0);
    /* Resetting wipes this stack: keep os.exit on the main one. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *M = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_xmove(L, M, 1);
    lua_resetthread(L); /* this coroutine never runs again */
    lua_xmove(M, L, 1);
    lua_pushinteger(L, status);
    lua_pushboolean(L, 1);
    lua_call(L, 2, 0);
    return 0;
  }
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 2, 0);
  return 0;
}

/* print, as Lua's, but a worker's line is written in one piece: lines
 * of workers printing at once never mix. */
static int print_line(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  fwrite(s, 1, len, stdout);
  fflush(stdout);
  return 0;
}

/* One write per message (lua.c makes two): a worker's report must not
 * be split by another worker's output (--workers). */
static void l_message(const char *pname, const char *msg) {
  if (pname) fprintf(stderr, "%s: %s\n", pname, msg);
  else fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    l_message(progname, msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

static void print_version(struct mp_loop *loop) {
  printf("%s (backend %s)\n%s\n", MP_VERSION, mp_loop_backend(loop),
         LUA_COPYRIGHT);
  fflush(stdout);
}

static void print_usage(const char *badoption) {
  char msg[256];
  mp_args_error(badoption, msg, sizeof msg);
  lua_writestringerror("%s: ", progname);
  lua_writestringerror("%s\n", msg);
  lua_writestringerror(
  "usage: %s [options] [script [args]]\n"
  "Available options are:\n"
  "  -e stat   execute string 'stat'\n"
  "  -i        enter interactive mode after executing 'script'\n"
  "  -l mod    require library 'mod' into global 'mod'\n"
  "  -l g=mod  require library 'mod' into global 'g'\n"
  "  -v        show version information\n"
  "  -E        ignore environment variables\n"
  "  -W        turn warnings on\n"
  "  --        stop handling options\n"
  "  -         stop handling options and execute stdin\n"
  "  --backend NAME  use the loop backend NAME (" MP_BACKEND_NAMES ")\n"
  "  --workers [N]   run the script in N threads (default: one per CPU)\n",
  progname);
}

/* Whether the error on top is the "cancelled" of a worker told to stop
 * (with the traceback msghandler added): not a failure. */
static int stopped(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  return stop_asked() && msg && strncmp(msg, "cancelled", 9) == 0 &&
         (msg[9] == '\0' || msg[9] == '\n');
}

/* Runs the chunk below its nargs arguments as a task and drives the loop
 * until that task has ended (other tasks keep running meanwhile and
 * afterwards). Returns its status, with the message on top on error. */
static int run_task(lua_State *L, int nargs) {
  if (stop_asked()) { /* a stopping worker starts nothing */
    lua_pop(L, nargs + 1);
    return LUA_OK;
  }
  lua_pushcfunction(L, docall);
  moonport_spawn(L, nargs + 1);
  int task = lua_gettop(L);
  moonport_task_watch(L, task); /* its error is ours to print, once */
  got_sigint = 0;
  set_sigint(on_sigint);
  int st = LUA_OK, stopping = 0;
  while (!moonport_task_done(L, task)) {
    if (!stopping && stop_asked()) {
      stopping = 1;
      moonport_cancel_all(L);
    }
    if (got_sigint) {
      got_sigint = 0;
      sig_cancelled = 1;
      lua_getfield(L, task, "cancel");
      lua_pushvalue(L, task);
      lua_call(L, 1, 0);
    }
    if (moonport_run(L, MP_RUN_ONCE) < 0) {
      st = LUA_ERRRUN; /* deadlock: the message is on top */
      break;
    }
  }
  set_sigint(SIG_DFL);
  if (lua_gethook(L) == stop_hook) lua_sethook(L, NULL, 0, 0);
  if (st == LUA_OK) {
    lua_getfield(L, task, "join");
    lua_pushvalue(L, task);
    lua_call(L, 1, 2);
    st = lua_toboolean(L, -2) || stopped(L) ? LUA_OK : LUA_ERRRUN;
    lua_remove(L, -2);
    if (st == LUA_OK) lua_pop(L, 1);
  }
  sig_cancelled = 0;
  lua_remove(L, task);
  return st;
}

/* Code run in the main context (-l): a plain pcall with the handler. */
static int docall_main(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  got_sigint = 0;
  main_runs_lua = 1;
  set_sigint(on_sigint);
  int st = lua_pcall(L, narg, nres, base);
  set_sigint(SIG_DFL);
  main_runs_lua = 0;
  if (lua_gethook(L) == stop_hook) lua_sethook(L, NULL, 0, 0);
  lua_remove(L, base);
  return st;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = run_task(L, 0);
  return report(L, status);
}

/* Text only, everywhere: precompiled chunks can crash the VM. */
static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfilex(L, name, "t"));
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbufferx(L, s, strlen(s), name, "t"));
}

/* globname[=modname]: globname = require(modname). */
static int dolibrary(lua_State *L, const char *arg) {
  const char *eq = strchr(arg, '=');
  lua_getglobal(L, "require");
  lua_pushstring(L, eq ? eq + 1 : arg);
  int st = docall_main(L, 1, 1);
  if (st == LUA_OK) {
    lua_pushlstring(L, arg, eq ? (size_t)(eq - arg) : strlen(arg));
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  return report(L, st);
}

static void createargtable(lua_State *L, char **argv, int argc, int script) {
  if (script == argc) script = 0; /* no script: the command at 0 */
  lua_createtable(L, argc - (script + 1), script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* The script's arguments are arg[1..#arg], as lua.c takes them (LUA_INIT
 * or -e may change the table). */
static int pushargs(lua_State *L) {
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  int n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
    fname = NULL; /* stdin */
  int st = luaL_loadfilex(L, fname, "t");
  if (st == LUA_OK) st = run_task(L, pushargs(L));
  return report(L, st);
}

/* -e, -l and -W, in order. */
static int runargs(lua_State *L, char **argv, int n) {
  for (int i = 1; i < n; i++) {
    int option = argv[i][1];
    if (option == '-') { /* --backend NAME, --workers [N] */
      i += mp_args_words(argv, i) - 1;
      continue;
    }
    if (option == 'e' || option == 'l') {
      const char *extra = argv[i] + 2;
      if (*extra == '\0') extra = argv[++i];
      if ((option == 'e' ? dostring(L, extra, "=(command line)")
                         : dolibrary(L, extra)) != LUA_OK)
        return 0;
    } else if (option == 'W') {
      lua_warning(L, "@on", 0);
    }
  }
  return 1;
}

static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT" LUA_VERSUFFIX; /* LUA_INIT_5_4 */
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  return dostring(L, init, name);
}

/* Runs moonport.repl as a task until the user ends it (Ctrl-D). Each
 * entry is a task running docall; Ctrl-C interrupts a running one (or a
 * background task spinning in Lua code) and cancels a suspended one. */
static int dorepl(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "moonport.repl");
  if (docall_main(L, 1, 1) != LUA_OK) return report(L, LUA_ERRRUN);
  int repl = lua_gettop(L);
  lua_pushcfunction(L, docall); /* the argument */
  lua_getfield(L, repl, "run");
  moonport_spawn(L, 1);
  int task = lua_gettop(L);
  repl_co = moonport_task_thread(L, task);
  moonport_task_watch(L, task);
  in_repl = 1;
  got_sigint = sigint_hooked = 0;
  set_sigint(on_sigint);
  /* An entry waiting for what never comes is the user's to interrupt
   * (Ctrl-C wakes the loop): idle, not a deadlock that ends the REPL. */
  moonport_ref(L);
  for (;;) {
    if (moonport_task_done(L, task)) break;
    if (lua_getfield(L, repl, "entry") == LUA_TNIL) sig_cancelled = 0;
    lua_pop(L, 1);
    /* A Ctrl-C that stopped Lua code running (a spinning task) is spent:
     * passed on as well, it would cancel the entry or drop the next line
     * the user types. The line being typed when it came (it stopped a
     * background task) is dropped, as the user who pressed it expects,
     * if it still is: else that text stays before what comes next. */
    if (got_sigint && sigint_hooked) {
      got_sigint = sigint_hooked = 0;
#ifdef MP_WITH_READLINE
      mterm_drop_line(sigint_read);
#endif
    }
    if (got_sigint) {
      got_sigint = 0;
      lua_getfield(L, repl, "interrupt");
      lua_pushvalue(L, repl);
      lua_call(L, 1, 1);
      sig_cancelled |= lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    moonport_run(L, MP_RUN_ONCE); /* sleeps until work, or Ctrl-C */
  }
  moonport_unref(L);
  set_sigint(SIG_DFL);
  in_repl = 0;
  repl_co = NULL;
  sig_cancelled = 0;
  lua_getfield(L, task, "join");
  lua_pushvalue(L, task);
  lua_call(L, 1, 2);
  if (!lua_toboolean(L, -2)) report(L, LUA_ERRRUN);
  lua_settop(L, repl - 1);
  return LUA_OK;
}

/* Checks the backend name before the loop sees it, to say what is valid. */
static int check_backend(const char *name, const char *from) {
  static const char *const names[] = {
#ifdef _WIN32
    "iocp",
#else
#ifdef MP_WITH_URING
    "io_uring",
#endif
    "epoll",
#endif
    NULL};
  if (!name || !*name) return 1;
  for (int i = 0; names[i]; i++)
    if (strcmp(name, names[i]) == 0) return 1;
  lua_writestringerror("%s: ", progname);
  lua_writestringerror("unknown backend '%s'", name);
  lua_writestringerror(" in %s (valid: ", from);
  for (int i = 0; names[i]; i++)
    lua_writestringerror(i ? ", %s" : "%s", names[i]);
  lua_writestringerror("%s\n", ")");
  return 0;
}

/* After the script: runs the tasks to their end; a worker told to stop
 * cancels them. Returns what moonport_run does. */
static int run_rest(lua_State *L) {
  int n, stopping = 0;
  if (!self) return moonport_run(L, MP_RUN_DEFAULT);
  while ((n = moonport_run(L, MP_RUN_ONCE)) > 0) {
    if (!stopping && stop_asked()) {
      stopping = 1;
      moonport_cancel_all(L);
    }
  }
  return n;
}

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  struct mp_loop *loop = lua_touserdata(L, 3);
  struct mp_args *args = lua_touserdata(L, 4);
  int script = args->first, flags = args->flags;
  if ((flags & MP_ARGS_V) && (!self || self->index == 1))
    print_version(loop);
  if (flags & MP_ARGS_NOENV) {
    lua_pushboolean(L, 1); /* tells package to ignore LUA_PATH & co. */
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  const char *torture = getenv("MOONPORT_GC_TORTURE");
  if (torture && *torture && strcmp(torture, "0") != 0)
    lua_sethook(L, gc_hook, LUA_MASKLINE, 0);
  lua_getglobal(L, "os");
  lua_getfield(L, -1, "exit");
  lua_pushcclosure(L, os_exit_closing, 1);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  if (self) lua_register(L, "print", print_line);
  /* moonport is built in: require "moonport" needs no search path. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  moonport_open(L, loop);
  lua_setfield(L, -2, "moonport");
  lua_pop(L, 1);
  if (self && moonport_worker_attach(L, lua_touserdata(L, 5), self->index))
    return luaL_error(L, "cannot attach worker %d", self->index);
#ifdef MP_WITH_READLINE
  mterm_install(L); /* the REPL's lines: line editing, history */
#endif
  running = moonport_running(L);
  createargtable(L, argv, argc, script);
  /* Generational, as lua.c: a stream of large short-lived strings (64 KiB
   * reads) made the incremental collector run a full cycle over the whole
   * heap every few reads (bench/readfloor.sh, docs/performance.md). */
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (!(flags & MP_ARGS_NOENV) && handle_luainit(L) != LUA_OK) goto fail;
  if (!runargs(L, argv, script)) goto fail;
  if (script < argc && handle_script(L, argv + script) != LUA_OK) goto fail;
  if (flags & MP_ARGS_I) {
    dorepl(L);
    goto done;
  } else if (script == argc && !(flags & (MP_ARGS_E | MP_ARGS_V))) {
    if (isatty(0)) {
      print_version(loop);
      dorepl(L);
      goto done;
    } else if (dofile(L, NULL) != LUA_OK) {
      goto fail;
    }
  }
  /* The script has ended; the other tasks run to their end. */
  if (run_rest(L) < 0) {
    report(L, LUA_ERRRUN);
    goto fail;
  }
  lua_pushboolean(L, moonport_unhandled(L) == 0);
  return 1;
done: /* leaving the REPL ends the session: background tasks are dropped */
  lua_pushboolean(L, 1);
  return 1;
fail:
  lua_pushboolean(L, 0);
  return 1;
}

/* Runs the command's state on a new loop (on this thread); hub: the
 * workers' record, for a worker. Returns 1 on success. */
static int run_one(int argc, char **argv, struct mp_args *args,
                   struct moonport_workers *hub);

/* ---- Workers (--workers N, docs/workers.md) ----
 *
 * The main thread runs no Lua: it starts the workers, routes SIGINT and
 * SIGTERM (blocked in every thread, read through a loop of its own), and
 * learns of each worker's end from a post to that loop. A signal asks
 * every worker to stop: its tasks are cancelled (their to-be-closed
 * variables and finalizers run) and it ends; a second one ends the
 * process at once. A worker that fails (the script raises, a task nobody
 * joined raised, a deadlock) is reported and restarted in a new state,
 * unless it already failed burst times within the last seconds: a rate,
 * not a total, so a server whose worker fails once a day keeps running
 * while one that fails at startup stops (MOONPORT_WORKER_RESTARTS). */
struct restarts {
  int burst, seconds;
};

struct team {
  struct mp_os_mutex *lock;
  struct mp_loop *loop;           /* the main thread's */
  struct moonport_workers *hub;
  struct worker *w;
  int n, alive, stopping, failed;
  int argc;
  char **argv;
  struct mp_args *args;
  struct restarts limit;
  struct mp_sigroute *route;
  mp_handle_t sigh;
};

static void worker_thread(void *arg) {
  struct worker *w = arg;
  struct team *t = w->team;
  self = w;
  w->ok = run_one(t->argc, t->argv, t->args, t->hub);
  mp_loop_post(t->loop, &w->done);
}

static void worker_done(struct mp_op *op);

/* On the worker's thread: the loop's turn ends here (a bare wake can be
 * taken by a turn that then sleeps on), so the worker sees stop. */
static void stop_cb(struct mp_op *op) { mp_loop_stop(op->loop); }

static int worker_start(struct worker *w) {
  mp_op_init(&w->done, worker_done, w);
  mp_op_init(&w->stop_op, stop_cb, w);
  int r = mp_os_thread_start(&w->thread, worker_thread, w);
  if (r < 0) {
    fprintf(stderr, "%s: cannot start worker %d: %s\n", progname, w->index,
            mp_strerror(r));
    w->team->failed = 1;
    if (w->team->alive == 0) mp_loop_stop(w->team->loop);
    return r;
  }
  w->team->alive++;
  return 0;
}

static void worker_done(struct mp_op *op) {
  struct worker *w = op->data;
  struct team *t = w->team;
  mp_os_thread_join(w->thread);
  w->thread = NULL;
  t->alive--;
  if (w->ok || t->stopping) {
    if (t->alive == 0) mp_loop_stop(t->loop); /* the turn ends here */
    return;
  }
  /* the ring holds the failures still inside the window, at most burst */
  int64_t now = mp_loop_now(t->loop);
  int64_t window = (int64_t)t->limit.seconds * 1000000000;
  int cap = t->limit.burst;
  while (w->nfails > 0 && now - w->fails[w->oldest] >= window) {
    w->oldest = (w->oldest + 1) % cap;
    w->nfails--;
  }
  if (w->nfails >= cap) {
    if (cap == 0)
      fprintf(stderr, "%s: worker %d failed: not restarted\n", progname,
              w->index);
    else
      fprintf(stderr, "%s: worker %d failed %d times in %d s: not "
                      "restarted\n",
              progname, w->index, w->nfails + 1, t->limit.seconds);
    t->failed = 1;
    if (t->alive == 0) mp_loop_stop(t->loop);
    return;
  }
  w->fails[(w->oldest + w->nfails++) % cap] = now;
  fprintf(stderr, "%s: worker %d failed: restarting it (%d of %d in %d s)\n",
          progname, w->index, w->nfails, cap, t->limit.seconds);
  fflush(stderr);
  worker_start(w);
}

/* Asks every worker to stop: the flag, then a post to its loop (a
 * worker whose loop is not out yet sees the flag before it runs). */
static void team_stop(struct team *t) {
  t->stopping = 1;
  mp_os_mutex_lock(t->lock);
  for (int i = 0; i < t->n; i++) {
    atomic_store(&t->w[i].stop, 1);
    if (t->w[i].loop) mp_loop_post(t->w[i].loop, &t->w[i].stop_op);
  }
  mp_os_mutex_unlock(t->lock);
}

static void on_signal(struct mp_op *op) {
  struct team *t = op->data;
  if (op->result < 0 || t->alive == 0) {
    mp_op_release(op);
    return;
  }
  int term = mp_os_sigroute_take(t->route, mp_os_signum("TERM")) == 1;
  int intr = mp_os_sigroute_take(t->route, mp_os_signum("INT")) == 1;
  if (term || intr) {
    if (t->stopping) { /* the second one: now */
      fprintf(stderr, "%s: stopped\n", progname);
      _exit(128 + mp_os_signum(term ? "TERM" : "INT"));
    }
    team_stop(t);
  }
  mp_op_prep_poll(op, t->sigh);
  if (mp_op_submit(op) < 0) mp_op_release(op);
}

/* The workers' loops are published to the main thread (for stop's
 * post) while they are open. */
static void worker_publish(struct mp_loop *loop) {
  if (!self) return;
  mp_os_mutex_lock(self->team->lock);
  self->loop = loop;
  mp_os_mutex_unlock(self->team->lock);
}

/* MOONPORT_WORKER_RESTARTS: "BURST" or "BURST/SECONDS" (default 5/60):
 * a worker that fails is restarted unless it failed BURST times in the
 * last SECONDS; 0 never restarts. Returns 0 (reported) if malformed. */
static int restart_limit(struct restarts *r) {
  const char *s = getenv("MOONPORT_WORKER_RESTARTS");
  r->burst = 5;
  r->seconds = 60;
  if (!s || !*s) return 1;
  char *end;
  long b = strtol(s, &end, 10), sec = r->seconds;
  if (end != s && *end == '/') {
    const char *p = end + 1;
    sec = strtol(p, &end, 10);
    if (end == p) end = (char *)p - 1; /* "5/": malformed */
  }
  if (end == s || *end || b < 0 || b > 64 || sec < 1 || sec > 86400) {
    fprintf(stderr, "%s: MOONPORT_WORKER_RESTARTS: '%s': expected BURST or "
                    "BURST/SECONDS (BURST 0-64, SECONDS 1-86400)\n",
            progname, s);
    return 0;
  }
  r->burst = (int)b;
  r->seconds = (int)sec;
  return 1;
}

static int run_workers(int argc, char **argv, struct mp_args *args) {
  struct team t;
  int r;
  memset(&t, 0, sizeof t);
  if (!restart_limit(&t.limit)) return EXIT_FAILURE;
  t.argc = argc;
  t.argv = argv;
  t.args = args;
  t.n = args->workers > 0 ? args->workers : mp_os_cpu_count();
  if (args->first >= argc || (args->flags & MP_ARGS_I) ||
      strcmp(argv[args->first], "-") == 0) {
    l_message(progname, "--workers needs a script file (no REPL, no "
                        "script from stdin)");
    return EXIT_FAILURE;
  }
  if ((r = mp_os_mutex_new(&t.lock)) < 0 ||
      (r = mp_loop_new(&t.loop, NULL)) < 0 ||
      (r = mp_os_sigroute_open(&t.route, &t.sigh)) < 0 ||
      (r = mp_os_sigroute_add(t.route, mp_os_signum("INT"))) < 0 ||
      ((r = mp_os_sigroute_add(t.route, mp_os_signum("TERM"))) < 0 &&
       r != MP_ENOSYS) || /* Windows: no TERM reaches a process */
      !(t.hub = moonport_workers_new(t.n)) ||
      !(t.w = calloc((size_t)t.n, sizeof *t.w))) {
    fprintf(stderr, "%s: cannot start the workers: %s\n", progname,
            mp_strerror(r < 0 ? r : MP_ENOMEM));
    return EXIT_FAILURE; /* the process ends: nothing to give back */
  }
  /* Routed even where the parent ignored them (a background job's
   * SIGINT), as lua.c's handler is installed whatever was there. */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  struct mp_op *sig = mp_op_new(t.loop, on_signal, &t);
  if (sig) {
    mp_op_prep_poll(sig, t.sigh);
    if (mp_op_submit(sig) < 0) mp_op_release(sig), sig = NULL;
  }
  for (int i = 0; i < t.n; i++) {
    t.w[i].team = &t;
    t.w[i].index = i + 1;
    if (worker_start(&t.w[i]) < 0) {
      team_stop(&t);
      break;
    }
  }
  while (t.alive > 0) mp_loop_run(t.loop, MP_RUN_ONCE);
  mp_loop_drain(t.loop); /* the signal wait */
  mp_os_sigroute_close(t.route);
  mp_os_close(t.sigh);
  mp_loop_close(t.loop);
  moonport_workers_free(t.hub);
  mp_os_mutex_free(t.lock);
  free(t.w);
  return t.failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int run_one(int argc, char **argv, struct mp_args *args,
                   struct moonport_workers *hub) {
  struct mp_loop *loop;
  int r = mp_loop_new(&loop, args->backend);
  if (r < 0) {
    const char *name = args->backend ? args->backend
                                     : getenv("MOONPORT_BACKEND");
    fprintf(stderr, "%s: cannot start the %s backend: %s\n", progname,
            name && *name ? name : "default", mp_strerror(r));
    return 0;
  }
  lua_State *L = moonport_newstate();
  if (!L) {
    l_message(progname, "cannot create state: not enough memory");
    mp_loop_close(loop);
    return 0;
  }
  host_L = L;
  host_loop = loop;
  worker_publish(loop);
  lua_setwarnf(L, warn_off, L);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushlightuserdata(L, loop);
  lua_pushlightuserdata(L, args);
  lua_pushlightuserdata(L, hub);
  int st = lua_pcall(L, 5, 1, 0);
  int ok = st == LUA_OK && lua_toboolean(L, -1);
  if (st != LUA_OK) report(L, st);
  moonport_closestate(L);
  mp_loop_drain(loop);
  worker_publish(NULL);
  mp_loop_close(loop);
  return ok;
}

int main(int argc, char **argv) {
  struct mp_args args;
  if (argv[0] && argv[0][0]) progname = argv[0];
#ifndef _WIN32
  main_thread = pthread_self();
#endif
  if (mp_args_parse(argc, argv, &args) & MP_ARGS_ERROR) {
    print_usage(argv[args.first]);
    return EXIT_FAILURE;
  }
  if (!check_backend(args.backend, "--backend") ||
      (!args.backend &&
       !check_backend(getenv("MOONPORT_BACKEND"), "MOONPORT_BACKEND")))
    return EXIT_FAILURE;
#ifdef SIGPIPE
  /* A write to a closed pipe must be an EPIPE result, not a dead process. */
  signal(SIGPIPE, SIG_IGN);
#endif
  if (args.workers) return run_workers(argc, argv, &args);
  return run_one(argc, argv, &args, NULL) ? EXIT_SUCCESS : EXIT_FAILURE;
}
