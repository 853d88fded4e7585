/* lserver.c: listening TCP and Unix-domain sockets (mp.net.listen,
 * server:accept). Accepting never spins: when the process is out of
 * descriptors (or memory) the pending connection stays in the backlog and
 * the same accept call waits, backing off, until it can take it. */
#include <stdio.h>

#include "lsock.h"
#include "ltls.h"
#include "lworker.h"
#include "mp_os.h"

enum {
  BACKOFF_MIN = 10000000,  /* accept EMFILE back-off: 10 ms ... */
  BACKOFF_MAX = 1000000000 /* ... doubling up to 1 s */
};

struct shared {
  struct lmp_state *S;
  struct lmp_share *x;
  mp_handle_t fd;
  int family;
};

static int push_shared(lua_State *L) {
  struct shared *p = lua_touserdata(L, 1);
  struct lsock *s = lsock_push(L, p->S, LSOCK_SERVER, p->fd, p->family);
  s->share = p->x;
  return 1;
}

/* reuseport where the system has no SO_REUSEPORT (Windows): the listener
 * on that address the workers share (docs/workers.md), through a handle
 * of this server's own. */
static int listen_shared(lua_State *L, struct lmp_state *S,
                         const struct mp_addr *a, int backlog, int reuseaddr,
                         const char *what) {
  struct shared p = {S, NULL, MP_INVALID_HANDLE, mp_addr_family(a)};
  int err = lmp_share_listen(L, a, backlog, reuseaddr, &p.x, &p.fd);
  if (err < 0) return lmp_fail(L, err, what);
  lua_pushcfunction(L, push_shared);
  lua_pushlightuserdata(L, &p);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* out of memory: fd closed */
    lmp_share_leave(p.x);
    return lua_error(L);
  }
  return 1;
}

/* core.net_listen(packed, backlog, reuseport, reuseaddr) */
static int l_listen(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct mp_addr a;
  lsock_check_addr(L, 1, &a);
  lua_Integer backlog = luaL_optinteger(L, 2, 511);
  int reuseport = lua_toboolean(L, 3), reuseaddr = lua_toboolean(L, 4);
  int family = mp_addr_family(&a), err;
  char addr[160], what[200];
  mp_handle_t fd;
  lsock_format_addr(&a, addr, sizeof addr);
  snprintf(what, sizeof what, "listen %s", addr);
  luaL_argcheck(L, backlog > 0 && backlog <= 65535, 2,
                "backlog out of range (1..65535)");
  if ((err = mp_os_socket(family, MP_SOCK_STREAM, &fd)) < 0)
    return lmp_fail(L, err, what);
  if (family != MP_AF_UNIX && reuseport &&
      (err = mp_os_setsockopt(fd, MP_SO_REUSEPORT, 1)) == MP_EOPNOTSUPP) {
    mp_os_close(fd);
    return listen_shared(L, S, &a, (int)backlog, reuseaddr, what);
  }
  if (err < 0 ||
      (family != MP_AF_UNIX && reuseaddr &&
       (err = mp_os_setsockopt(fd, MP_SO_REUSEADDR, 1)) < 0) ||
      (err = mp_os_bind(fd, &a)) < 0 ||
      (err = mp_os_listen(fd, (int)backlog)) < 0) {
    mp_os_close(fd);
    return lmp_fail(L, err, what);
  }
  lsock_push(L, S, LSOCK_SERVER, fd, family);
  return 1;
}

static void prep_accept(struct mp_op *op, struct lsock *s) {
  if (s->share) mp_op_prep_accept_shared(op, lmp_share_get(s->share));
  else mp_op_prep_accept(op, lsock_fd(s));
}

static int accept_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct lsock_req *r = op->owned;
  int64_t res = op->result;
  if (r->closed) {
    if (op->kind == MP_OP_ACCEPT && res >= 0) mp_os_close((mp_handle_t)res);
    return lsock_fail_op(L, s, op, "accept");
  }
  if (op->kind == MP_OP_TIMER && res == 0) { /* back-off over: retry */
    prep_accept(op, s);
    return lsock_await(L, s, op, accept_k, "accept");
  }
  if (res >= 0 && op->kind == MP_OP_ACCEPT) {
    mp_op_release(op);
    s->backoff = 0;
    struct lsock *c = lsock_push(L, s->S, LSOCK_STREAM, (mp_handle_t)res,
                                 s->family);
    c->accepted = 1;
    if (s->tls) ltls_accepted(L, s, c); /* handshake on first use */
    return 1;
  }
  switch (res) {
    case MP_EMFILE: case MP_ENFILE: case MP_ENOBUFS: case MP_ENOMEM:
      /* Out of descriptors or memory: the pending connection stays in the
       * backlog. Wait (without spinning) for existing connections to
       * close, then try again. */
      s->backoff = s->backoff ? s->backoff * 2 : BACKOFF_MIN;
      if (s->backoff > BACKOFF_MAX) s->backoff = BACKOFF_MAX;
      mp_op_prep_timer(op, s->backoff);
      return lsock_await(L, s, op, accept_k, "accept");
    case MP_ECONNABORTED: case MP_EINTR: case MP_EAGAIN: case MP_EPROTO:
    case MP_EPERM:
      /* The peer gave up before we got to it: the next one, then. */
      prep_accept(op, s);
      return lsock_await(L, s, op, accept_k, "accept");
    default:
      return lsock_fail_op(L, s, op, "accept");
  }
}

static int server_accept(lua_State *L) {
  struct lsock *s = lsock_check(L, 1, LSOCK_SERVER, "accept");
  lua_settop(L, 1);
  struct mp_op *op = lsock_op(L, s, 0, lsock_deadline(s));
  prep_accept(op, s);
  return lsock_await(L, s, op, accept_k, "accept");
}

static int server_settimeout(lua_State *L) {
  return lsock_settimeout(L, LSOCK_SERVER, "settimeout");
}

static int server_close(lua_State *L) { return lsock_close(L, LSOCK_SERVER); }

static int server_setoption(lua_State *L) {
  return lsock_setoption(L, LSOCK_SERVER);
}

void lmp_open_server(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg server[] = {
    {"accept", server_accept}, {"settimeout", server_settimeout},
    {"setoption", server_setoption}, {"sockname", lsock_sockname},
    {"close", server_close}, {NULL, NULL}};
  lsock_new_type(L, S, LSOCK_SERVER_MT, server);
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, l_listen, 1);
  lua_setfield(L, -2, "net_listen");
}
