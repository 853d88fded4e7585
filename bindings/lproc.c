/* lproc.c: child processes and routed signals, the C half of mp.proc
 * (the Lua half, argument checks and mp.proc.run, is
 * lua/moonport/proc.lua). The OS work is runtime/proc_unix.c.
 *
 * A child's record outlives its object: every wait polls the process
 * handle with an op of its own (so a cancelled or timed-out wait leaves
 * the child waitable), and a child collected before it ended is still
 * reaped by a background poll. */
#include <stdlib.h>
#include <string.h>

#include "lfile.h"
#include "lproc.h"
#include "lsock.h"
#include "mp_os.h"

#define LPROC_MT "moonport.proc"
#define LPROC_SIGNALS "moonport.signals"

struct lproc {
  struct mp_loop *loop;
  struct mp_proc p;
  int refs;              /* the object + ops in flight on the handle */
  int ended, status;     /* status: mp_os_proc_status's */
  unsigned char collected, closing;
};

static void poll_status(struct lproc *c) {
  int st;
  if (!c->ended && mp_os_proc_status(&c->p, 0, &st) == 1) {
    c->ended = 1;
    c->status = st;
  }
}

static void reaper_cb(struct mp_op *op);

static void unref(struct lproc *c) {
  if (--c->refs > 0) return;
  poll_status(c);
  if (!c->ended && c->collected && !c->closing) {
    /* No zombie: nobody waits any more, so a poll of our own reaps it. */
    struct mp_op *op = mp_op_new(c->loop, reaper_cb, c);
    if (op) {
      mp_op_prep_poll(op, c->p.handle);
      if (mp_op_submit(op) == 0) {
        c->refs++;
        return;
      }
      mp_op_release(op);
    }
  }
  mp_os_close(c->p.handle);
  free(c);
}

static void reaper_cb(struct mp_op *op) {
  struct lproc *c = op->data;
  if (op->result < 0) c->closing = 1; /* drained: the loop is closing */
  mp_op_release(op);
  unref(c);
}

static struct lproc *check_proc(lua_State *L) {
  struct lproc **u = luaL_checkudata(L, 1, LPROC_MT);
  return *u;
}

static int push_status(lua_State *L, int status) {
  if (status < MP_PROC_SIGNALED) {
    lua_pushinteger(L, status);
    return 1;
  }
  lua_pushnil(L);
  lua_pushliteral(L, "signal");
  lua_pushinteger(L, status - MP_PROC_SIGNALED);
  return 3;
}

/* ---- wait ---- */

static int proc_wait(lua_State *L);

static void wait_cb(struct mp_op *op) {
  struct lproc *c = op->ref;
  if (c) {
    op->ref = NULL;
    unref(c);
  }
  lmp_task_op_cb(op);
}

static int wait_k(lua_State *L, struct mp_op *op) {
  int r = (int)op->result;
  mp_op_release(op);
  if (r < 0) return lmp_fail(L, r, "wait");
  return proc_wait(L);
}

/* core.proc_wait(handle): exit code, or nil, "signal", signo. */
static int proc_wait(lua_State *L) {
  struct lproc *c = check_proc(L);
  lua_settop(L, 1);
  if (!c->ended) {
    int st, r = mp_os_proc_status(&c->p, 0, &st);
    if (r < 0) return lmp_fail(L, r, "wait");
    if (r == 1) {
      c->ended = 1;
      c->status = st;
    }
  }
  if (c->ended) return push_status(L, c->status);
  struct mp_op *op = mp_op_new(c->loop, wait_cb, NULL);
  if (!op) return luaL_error(L, "not enough memory");
  mp_op_prep_poll(op, c->p.handle);
  op->ref = c;
  c->refs++;
  return lmp_await(L, op, wait_k, "wait");
}

/* core.proc_reap(handle): after a KILL, collects the child at once (the
 * kernel's teardown of a killed process does not wait on it). */
static int proc_reap(lua_State *L) {
  struct lproc *c = check_proc(L);
  int st;
  if (!c->ended && mp_os_proc_status(&c->p, 1, &st) == 1) {
    c->ended = 1;
    c->status = st;
  }
  return 0;
}

