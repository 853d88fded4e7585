/* lwatch.c: mp.fs.watch, the watcher object. The runtime's mp_watch
 * decodes and queues the changes; a watcher reads only while a task
 * waits in next() (the system queues the changes meanwhile), so an idle
 * watcher keeps nothing in flight. The descriptor's lifetime is an
 * lmp_handle: close() cancels the read, which wakes its task with
 * "closed", and the descriptor closes once the read has completed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lhandle.h"
#include "lwatch.h"
#include "mp_os.h"

#define LWATCH_MT "moonport.watcher"

struct lwatch {
  struct lmp_handle *h;  /* NULL once collected */
  struct mp_watch *w;    /* NULL once closed */
  struct mp_op *op;      /* the read in flight, if any */
  unsigned char closed;
  char path[];           /* as given, for messages and __tostring */
};

/* The read's memory (op->owned): lw is cleared by its callback, or by
 * __gc when the read outlives the watcher. */
struct wread {
  struct lwatch *lw;
  _Alignas(16) char buf[MP_WATCH_BUF];
};

static const char *const event_names[] = {
  "create", "modify", "delete", "rename", "overflow",
};

static const char *check_path(lua_State *L, int i) {
  const char *p = luaL_checkstring(L, i);
  luaL_argcheck(L, strlen(p) == lua_rawlen(L, i), i,
                "path contains a NUL byte");
  return p;
}

static struct lwatch *check_watch(lua_State *L) {
  return luaL_checkudata(L, 1, LWATCH_MT);
}

static int closed_fail(lua_State *L, struct lwatch *lw) {
  char what[64 + 1024];
  snprintf(what, sizeof what, "watch %.1024s", lw->path);
  return lmp_fail(L, MP_ECLOSED, what);
}

/* ---- mp.fs.watch(path [, {recursive = bool}]): opened on the pool ---- */

struct open_job {
  struct mp_watch *w; /* until the watcher takes it */
  int err, flags;
  char path[];
};

static void job_free(void *p) {
  struct open_job *j = p;
  if (j->w) { /* abandoned: nobody took it */
    mp_os_close(mp_watch_handle(j->w));
    mp_watch_free(j->w);
  }
  free(j);
}

static void open_work(struct mp_op *op) {
  struct open_job *j = op->u.work.arg;
  j->err = mp_watch_open(j->path, j->flags, &j->w);
}

static int new_udata(lua_State *L) {
  size_t len = (size_t)lua_tointeger(L, 1);
  struct lwatch *lw = lua_newuserdatauv(L, sizeof *lw + len + 1, 0);
  memset(lw, 0, sizeof *lw);
  return 1;
}

static int open_k(lua_State *L, struct mp_op *op) {
  struct lmp_state *S = lmp_getstate(L);
  struct open_job *j = op->owned;
  if (op->result < 0 || j->err < 0) {
    int err = op->result < 0 ? (int)op->result : j->err;
    mp_op_release(op);
    return lmp_fail(L, err, lua_tostring(L, 1));
  }
  size_t len = strlen(j->path);
  lua_pushcfunction(L, new_udata);
  lua_pushinteger(L, (lua_Integer)len);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    mp_op_release(op); /* closes the watch */
    return lua_error(L);
  }
  struct lwatch *lw = lua_touserdata(L, -1);
  if (!(lw->h = lmp_handle_new(S->loop, mp_watch_handle(j->w)))) {
    mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  memcpy(lw->path, j->path, len + 1);
  lw->w = j->w;
  j->w = NULL;
  mp_op_release(op);
  luaL_setmetatable(L, LWATCH_MT);
  return 1;
}

static int l_watch(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  size_t len;
  const char *path = check_path(L, 1);
  int flags = 0;
  len = strlen(path);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    int t = lua_getfield(L, 2, "recursive");
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
      return luaL_argerror(L, 2, "opts.recursive must be a boolean");
    if (lua_toboolean(L, -1)) flags |= MP_WATCH_RECURSIVE;
  }
  lua_settop(L, 1);
  struct mp_op *op = mp_op_new(S->loop, NULL, NULL);
  struct open_job *j = mp_loop_malloc(S->loop, sizeof *j + len + 1);
  if (!op || !j) {
    if (op) mp_op_release(op);
    free(j);
    return luaL_error(L, "not enough memory");
  }
  memset(j, 0, sizeof *j);
  j->flags = flags;
  memcpy(j->path, path, len + 1);
  mp_op_own(op, j, job_free);
  mp_op_prep_work(op, open_work, j);
  return lmp_await(L, op, open_k, "watch");
}

