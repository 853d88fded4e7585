/* lsock.c: the socket base every socket object shares (lsock.h): the
 * object, its ops and their requests, timeouts, close, options, names.
 * Streams are lstream.c, servers lserver.c, datagrams ludp.c.
 *
 * Each op on a socket carries a request record in op->owned: it links the
 * op to its socket (so close() can cancel everything in flight and close
 * the descriptor only after the last completion), holds the payload the
 * kernel reads or writes, and races the op against a timer when the
 * socket has a timeout. The timer only requests a cancel; the op's own
 * completion decides the outcome, so a result that won the race is never
 * lost (an accepted fd, bytes received). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lsock.h"

/* The descriptor of a collected socket whose ops are still in flight. */
struct lsock_zombie {
  int fd, refs;
  unsigned char linger;
};

static const char *const type_names[] = {"stream", "server", "udp"};
static const char *const type_mts[] = {LSOCK_STREAM_MT, LSOCK_SERVER_MT,
                                       LSOCK_UDP_MT};

/* ---- closing descriptors ---- */

static void close_work(struct mp_op *op) {
  int fd = (int)(intptr_t)op->u.work.arg;
  op->result = close(fd) < 0 ? -errno : 0;
}

static void release_cb(struct mp_op *op) { mp_op_release(op); }

/* With SO_LINGER > 0, close(2) blocks up to the linger time even on a
 * non-blocking socket: do it on the pool then. */
static void close_fd(struct mp_loop *loop, int fd, int linger) {
  if (linger) {
    struct mp_op *op = mp_op_new(loop, release_cb, NULL);
    if (op) {
      mp_op_prep_work(op, close_work, (void *)(intptr_t)fd);
      mp_op_protect(op); /* a drained loop still closes it */
      if (mp_op_submit(op) == 0) return;
      mp_op_release(op);
    }
  }
  close(fd);
}

static void sock_closefd(struct lsock *s) {
  if (s->fd >= 0) close_fd(s->S->loop, s->fd, s->linger);
  s->fd = -1;
}

/* ---- requests ---- */

void lsock_req_finish(struct lsock_req *r) {
  if (r->timer) {
    r->timer->data = NULL; /* its callback only releases it now */
    mp_op_cancel(r->timer);
    r->timer = NULL;
  }
  if (!r->linked) return;
  r->linked = 0;
  struct lsock *s = r->s;
  if (s) {
    if (r->prev) r->prev->next = r->next; else s->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->next = r->prev = NULL;
    if (r->dir == LSOCK_RD) s->reading = 0;
    if (r->dir == LSOCK_WR) s->writing = 0;
    if (--s->nreqs == 0 && s->closed) sock_closefd(s);
  } else if (r->z) {
    struct lsock_zombie *z = r->z;
    r->z = NULL;
    if (--z->refs == 0) {
      close_fd(r->op->loop, z->fd, z->linger);
      free(z);
    }
  }
}

static void req_op_cb(struct mp_op *op) {
  struct lsock_req *r = op->owned;
  lsock_req_finish(r);
  /* Orphaned (its task is gone): an accepted descriptor has no owner. */
  if (!op->data && op->kind == MP_OP_ACCEPT && op->result >= 0)
    close((int)op->result);
  lmp_task_op_cb(op);
}

static void req_timer_cb(struct mp_op *timer) {
  struct lsock_req *r = timer->data;
  if (r && timer->result == 0) {
    r->timer = NULL;
    r->timed_out = 1;
    mp_op_cancel(r->op);
  } else if (r) {
    r->timer = NULL;
  }
  mp_op_release(timer);
}

struct mp_op *lsock_op(lua_State *L, struct lsock *s, size_t extra,
                       int64_t deadline) {
  struct lsock_req *r = mp_loop_malloc(s->S->loop, sizeof *r + extra);
  if (!r) luaL_error(L, "not enough memory");
  struct mp_op *op = mp_op_new(s->S->loop, req_op_cb, NULL);
  if (!op) {
    free(r);
    luaL_error(L, "not enough memory");
  }
  memset(r, 0, sizeof *r);
  r->s = s;
  r->op = op;
  r->deadline = deadline;
  r->len = extra;
  op->owned = r;
  return op;
}

int64_t lsock_deadline(struct lsock *s) {
  if (s->timeout < 0) return 0;
  struct mp_loop *loop = s->S->loop;
  mp_loop_update_time(loop);
  int64_t d = mp_loop_now(loop) + s->timeout;
  return d ? d : 1;
}

/* Links r to s and starts its deadline timer. MP_ENOMEM when the timer
 * cannot start (r is unlinked again): the op must not run without its
 * deadline. */
