/* ldns.c: names for mp.net: getaddrinfo on the threadpool
 * (MP_OP_GETADDRINFO), literal addresses parsed on the spot, and Unix
 * paths, all as the packed addresses the Lua side hands to lstream.c,
 * lserver.c and ludp.c (lsock.c reads and formats them). */
#include <string.h>

#include "lsock.h"
#include "mp_os.h"

enum { MAX_NAME = 253 };

/* ---- results ---- */

/* Pushes { { sa = packed, family = "inet"|"inet6", addr = "..." }, ... }. */
static int push_list(lua_State *L, const struct mp_addr *addrs, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    const struct mp_addr *a = &addrs[i];
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, (const char *)a->sa.b, a->len);
    lua_setfield(L, -2, "sa");
    lua_pushstring(L, mp_addr_family(a) == MP_AF_INET6 ? "inet6" : "inet");
    lua_setfield(L, -2, "family");
    lsock_push_addr(L, a);
    lua_pop(L, 1); /* the port */
    lua_setfield(L, -2, "addr");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int push_result(lua_State *L, const char *host, int n,
                       const struct mp_addr *addrs) {
  if (n < 0) return lmp_fail(L, n, lua_pushfstring(L, "resolve %s", host));
  return push_list(L, addrs, n);
}

/* Literals and the wildcard (name NULL): numeric only, never blocks. */
static int resolve_now(lua_State *L, const char *host, const char *name,
                       int port, int flags) {
  struct mp_addr addrs[MP_ADDRS_MAX];
  int n = mp_os_getaddrinfo(name, port, MP_AF_UNSPEC,
                            flags | MP_AI_NUMERICHOST, addrs, MP_ADDRS_MAX);
  return push_result(L, host, n, addrs);
}

static int dns_k(lua_State *L, struct mp_op *op) {
  /* Copied out before pushing, which may run out of memory. */
  struct mp_addr addrs[MP_ADDRS_MAX];
  int n = (int)op->result;
  if (n > 0) memcpy(addrs, mp_op_addrs(op), (size_t)n * sizeof addrs[0]);
  mp_op_release(op);
  return push_result(L, lua_tostring(L, 1), n, addrs);
}

/* core.net_addrs(host, port, passive): the address list, or nil, msg, code.
 * Literals and "*" answer at once; names go to the threadpool. */
static int l_addrs(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  size_t n;
  const char *host = luaL_checklstring(L, 1, &n);
  lua_Integer port = luaL_checkinteger(L, 2);
  int passive = lua_toboolean(L, 3) ? MP_AI_PASSIVE : 0;
  struct mp_addr a;
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  lua_settop(L, 3);
  if (strlen(host) != n) /* an embedded NUL must not truncate the name */
    return lmp_fail(L, LMP_EBADNAME, "resolve");
  if (passive && (n == 0 || strcmp(host, "*") == 0)) /* 0.0.0.0 and :: */
    return resolve_now(L, host, NULL, (int)port, passive);
  if (n == 0) /* names nothing (the op would take it for the loopback) */
    return push_result(L, host, MP_EAI_NONAME, NULL);
  if (n <= MAX_NAME && (mp_addr_ip(&a, host, 0) == 0 || strchr(host, ':')))
    return resolve_now(L, host, host, (int)port, passive);
  struct mp_op *op = mp_op_new(S->loop, NULL, NULL);
  if (!op) return luaL_error(L, "not enough memory");
  int err = mp_op_prep_getaddrinfo(op, host, (int)port, MP_AF_UNSPEC,
                                   passive);
  if (err < 0) { /* an invalid name fails at once */
    mp_op_release(op);
    if (err == MP_ENOMEM) return luaL_error(L, "not enough memory");
    return push_result(L, host, err, NULL);
  }
  return lmp_await(L, op, dns_k, "resolve");
}

/* core.net_unix_addr(path): a packed address, or nil, msg, code. */
static int l_unix_addr(lua_State *L) {
  size_t n;
  const char *path = luaL_checklstring(L, 1, &n);
  struct mp_addr a;
  int err = mp_addr_unix(&a, path, n);
  if (err < 0)
    return lmp_fail(L, err == MP_EINVAL ? LMP_EBADPATH : err, path);
  lua_pushlstring(L, (const char *)a.sa.b, a.len);
  return 1;
}

void lmp_open_dns(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg funcs[] = {
    {"net_addrs", l_addrs}, {"net_unix_addr", l_unix_addr}, {NULL, NULL}};
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
