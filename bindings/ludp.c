/* ludp.c: UDP sockets (mp.net.udp): sendto / recvfrom, tried at once
 * and else as SENDTO / RECVFROM ops whose datagram lives in the request
 * record the op owns. Names in sendto are resolved by net.lua. */
#include <stdio.h>
#include <string.h>

#include "lsock.h"
#include "mp_os.h"

enum { DGRAM_MAX = 65536 };

static struct lsock *check_udp(lua_State *L, const char *fname) {
  return lsock_check(L, 1, LSOCK_UDP, fname);
}

/* core.net_udp(packed or nil, family): a socket, bound when an address is
 * given. */
static int l_udp(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct mp_addr a;
  int family = MP_AF_INET, bound = !lua_isnoneornil(L, 1), err;
  mp_handle_t fd;
  if (bound) {
    lsock_check_addr(L, 1, &a);
    family = mp_addr_family(&a);
  }
  if ((err = mp_os_socket(family, MP_SOCK_DGRAM, &fd)) < 0)
    return lmp_fail(L, err, "udp");
  if (bound && (err = mp_os_bind(fd, &a)) < 0) {
    char addr[160], what[200];
    mp_os_close(fd);
    lsock_format_addr(&a, addr, sizeof addr);
    snprintf(what, sizeof what, "udp bind %s", addr);
    return lmp_fail(L, err, what);
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
  struct mp_addr a;
  lsock_check_addr(L, 3, &a);
  lua_settop(L, 3);
  int64_t r = mp_os_trysendto(lsock_fd(s), data, n, &a);
  if (r >= 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (r != MP_EAGAIN) return lsock_fail(L, s, (int)r, "sendto");
  /* The send buffer is full: wait for room with an op. */
  struct mp_op *op = lsock_op(L, s, n, lsock_deadline(s));
  memcpy(lsock_req(op)->data, data, n);
  lsock_req(op)->dir = LSOCK_WR;
  if (mp_op_prep_sendto(op, lsock_fd(s), lsock_req(op)->data, n, &a) < 0) {
    mp_op_release(op);
    return lsock_fail(L, s, MP_ENOMEM, "sendto");
  }
  return lsock_await(L, s, op, sendto_k, "sendto");
}

static int recvfrom_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  if (op->result < 0 || lsock_req(op)->closed)
    return lsock_fail_op(L, s, op, "recvfrom");
  lua_pushlstring(L, lsock_req(op)->data, (size_t)op->result);
  int n = 1 + lsock_push_addr(L, mp_op_from(op));
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
  struct mp_op *op = lsock_op(L, s, (size_t)max, lsock_deadline(s));
  lsock_req(op)->dir = LSOCK_RD;
  if (mp_op_prep_recvfrom(op, lsock_fd(s), lsock_req(op)->data,
                          (size_t)max) < 0) {
    mp_op_release(op);
    return lsock_fail(L, s, MP_ENOMEM, "recvfrom");
  }
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
