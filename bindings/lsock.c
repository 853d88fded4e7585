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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsock.h"
#include "lworker.h"
#include "mp_os.h"

static const char *const type_names[] = {"stream", "server", "udp"};
static const char *const type_mts[] = {LSOCK_STREAM_MT, LSOCK_SERVER_MT,
                                       LSOCK_UDP_MT};

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
  }
  lmp_handle_untrack(r->op); /* may close the descriptor */
}

static void req_op_cb(struct mp_op *op) {
  struct lsock_req *r = op->owned;
  lsock_req_finish(r);
  /* Orphaned (its task is gone): an accepted descriptor has no owner. */
  if (!op->data && op->kind == MP_OP_ACCEPT && op->result >= 0)
    mp_os_close((mp_handle_t)op->result);
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

int lsock_req_link(struct lsock *s, struct lsock_req *r) {
  struct mp_loop *loop = s->S->loop;
  if (lmp_handle_track(s->h, r->op) < 0) return MP_ENOMEM;
  r->s = s;
  r->timed_out = r->closed = 0;
  r->prev = NULL;
  r->next = s->reqs;
  if (s->reqs) s->reqs->prev = r;
  s->reqs = r;
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

/* "what ADDR" in buf when s has a peer (streams) or local name, else
 * what. */
static const char *what_addr(struct lsock *s, const char *what, char *buf,
                             size_t size) {
  struct mp_addr a;
  mp_handle_t fd = s ? lsock_fd(s) : MP_INVALID_HANDLE;
  if (fd == MP_INVALID_HANDLE ||
      mp_os_sockname(fd, &a, s->type == LSOCK_STREAM) < 0)
    return what;
  char addr[160];
  lsock_format_addr(&a, addr, sizeof addr);
  snprintf(buf, size, "%s %s", what, addr);
  return buf;
}

int lsock_fail(lua_State *L, struct lsock *s, int err, const char *what) {
  char buf[400];
  return lmp_fail(L, err, what_addr(s, what, buf, sizeof buf));
}

int lsock_rbuf_fail(lua_State *L, struct lsock *s, int err,
                    const char *what) {
  char buf[400];
  return lmp_rbuf_fail(L, err, what_addr(s, what, buf, sizeof buf),
                       s ? s->rb.maxline : (size_t)LMP_RBUF_MAXLINE);
}

int lsock_fail_op(lua_State *L, struct lsock *s, struct mp_op *op,
                  const char *what) {
  struct lsock_req *r = op->owned;
  int err = (int)op->result;
  int closed = r->closed || (s && s->closed);
  int timed_out = err == MP_ECANCELED && r->timed_out;
  mp_op_release(op);
  if (closed) return lmp_fail(L, MP_ECLOSED, what);
  return lsock_fail(L, s, timed_out ? LMP_ETIMEOUT : err, what);
}

/* ---- objects ---- */

static int new_sock_udata(lua_State *L) {
  lua_newuserdatauv(L, sizeof(struct lsock), 0);
  return 1;
}

struct lsock *lsock_push(lua_State *L, struct lmp_state *S, int type,
                         mp_handle_t fd, int family) {
  /* fd exists already: if its object cannot be allocated, close it
   * before raising rather than leak it. */
  lua_pushcfunction(L, new_sock_udata);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    mp_os_close(fd);
    lua_error(L);
  }
  struct lsock *s = lua_touserdata(L, -1);
  memset(s, 0, sizeof *s);
  if (!(s->h = lmp_handle_new(S->loop, fd))) {
    mp_os_close(fd);
    luaL_error(L, "not enough memory");
  }
  s->S = S;
  s->family = family;
  s->type = (unsigned char)type;
  s->timeout = -1;
  lmp_rbuf_init(&s->rb);
  luaL_setmetatable(L, type_mts[type]);
  /* out of memory: not in the set, its methods take the exact check */
  if (type == LSOCK_STREAM) (void)lmp_ptrset_add(&S->streams, S->loop, s);
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
 * one closes the descriptor. With none, it closes now (a port is free
 * again at once), on the pool if SO_LINGER may block. */
void lsock_shut(struct lsock *s) {
  if (s->tls) s->tls->release(s); /* close_notify while the fd is open */
  s->closed = 1;
  for (struct lsock_req *r = s->reqs; r; r = r->next) r->closed = 1;
  if (s->linger && !s->share) {
    lmp_handle_close(s->h);
  } else {
    /* a shared server's accepts name the listener's socket, never its
     * own handle: that closes now, so the last close frees the port
     * (SO_LINGER does nothing on a listening socket) */
    mp_handle_t fd = s->share ? lmp_handle_take_now(s->h)
                              : lmp_handle_take(s->h);
    if (fd != MP_INVALID_HANDLE) mp_os_close(fd);
  }
  if (s->share) { /* its accepts are cancelled: let the listener go */
    lmp_share_leave(s->share);
    s->share = NULL;
  }
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
  if (!s->h) return 0;
  /* before Lua may free the block (a later cycle): the address may then
   * be another object's */
  if (s->type == LSOCK_STREAM) lmp_ptrset_del(&s->S->streams, s);
  if (!s->closed) lsock_shut(s);
  /* Ops may outlive the userdata: their handle closes after the last. */
  for (struct lsock_req *r = s->reqs, *next; r; r = next) {
    next = r->next;
    r->s = NULL;
    r->next = r->prev = NULL;
  }
  s->reqs = NULL;
  lmp_handle_unref(s->h);
  s->h = NULL;
  return 0;
}

int lsock_tostring(lua_State *L) {
  struct lsock *s = any_sock(L, 1);
  mp_handle_t fd = lsock_fd(s);
  if (fd == MP_INVALID_HANDLE || s->closed)
    lua_pushfstring(L, "%s (closed): %p", type_names[s->type], (void *)s);
  else
    lua_pushfstring(L, "%s (fd %I): %p", type_names[s->type],
                    (lua_Integer)(intptr_t)fd, (void *)s);
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
  struct mp_addr a;
  int r = mp_os_sockname(lsock_fd(s), &a, peer);
  if (r < 0) return lsock_fail(L, s, r, peer ? "peername" : "sockname");
  return lsock_push_addr(L, &a);
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
  static const enum mp_sockopt opts[] = {
    MP_TCP_NODELAY, MP_SO_KEEPALIVE, MP_SO_LINGER, MP_SO_REUSEADDR,
    MP_SO_REUSEPORT, MP_SO_SNDBUF, MP_SO_RCVBUF, MP_SO_BROADCAST};
  struct lsock *s = lsock_check(L, 1, type, "setoption");
  int opt = luaL_checkoption(L, 2, NULL, names), v;
  if (opts[opt] == MP_SO_LINGER) { /* false/nil = off, seconds = on */
    v = -1;
    if (lua_toboolean(L, 3)) {
      lua_Integer secs = luaL_checkinteger(L, 3);
      luaL_argcheck(L, secs >= 0 && secs <= 65535, 3,
                    "seconds (0..65535) or false expected");
      v = (int)secs;
    }
  } else if (opts[opt] == MP_SO_SNDBUF || opts[opt] == MP_SO_RCVBUF) {
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n > 0 && n <= 0x7fffffff, 3, "positive size expected");
    v = (int)n;
  } else {
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    v = lua_toboolean(L, 3);
  }
  int r = mp_os_setsockopt(lsock_fd(s), opts[opt], v);
  if (r < 0) return lsock_fail(L, s, r, "setoption");
  if (opts[opt] == MP_SO_LINGER) s->linger = s->h->blocking_close = v > 0;
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- addresses ----
 *
 * A packed address is a Lua string holding the bytes of a struct mp_addr
 * (the OS's sockaddr; mp_addr_family checks it), made by ldns.c. It never
 * leaves moonport's own Lua code (net.lua). */

void lsock_format_addr(const struct mp_addr *a, char *buf, size_t size) {
  char host[128];
  int port;
  switch (mp_addr_format(a, host, sizeof host, &port)) {
    case MP_AF_INET: snprintf(buf, size, "%s:%d", host, port); break;
    case MP_AF_INET6: snprintf(buf, size, "[%s]:%d", host, port); break;
    case MP_AF_UNIX:
      snprintf(buf, size, "%s", host[0] ? host : "unix:(unnamed)");
      break;
    default: snprintf(buf, size, "(unknown address)"); break;
  }
}

int lsock_push_addr(lua_State *L, const struct mp_addr *a) {
  char host[128];
  int port;
  switch (mp_addr_format(a, host, sizeof host, &port)) {
    case MP_AF_INET: case MP_AF_INET6:
      lua_pushstring(L, host);
      lua_pushinteger(L, port);
      return 2;
    case MP_AF_UNIX:
      lua_pushstring(L, host);
      return 1;
    default:
      lua_pushnil(L);
      return 1;
  }
}

void lsock_check_addr(lua_State *L, int idx, struct mp_addr *a) {
  size_t n;
  const char *p = luaL_checklstring(L, idx, &n);
  memset(a, 0, sizeof *a);
  if (n <= sizeof a->sa.b) {
    memcpy(a->sa.b, p, n);
    a->len = (uint32_t)n;
  }
  luaL_argcheck(L, mp_addr_family(a) >= 0, idx, "packed address expected");
}

void lsock_new_type(lua_State *L, struct lmp_state *S, const char *mt,
                    const luaL_Reg *methods) {
  static const luaL_Reg meta[] = {
    {"__gc", lsock_gc}, {"__close", sock_close_meta},
    {"__tostring", lsock_tostring}, {NULL, NULL}};
  lmp_new_class(L, S, mt, meta, methods);
  lua_pop(L, 1);
}