int lsock_req_link(struct lsock *s, struct lsock_req *r) {
  struct mp_loop *loop = s->S->loop;
  r->s = s;
  r->timed_out = r->closed = 0;
  r->prev = NULL;
  r->next = s->reqs;
  if (s->reqs) s->reqs->prev = r;
  s->reqs = r;
  s->nreqs++;
  r->linked = 1;
  if (r->dir == LSOCK_RD) s->reading = 1;
  if (r->dir == LSOCK_WR) s->writing = 1;
  if (r->deadline) {
    int64_t left = r->deadline - mp_loop_now(loop);
    struct mp_op *t = mp_op_new(loop, req_timer_cb, r);
    if (t) {
      mp_op_prep_timer(t, left < 0 ? 0 : left);
      if (mp_op_submit(t) == 0) r->timer = t;
      else mp_op_release(t);
    }
    if (!r->timer) {
      lsock_req_finish(r);
      return MP_ENOMEM;
    }
  }
  return 0;
}

int lsock_await(lua_State *L, struct lsock *s, struct mp_op *op,
                lmp_done k, const char *fname) {
  if (lsock_req_link(s, op->owned) < 0) {
    mp_op_release(op);
    return lsock_fail(L, s, MP_ENOMEM, fname);
  }
  return lmp_await(L, op, k, fname);
}

/* ---- errors ---- */

int lsock_push_fail(lua_State *L, struct lsock *s, const char *what,
                     const char *msg, const char *code) {
  char addr[160] = "";
  if (s && s->fd >= 0) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int r = s->type == LSOCK_STREAM
                ? getpeername(s->fd, (struct sockaddr *)&ss, &len)
                : getsockname(s->fd, (struct sockaddr *)&ss, &len);
    if (r == 0) lsock_format_addr((struct sockaddr *)&ss, len, addr,
                                  sizeof addr);
  }
  lua_pushnil(L);
  if (addr[0]) lua_pushfstring(L, "%s %s: %s", what, addr, msg);
  else lua_pushfstring(L, "%s: %s", what, msg);
  lua_pushstring(L, code);
  return 3;
}

int lsock_fail(lua_State *L, struct lsock *s, int err, const char *what) {
  if (err == MP_ECLOSED) return lsock_push_fail(L, s, what, "closed", "closed");
  return lsock_push_fail(L, s, what, mp_strerror(err),
                   err == MP_ECANCELED ? "cancelled" : mp_errname(err));
}

int lsock_fail_op(lua_State *L, struct lsock *s, struct mp_op *op,
                  const char *what) {
  struct lsock_req *r = op->owned;
  int err = (int)op->result;
  int closed = r->closed || (s && s->closed);
  int timed_out = err == MP_ECANCELED && r->timed_out;
  mp_op_release(op);
  if (closed) return lsock_push_fail(L, NULL, what, "closed", "closed");
  if (timed_out) return lsock_push_fail(L, s, what, "timed out", "timeout");
  return lsock_fail(L, s, err, what);
}

/* ---- objects ---- */

static int new_sock_udata(lua_State *L) {
  lua_newuserdatauv(L, sizeof(struct lsock), 0);
  return 1;
}

struct lsock *lsock_push(lua_State *L, struct lmp_state *S, int type, int fd,
                         int family) {
  /* fd exists already: if its object cannot be allocated, close it
   * before raising rather than leak it. */
  lua_pushcfunction(L, new_sock_udata);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    close(fd);
    lua_error(L);
  }
  struct lsock *s = lua_touserdata(L, -1);
  memset(s, 0, sizeof *s);
  s->S = S;
  s->fd = fd;
  s->family = family;
  s->type = (unsigned char)type;
  s->timeout = -1;
  lmp_rbuf_init(&s->rb);
  luaL_setmetatable(L, type_mts[type]);
  return s;
}

struct lsock *lsock_check(lua_State *L, int idx, int type, const char *fname) {
  struct lsock *s = luaL_testudata(L, idx, type_mts[type]);
  if (!s) {
    const char *got = luaL_typename(L, idx);
    if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
      got = lua_tostring(L, -1);
    luaL_error(L, "bad argument #%d to '%s' (%s expected, got %s)", idx,
               fname, type_names[type], got);
  }
  if (s->closed)
    luaL_error(L, "%s: attempt to use a closed %s", fname, type_names[type]);
  return s;
}

/* Any socket type, closed or not (close, __gc, __tostring). */
static struct lsock *any_sock(lua_State *L, int idx) {
  for (int t = 0; t < 3; t++) {
    struct lsock *s = luaL_testudata(L, idx, type_mts[t]);
    if (s) return s;
  }
  luaL_argerror(L, idx, "socket expected");
  return NULL;
}

/* Cancels every op in flight; they complete with "closed" and the last
 * one closes the descriptor. */
void lsock_shut(struct lsock *s) {
  s->closed = 1;
  for (struct lsock_req *r = s->reqs; r; r = r->next) {
    r->closed = 1;
    mp_op_cancel(r->op);
  }
  if (s->nreqs == 0) sock_closefd(s);
  lmp_rbuf_free(&s->rb);
}

int lsock_close(lua_State *L, int type) {
  struct lsock *s = lsock_check(L, 1, type, "close");
  lsock_shut(s);
  lua_pushboolean(L, 1);
  return 1;
}

