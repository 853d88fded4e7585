/* main.c: the moonport command, a thin host over the embedding API.
 *
 *   moonport [options] [script [args...]]
 *
 * Options follow lua(1): -e stat, -l mod, -v, -- and - (script from stdin),
 * plus --backend NAME. The script runs as the first task with Lua's global
 * `arg` table and its arguments as `...`; the command exits 0 when every
 * task has ended, 1 at once if the script raises (message and traceback on
 * stderr), and 1 at the end if a task nobody joined raised. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>

#include "lmoonport.h"

static const char *progname = "moonport";

static int report(lua_State *L, int status);

/* The REPL's Ctrl-C: like lua.c, the signal handler sets a hook on the
 * Lua thread that is running (here, the coroutine of the running entry)
 * so even `while true do end` stops; the host loop also cancels the entry
 * if it is suspended. These statics belong to the host program, not to
 * the library. */
static lua_State *volatile repl_co;
static struct mp_loop *volatile repl_loop;
static volatile sig_atomic_t repl_interrupted;

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

static void on_sigint(int sig) {
  (void)sig;
  repl_interrupted = 1;
  lua_State *co = repl_co;
  if (co)
    lua_sethook(co, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  if (repl_loop) mp_loop_wake(repl_loop);
}

/* os.exit in the command closes the state unless told not to, so what
 * file writes buffered, __close handlers and __gc still run (C's exit
 * flushes stdio for io the same way). */
static int os_exit_closing(lua_State *L) {
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 2, 0);
  return 0;
}

/* Runs moonport.repl as a task until the user ends it (Ctrl-D). */
static int dorepl(lua_State *L, struct mp_loop *loop) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "moonport.repl");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) return report(L, LUA_ERRRUN);
  int repl = lua_gettop(L);
  lua_getfield(L, repl, "run");
  moonport_spawn(L, 0);
  int task = lua_gettop(L);
  repl_loop = loop;
  signal(SIGINT, on_sigint);
  printf("moonport 0.1 (%s, backend %s); Ctrl-D exits, Ctrl-C stops an "
         "entry\n", LUA_RELEASE, mp_loop_backend(loop));
  fflush(stdout);
  for (;;) {
    if (moonport_task_done(L, task)) break;
    /* The running entry, for the signal handler and the cancel below. */
    lua_getfield(L, repl, "entry");
    struct lmp_task *entry = luaL_testudata(L, -1, LMP_TASK);
    repl_co = entry ? entry->co : NULL;
    if (repl_interrupted) {
      repl_interrupted = 0;
      if (entry) {
        lua_getfield(L, -1, "cancel");
        lua_pushvalue(L, -2);
        lua_call(L, 1, 0);
      }
    }
    lua_pop(L, 1);
    if (moonport_run(L, MP_RUN_ONCE) < 0) lua_pop(L, 1);
  }
  signal(SIGINT, SIG_DFL);
  repl_co = NULL;
  repl_loop = NULL;
  lua_settop(L, repl - 1);
  return LUA_OK;
}

static void usage(void) {
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "  -e stat         execute string 'stat'\n"
          "  -l mod          require library 'mod' into global 'mod'\n"
          "  -i              enter interactive mode after the script\n"
          "  -v              show version information\n"
          "  --backend NAME  use backend NAME (io_uring, epoll)\n"
          "  --              stop handling options\n"
          "  -               run stdin as the script, stop handling options\n",
          progname);
}

/* The first task: runs the chunk under xpcall so a failure carries the
 * traceback from the point of error (as lua.c's msghandler). */
static const char runner[] =
  "local chunk = ...\n"
  "local function handler(e)\n"
  "  if type(e) ~= 'string' then\n"
  "    local mt = getmetatable(e)\n"
  "    if mt and mt.__tostring then e = tostring(e)\n"
  "    else e = '(error object is a ' .. type(e) .. ' value)' end\n"
  "  end\n"
  "  return debug.traceback(e, 2)\n"
  "end\n"
  "return function(...)\n"
  "  local r = table.pack(xpcall(chunk, handler, ...))\n"
  "  if not r[1] then error(r[2], 0) end\n"
  "  return table.unpack(r, 2, r.n)\n"
  "end\n";

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s: %s\n", progname, msg ? msg : "(error object)");
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status;
}

/* Runs chunk (on top) as a task with nargs arguments below it, drives the
 * loop until that task has ended, and returns its status. Other tasks
 * keep running afterwards. */
static int run_as_task(lua_State *L, int nargs) {
  if (luaL_loadbufferx(L, runner, sizeof runner - 1, "=runner", "t"))
    return LUA_ERRRUN;
  lua_insert(L, -2);
  lua_call(L, 1, 1);
  moonport_spawn(L, nargs);
  int task = lua_gettop(L);
  for (;;) {
    if (moonport_task_done(L, task)) break;
    if (moonport_run(L, MP_RUN_ONCE) < 0) return LUA_ERRRUN;
  }
  lua_getfield(L, task, "join");
  lua_pushvalue(L, task);
  lua_call(L, 1, 2);
  lua_remove(L, task);
  if (lua_toboolean(L, -2)) {
    lua_pop(L, 2);
    return LUA_OK;
  }
  lua_remove(L, -2);
  return LUA_ERRRUN;
}