static int signal_arg(lua_State *L, int idx, const char *fname) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, idx);
    luaL_argcheck(L, n >= 0 && n < 65, idx, "signal number out of range");
    return (int)n;
  }
  const char *name = luaL_optstring(L, idx, "TERM");
  int n = mp_os_signum(name);
  if (n < 0)
    return luaL_error(L, "bad argument #%d to '%s' (unknown signal '%s')",
                      idx, fname, name);
  return n;
}

/* core.proc_kill(handle [, signal]) */
static int proc_kill(lua_State *L) {
  struct lproc *c = check_proc(L);
  int sig = signal_arg(L, 2, "kill");
  int r = c->ended ? MP_ESRCH : mp_os_proc_kill(&c->p, sig);
  if (r < 0) return lmp_fail(L, r, "kill");
  lua_pushboolean(L, 1);
  return 1;
}

static int proc_gc(lua_State *L) {
  struct lproc **u = luaL_checkudata(L, 1, LPROC_MT);
  if (*u) {
    (*u)->collected = 1;
    unref(*u);
    *u = NULL;
  }
  return 0;
}

/* ---- spawn ---- */

/* The strings of the array at idx as a NULL-terminated vector in memory
 * Lua collects (the table keeps the strings alive during the call). */
static const char **strvec(lua_State *L, int idx) {
  lua_Integer n = luaL_len(L, idx);
  const char **v = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *v, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    v[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  v[n] = NULL;
  return v;
}

/* core.proc_spawn(argv, env|nil, cwd|nil, mode0, mode1, mode2): handle,
 * pid, stdin, stdout, stderr (streams or nil); or nil, msg, code. The
 * arguments are checked by proc.lua. */
static int proc_spawn(lua_State *L);

static int spawn_again(lua_State *L, struct mp_op *op) {
  mp_op_release(op);
  return proc_spawn(L);
}

static int proc_spawn(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct mp_spawn o;
  struct mp_proc p;
  mp_handle_t pipes[3];
  /* A child writing to our stdout comes after what we wrote there: what
   * waits in C stdio's buffer (mp.stdout's bytes, io.write's) goes out
   * first, once stdout is writable (a failure is the child's to meet). */
  if (lua_tointeger(L, 5) == MP_STDIO_INHERIT &&
      mp_os_stdout_drain(mp_os_stdhandle(1)) == 0) {
    struct mp_op *op = mp_op_new(S->loop, NULL, NULL);
    if (!op) return luaL_error(L, "not enough memory");
    mp_op_prep_poll_out(op, mp_os_stdhandle(1));
    lua_settop(L, 6);
    return lmp_await(L, op, spawn_again, "spawn");
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  o.argv = strvec(L, 1);
  o.env = lua_istable(L, 2) ? strvec(L, 2) : NULL;
  o.cwd = luaL_optstring(L, 3, NULL);
  for (int i = 0; i < 3; i++)
    o.stdio[i] = (int)luaL_checkinteger(L, 4 + i);
  struct lproc **u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = NULL;
  luaL_setmetatable(L, LPROC_MT);
  int ud = lua_gettop(L);
  struct lproc *c = calloc(1, sizeof *c);
  if (!c) return luaL_error(L, "not enough memory");
  int r = mp_os_spawn(&o, &p, pipes);
  if (r < 0) {
    free(c);
    /* which of the program and the directory failed is not told */
    if (o.cwd) lua_pushfstring(L, "spawn %s (in %s)", o.argv[0], o.cwd);
    else lua_pushfstring(L, "spawn %s", o.argv[0]);
    return lmp_fail(L, r, lua_tostring(L, -1));
  }
  c->loop = S->loop;
  c->p = p;
  c->refs = 1;
  *u = c; /* from here on the child is reaped whatever happens */
  lua_pushvalue(L, ud);
  lua_pushinteger(L, p.pid);
  for (int i = 0; i < 3; i++) {
    if (pipes[i] == MP_INVALID_HANDLE) {
      lua_pushnil(L);
      continue;
    }
    mp_handle_t fd = pipes[i];
    pipes[i] = MP_INVALID_HANDLE;
    lsock_push(L, S, LSOCK_STREAM, fd, MP_AF_UNIX);
  }
  return 5;
}

/* ---- signals ---- */

struct lsig {
  struct mp_sigroute *r;
  struct lmp_handle *h;
};

static int sig_gc(lua_State *L) {
  struct lsig *g = lua_touserdata(L, 1);
  if (g->r) mp_os_sigroute_close(g->r);
  g->r = NULL;
  lmp_handle_unref(g->h);
  g->h = NULL;
  return 0;
}

/* This state's route, made on first use. */
static struct lsig *routes(lua_State *L, struct lmp_state *S, int *err) {
  struct lsig *g;
  mp_handle_t h;
  if (lua_getfield(L, LUA_REGISTRYINDEX, LPROC_SIGNALS) == LUA_TUSERDATA) {
    g = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return g;
  }
  lua_pop(L, 1);
  g = lua_newuserdatauv(L, sizeof *g, 0);
  memset(g, 0, sizeof *g);
  if ((*err = mp_os_sigroute_open(&g->r, &h)) < 0) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!(g->h = lmp_handle_new(S->loop, h))) {
    mp_os_sigroute_close(g->r);
    g->r = NULL;
    mp_os_close(h);
    *err = MP_ENOMEM;
    lua_pop(L, 1);
    return NULL;
  }
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sig_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, LPROC_SIGNALS);
  return g;
}