static int sock_close_meta(lua_State *L) { /* __close: closed is fine */
  struct lsock *s = any_sock(L, 1);
  if (!s->closed) lsock_shut(s);
  return 0;
}

int lsock_gc(lua_State *L) {
  struct lsock *s = any_sock(L, 1);
  if (!s->closed) lsock_shut(s);
  if (s->nreqs > 0) {
    /* Ops outlive the userdata: they finish the close. If the record
     * cannot be allocated, leaking the fd beats closing it under them. */
    struct lsock_zombie *z = mp_loop_malloc(s->S->loop, sizeof *z);
    if (z) {
      z->fd = s->fd;
      z->refs = s->nreqs;
      z->linger = s->linger;
    }
    for (struct lsock_req *r = s->reqs, *next; r; r = next) {
      next = r->next;
      r->s = NULL;
      r->z = z;
      r->next = r->prev = NULL;
      if (!z) r->linked = 0;
    }
    s->reqs = NULL;
    s->nreqs = 0;
    s->fd = -1;
  }
  return 0;
}

int lsock_tostring(lua_State *L) {
  struct lsock *s = any_sock(L, 1);
  if (s->fd < 0 || s->closed)
    lua_pushfstring(L, "%s (closed): %p", type_names[s->type], (void *)s);
  else
    lua_pushfstring(L, "%s (fd %d): %p", type_names[s->type], s->fd,
                    (void *)s);
  return 1;
}

int lsock_settimeout(lua_State *L, int type, const char *fname) {
  struct lsock *s = lsock_check(L, 1, type, fname);
  if (lua_isnoneornil(L, 2)) {
    s->timeout = -1;
  } else {
    luaL_checktype(L, 2, LUA_TNUMBER); /* a duration, never a string */
    lua_Number t = lua_tonumber(L, 2);
    luaL_argcheck(L, t >= 0, 2, "non-negative number expected");
    s->timeout = t >= 4.6e9 ? -1 : (int64_t)(t * 1e9);
  }
  lua_settop(L, 1);
  return 1;
}

int lsock_push_name(lua_State *L, struct lsock *s, int peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(s->fd, (struct sockaddr *)&ss, &len)
               : getsockname(s->fd, (struct sockaddr *)&ss, &len);
  if (r < 0) return lsock_fail(L, s, -errno, peer ? "peername" : "sockname");
  return lsock_push_addr(L, (struct sockaddr *)&ss, len);
}

int lsock_sockname(lua_State *L) {
  struct lsock *s = any_sock(L, 1);
  lsock_check(L, 1, s->type, "sockname");
  return lsock_push_name(L, s, 0);
}

int lsock_setoption(lua_State *L, int type) {
  static const char *const names[] = {
    "nodelay", "keepalive", "linger", "reuseaddr", "reuseport", "sndbuf",
    "rcvbuf", "broadcast", NULL};
  struct lsock *s = lsock_check(L, 1, type, "setoption");
  int opt = luaL_checkoption(L, 2, NULL, names);
  int level = SOL_SOCKET, name, v = 0, r;
  struct linger lg = {0, 0};
  void *val = &v;
  socklen_t vlen = sizeof v;
  if (opt == 2) { /* linger: false/nil = off, seconds >= 0 = on */
    if (lua_toboolean(L, 3)) {
      lua_Integer secs = luaL_checkinteger(L, 3);
      luaL_argcheck(L, secs >= 0 && secs <= 65535, 3,
                    "seconds (0..65535) or false expected");
      lg.l_onoff = 1;
      lg.l_linger = (int)secs;
    }
    name = SO_LINGER;
    val = &lg;
    vlen = sizeof lg;
  } else if (opt == 5 || opt == 6) {
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n > 0 && n <= 0x7fffffff, 3, "positive size expected");
    v = (int)n;
    name = opt == 5 ? SO_SNDBUF : SO_RCVBUF;
  } else {
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    v = lua_toboolean(L, 3);
    switch (opt) {
      case 0: level = IPPROTO_TCP; name = TCP_NODELAY; break;
      case 1: name = SO_KEEPALIVE; break;
      case 3: name = SO_REUSEADDR; break;
      case 4: name = SO_REUSEPORT; break;
      default: name = SO_BROADCAST; break;
    }
  }
  r = setsockopt(s->fd, level, name, val, vlen);
  if (r < 0) return lsock_fail(L, s, -errno, "setoption");
  if (opt == 2) s->linger = lg.l_onoff && lg.l_linger > 0;
  lua_pushboolean(L, 1);
  return 1;
}

void lsock_new_type(lua_State *L, struct lmp_state *S, const char *mt,
                    const luaL_Reg *methods) {
  static const luaL_Reg meta[] = {
    {"__gc", lsock_gc}, {"__close", sock_close_meta},
    {"__tostring", lsock_tostring}, {NULL, NULL}};
  lmp_new_class(L, S, mt, meta, methods);
  lua_pop(L, 1);
}