static int dostring(lua_State *L, const char *s, const char *name) {
  int st = luaL_loadbufferx(L, s, strlen(s), name, "t");
  if (st == LUA_OK) st = run_as_task(L, 0);
  return report(L, st);
}

static int dolibrary(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  int st = lua_pcall(L, 1, 1, 0);
  if (st == LUA_OK) lua_setglobal(L, name);
  return report(L, st);
}

static void createargtable(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int doscript(lua_State *L, char **argv, int argc, int script) {
  const char *fname = argv[script];
  if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0)
    fname = NULL; /* stdin */
  /* Text only: precompiled chunks can crash the VM. */
  int st = luaL_loadfilex(L, fname, "t");
  if (st == LUA_OK) {
    int n = argc - script - 1;
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
    lua_rotate(L, -(n + 1), n); /* chunk on top */
    st = run_as_task(L, n);
  }
  return report(L, st);
}

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  struct mp_loop *loop = lua_touserdata(L, 3);
  int script = 0, has_e = 0, version = 0, interactive = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || strcmp(a, "-") == 0) { script = i; break; }
    if (strcmp(a, "--") == 0) { script = i + 1 < argc ? i + 1 : 0; break; }
    if (strcmp(a, "--backend") == 0) { i++; continue; }
    if (strcmp(a, "-v") == 0) { version = 1; continue; }
    if (strcmp(a, "-i") == 0) { interactive = 1; continue; }
    if ((strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) && i + 1 < argc) {
      has_e |= a[1] == 'e';
      i++;
      continue;
    }
    usage();
    lua_pushboolean(L, 0);
    return 1;
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
  /* moonport is built in: require "moonport" needs no search path. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  moonport_open(L, loop);
  lua_setfield(L, -2, "moonport");
  lua_pop(L, 1);
  createargtable(L, argv, argc, script ? script : argc);
  if (version) printf("moonport 0.1 (%s, backend %s)\n", LUA_RELEASE,
                      mp_loop_backend(loop));
  int end = script ? script : argc;
  for (int i = 1; i < end; i++) {
    if (strcmp(argv[i], "-e") == 0 && dostring(L, argv[++i], "=(command line)"))
      goto fail;
    if (strcmp(argv[i], "-l") == 0 && dolibrary(L, argv[++i])) goto fail;
    if (strcmp(argv[i], "--backend") == 0) i++;
  }
  if (script && doscript(L, argv, argc, script) != LUA_OK) goto fail;
  if (interactive) {
    dorepl(L, loop);
  } else if (!script && !has_e && !version) {
    if (isatty(0)) {
      interactive = 1;
      dorepl(L, loop);
    } else {
      static char dash[] = "-";
      if (doscript(L, (char *[]){argv[0], dash, NULL}, 2, 1) != LUA_OK)
        goto fail;
    }
  }
  /* The script has ended; the other tasks run to their end. Leaving the
   * REPL ends the session instead: background tasks are dropped. */
  if (!interactive && moonport_run(L, MP_RUN_DEFAULT) < 0) {
    report(L, LUA_ERRRUN);
    goto fail;
  }
  lua_pushboolean(L, moonport_unhandled(L) == 0);
  return 1;
fail:
  lua_pushboolean(L, 0);
  return 1;
}

int main(int argc, char **argv) {
  const char *backend = NULL;
  struct mp_loop *loop;
  if (argv[0] && argv[0][0]) progname = argv[0];
  for (int i = 1; i + 1 < argc; i++) {
    if (argv[i][0] != '-' || strcmp(argv[i], "--") == 0) break;
    if (strcmp(argv[i], "--backend") == 0) backend = argv[i + 1];
    if (strcmp(argv[i], "-e") == 0 || strcmp(argv[i], "-l") == 0) i++;
  }
  /* A write to a closed pipe must be an EPIPE result, not a dead process. */
  signal(SIGPIPE, SIG_IGN);
  int r = mp_loop_new(&loop, backend);
  if (r < 0) {
    fprintf(stderr, "%s: cannot start the %s backend: %s\n", progname,
            backend ? backend : "default", mp_strerror(r));
    return 1;
  }
  lua_State *L = moonport_newstate();
  if (!L) {
    fprintf(stderr, "%s: not enough memory\n", progname);
    return 1;
  }
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushlightuserdata(L, loop);
  int st = lua_pcall(L, 3, 1, 0);
  int ok = st == LUA_OK && lua_toboolean(L, -1);
  if (st != LUA_OK) report(L, st);
  moonport_closestate(L);
  mp_loop_drain(loop);
  mp_loop_close(loop);
  return ok ? 0 : 1;
}