static int proc_signal(lua_State *L);

static int signal_k(lua_State *L, struct mp_op *op) {
  int r = (int)op->result;
  mp_op_release(op);
  if (r < 0) return lmp_fail(L, r, "signal");
  return proc_signal(L);
}

/* core.proc_signal(name): the name once that signal arrived. */
static int proc_signal(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  const char *name = luaL_checkstring(L, 1);
  int signo = mp_os_signum(name), err = 0;
  lua_settop(L, 1);
  if (signo < 0)
    return luaL_error(L, "bad argument #1 to 'signal' (unknown signal "
                         "'%s')", name);
  name = mp_os_signame(signo);
  if (signo == mp_os_signum("KILL") || signo == mp_os_signum("STOP"))
    return luaL_error(L, "bad argument #1 to 'signal' (%s cannot be "
                         "caught)", name);
  struct lsig *g = routes(L, S, &err);
  if (!g) return lmp_fail(L, err, "signal");
  if ((err = mp_os_sigroute_add(g->r, signo)) < 0) {
    lua_pushfstring(L, "signal %s", name);
    return lmp_fail(L, err, lua_tostring(L, -1));
  }
  if (mp_os_sigroute_take(g->r, signo) == 1) {
    lua_pushstring(L, name);
    return 1;
  }
  struct mp_op *op = lmp_handle_op(g->h, &err);
  if (!op) return lmp_fail(L, err, "signal");
  mp_op_prep_poll(op, g->h->handle);
  return lmp_await(L, op, signal_k, "signal");
}

/* ---- the standard streams ---- */

/* core.stdio(i): a file object over a second handle on the process's
 * standard handle i (closing it leaves the process's own open), or nil
 * when that handle is closed. */
static int proc_stdio(lua_State *L) {
  static const char *const names[] = {"<stdin>", "<stdout>", "<stderr>"};
  int i = (int)luaL_checkinteger(L, 1);
  mp_handle_t h;
  luaL_argcheck(L, i >= 0 && i <= 2, 1, "0, 1 or 2 expected");
  /* the object first: nothing raises once the second handle is open */
  struct lfile *f = lfile_push(L, names[i], strlen(names[i]));
  if (mp_os_dup(mp_os_stdhandle(i), &h) < 0) return 0;
  /* its blocking mode is left as it is (shared with other processes) */
  lfile_adopt(L, f, h, i ? F_WRITE : F_READ, 1);
  /* a regular file's position is the kernel's (shared, as stdio's):
   * read and write there, like a stream */
  f->stream = 1;
  f->size = -1;
  f->std = i;
  return 1;
}

void lmp_open_proc(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg meta[] = {{"__gc", proc_gc}, {NULL, NULL}};
  static const luaL_Reg none[] = {{NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"proc_spawn", proc_spawn}, {"proc_wait", proc_wait},
    {"proc_kill", proc_kill}, {"proc_reap", proc_reap},
    {"proc_signal", proc_signal}, {"stdio", proc_stdio}, {NULL, NULL}};
  lmp_new_class(L, S, LPROC_MT, meta, none);
  lua_pop(L, 1);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
