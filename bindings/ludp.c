/* ludp.c: UDP sockets (mp.net.udp): sendto / recvfrom as SENDMSG /
 * RECVMSG ops, whose msghdr, iovec, address and buffer live in the
 * request record the op owns. Names in sendto are resolved by net.lua. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lsock.h"

enum { DGRAM_MAX = 65536 };

struct dgram {
  struct msghdr mh;
  struct iovec iov;
  struct sockaddr_storage addr;
  _Alignas(16) char buf[]; /* the datagram */
};

static struct lsock *check_udp(lua_State *L, const char *fname) {
  return lsock_check(L, 1, LSOCK_UDP, fname);
}

/* core.net_udp(packed or nil, family): a socket, bound when an address is
 * given. */
static int l_udp(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  socklen_t len = 0;
  const struct sockaddr *sa = NULL;
  int family = AF_INET;
  if (!lua_isnoneornil(L, 1)) {
    sa = lsock_check_sa(L, 1, &len);
    family = sa->sa_family;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return lsock_fail(L, NULL, -errno, "udp");
  if (sa && bind(fd, sa, len) < 0) {
    int err = -errno;
    char addr[160], what[200];
    close(fd);
    lsock_format_addr(sa, len, addr, sizeof addr);
    snprintf(what, sizeof what, "udp bind %s", addr);
    return lsock_fail(L, NULL, err, what);
  }
  lsock_push(L, S, LSOCK_UDP, fd, family);
  return 1;
}

static int sendto_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  if (op->result < 0 || lsock_req(op)->closed)
    return lsock_fail_op(L, s, op, "sendto");
  mp_op_release(op);
  lua_pushboolean(L, 1);
  return 1;
}

/* udp:_sendto(data, packed address) */
static int udp_sendto(lua_State *L) {
  struct lsock *s = check_udp(L, "sendto");
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  socklen_t len;
  const struct sockaddr *sa = lsock_check_sa(L, 3, &len);
  ssize_t r;
  lua_settop(L, 3);
  do r = sendto(s->fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL, sa, len);
  while (r < 0 && errno == EINTR);
  if (r >= 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (errno != EAGAIN && errno != EWOULDBLOCK)
    return lsock_fail(L, s, -errno, "sendto");
  /* The send buffer is full: wait for room with an op. */
  struct mp_op *op = lsock_op(L, s, sizeof(struct dgram) + n,
                              lsock_deadline(s));
  struct dgram *d = (struct dgram *)lsock_req(op)->data;
  memset(d, 0, sizeof *d);
  memcpy(d->buf, data, n);
  memcpy(&d->addr, sa, len);
  d->iov.iov_base = d->buf;
  d->iov.iov_len = n;
  d->mh.msg_name = &d->addr;
  d->mh.msg_namelen = len;
  d->mh.msg_iov = &d->iov;
  d->mh.msg_iovlen = 1;
  lsock_req(op)->dir = LSOCK_WR;
  mp_op_prep_sendmsg(op, s->fd, &d->mh);
  return lsock_await(L, s, op, sendto_k, "sendto");
}

static int recvfrom_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct dgram *d = (struct dgram *)lsock_req(op)->data;
  if (op->result < 0 || lsock_req(op)->closed)
    return lsock_fail_op(L, s, op, "recvfrom");
  lua_pushlstring(L, d->buf, (size_t)op->result);
  int n = 1 + lsock_push_addr(L, (struct sockaddr *)&d->addr,
                              d->mh.msg_namelen);
  mp_op_release(op);
  return n;
}

static int udp_recvfrom(lua_State *L) {
  struct lsock *s = check_udp(L, "recvfrom");
  lua_Integer max = luaL_optinteger(L, 2, DGRAM_MAX);
  luaL_argcheck(L, max > 0, 2, "positive size expected");
  if (max > DGRAM_MAX) max = DGRAM_MAX;
  if (s->reading)
    return luaL_error(L, "recvfrom: another task is receiving on this socket");
  lua_settop(L, 1);
  struct mp_op *op = lsock_op(L, s, sizeof(struct dgram) + (size_t)max,
                              lsock_deadline(s));
  struct dgram *d = (struct dgram *)lsock_req(op)->data;
  memset(d, 0, sizeof *d);
  d->iov.iov_base = d->buf;
  d->iov.iov_len = (size_t)max;
  d->mh.msg_name = &d->addr;
  d->mh.msg_namelen = sizeof d->addr;
  d->mh.msg_iov = &d->iov;
  d->mh.msg_iovlen = 1;
  lsock_req(op)->dir = LSOCK_RD;
  mp_op_prep_recvmsg(op, s->fd, &d->mh);
  return lsock_await(L, s, op, recvfrom_k, "recvfrom");
}

static int udp_sockname(lua_State *L) {
  return lsock_push_name(L, check_udp(L, "sockname"), 0);
}

static int udp_settimeout(lua_State *L) {
  return lsock_settimeout(L, LSOCK_UDP, "settimeout");
}

static int udp_setoption(lua_State *L) { return lsock_setoption(L, LSOCK_UDP); }

static int udp_close(lua_State *L) { return lsock_close(L, LSOCK_UDP); }

static int udp_close_meta(lua_State *L) {
  struct lsock *s = luaL_checkudata(L, 1, LSOCK_UDP_MT);
  if (!s->closed) {
    lua_settop(L, 1);
    lsock_close(L, LSOCK_UDP);
  }
  return 0;
}

void lmp_open_udp(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg methods[] = {
    {"_sendto", udp_sendto}, {"recvfrom", udp_recvfrom},
    {"sockname", udp_sockname}, {"settimeout", udp_settimeout},
    {"setoption", udp_setoption}, {"close", udp_close}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__gc", lsock_gc}, {"__close", udp_close_meta},
    {"__tostring", lsock_tostring}, {NULL, NULL}};
  lmp_new_class(L, S, LSOCK_UDP_MT, meta, methods);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "net_udp_methods"); /* net.lua adds sendto */
  lua_pop(L, 1);
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, l_udp, 1);
  lua_setfield(L, -2, "net_udp");
}