/* ---- watcher:next() ---- */

/* Decodes what the read brought even if its task is gone (cancelled):
 * the changes were taken from the system and stay queued. Runs again
 * with data NULL when the op is discarded: lw is cleared the first time. */
static void read_cb(struct mp_op *op) {
  struct wread *r = op->owned;
  struct lwatch *lw = r->lw;
  if (lw) {
    r->lw = NULL;
    lw->op = NULL;
    if (op->result > 0 && lw->w)
      mp_watch_feed(lw->w, r->buf, (size_t)op->result);
  }
  lmp_handle_op_cb(op);
}

static int push_event(lua_State *L, const struct mp_watch_event *ev) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, event_names[ev->type]);
  lua_setfield(L, -2, "event");
  if (ev->path) {
    lua_pushstring(L, ev->path);
    lua_setfield(L, -2, "path");
  }
  if (ev->from) {
    lua_pushstring(L, ev->from);
    lua_setfield(L, -2, "from");
  }
  return 1;
}

static int watch_next(lua_State *L);

static int next_k(lua_State *L, struct mp_op *op) {
  struct lwatch *lw = lua_touserdata(L, 1);
  int64_t r = op->result;
  mp_op_release(op);
  if (lw->closed) return closed_fail(L, lw);
  if (r < 0) return lmp_fail(L, (int)r, lw->path);
  return watch_next(L); /* an event, or read again (all filtered out) */
}

static int watch_next(lua_State *L) {
  struct lwatch *lw = check_watch(L);
  struct mp_watch_event ev;
  int err;
  lua_settop(L, 1);
  if (lw->closed) return closed_fail(L, lw);
  if (lw->op)
    return luaL_error(L, "next: another task is waiting on this watcher");
  if (mp_watch_take(lw->w, &ev)) return push_event(L, &ev);
  struct mp_op *op = lmp_handle_op(lw->h, &err);
  struct wread *r = op ? mp_loop_malloc(lmp_state(L)->loop, sizeof *r)
                       : NULL;
  if (!r) {
    if (op) {
      lmp_handle_untrack(op);
      mp_op_release(op);
    }
    return luaL_error(L, "not enough memory");
  }
  r->lw = lw;
  mp_op_own(op, r, NULL);
  op->cb = read_cb;
  lw->op = op;
  mp_op_prep_watch(op, lw->w, r->buf, sizeof r->buf);
  return lmp_await(L, op, next_k, "next");
}

/* ---- close, __gc, __tostring ---- */

static void shut(struct lwatch *lw) {
  lw->closed = 1;
  mp_watch_free(lw->w); /* the read's callback sees w NULL */
  lw->w = NULL;
  lmp_handle_close(lw->h);
}

static int watch_close(lua_State *L) {
  struct lwatch *lw = check_watch(L);
  if (!lw->closed) shut(lw);
  lua_pushboolean(L, 1);
  return 1;
}

static int watch_gc(lua_State *L) {
  struct lwatch *lw = check_watch(L);
  if (!lw->h) return 0;
  if (!lw->closed) shut(lw);
  if (lw->op) ((struct wread *)lw->op->owned)->lw = NULL;
  lw->op = NULL;
  lmp_handle_unref(lw->h);
  lw->h = NULL;
  return 0;
}

static int watch_tostring(lua_State *L) {
  struct lwatch *lw = check_watch(L);
  if (lw->closed) lua_pushliteral(L, "watcher (closed)");
  else lua_pushfstring(L, "watcher (%s)", lw->path);
  return 1;
}

void lmp_open_watch(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg meta[] = {
    {"__gc", watch_gc}, {"__close", watch_close},
    {"__tostring", watch_tostring}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
    {"next", watch_next}, {"close", watch_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"watch", l_watch}, {NULL, NULL}};
  lmp_new_class(L, S, LWATCH_MT, meta, methods);
  lua_pop(L, 1);
  luaL_getsubtable(L, -1, "fs");
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}
