/* ldns.c: names and addresses for mp.net: getaddrinfo on the threadpool,
 * literal addresses parsed on the spot, Unix paths, and the packed address
 * strings the Lua side hands to lsocket.c / ludp.c.
 *
 * A packed address is a Lua string holding a struct sockaddr_in, _in6 or
 * _un byte for byte. It never leaves moonport's own Lua code (net.lua). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "lsock.h"

enum { MAX_ADDRS = 16, MAX_NAME = 253 };

struct dns_job {
  char host[MAX_NAME + 2];
  int port, passive;
  int gai, sys_err;      /* getaddrinfo's result, errno for EAI_SYSTEM */
  int n;                 /* addresses found (deduplicated) */
  struct sockaddr_storage addrs[MAX_ADDRS];
  socklen_t lens[MAX_ADDRS];
};

/* ---- formatting ---- */

void lsock_format_addr(const struct sockaddr *sa, socklen_t len, char *buf,
                       size_t size) {
  char host[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6 &&
             len >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
  } else if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
    size_t n = len > offsetof(struct sockaddr_un, sun_path)
                   ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (n > sizeof un->sun_path) n = sizeof un->sun_path;
    n = strnlen(un->sun_path, n);
    snprintf(buf, size, "%.*s", (int)n, un->sun_path);
    if (!buf[0]) snprintf(buf, size, "unix:(unnamed)");
  } else {
    snprintf(buf, size, "(unknown address)");
  }
}

int lsock_push_addr(lua_State *L, const struct sockaddr *sa, socklen_t len) {
  char host[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    lua_pushstring(L, host);
    lua_pushinteger(L, ntohs(in->sin_port));
    return 2;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    lua_pushstring(L, host);
    lua_pushinteger(L, ntohs(in6->sin6_port));
    return 2;
  }
  if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
    size_t n = len > offsetof(struct sockaddr_un, sun_path)
                   ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (n > sizeof un->sun_path) n = sizeof un->sun_path;
    lua_pushlstring(L, un->sun_path, strnlen(un->sun_path, n));
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

const struct sockaddr *lsock_check_sa(lua_State *L, int idx, socklen_t *len) {
  size_t n;
  const char *p = luaL_checklstring(L, idx, &n);
  const struct sockaddr *sa = (const struct sockaddr *)p;
  int ok = n >= sizeof(sa_family_t) &&
           ((sa->sa_family == AF_INET && n == sizeof(struct sockaddr_in)) ||
            (sa->sa_family == AF_INET6 && n == sizeof(struct sockaddr_in6)) ||
            (sa->sa_family == AF_UNIX && n <= sizeof(struct sockaddr_un)));
  luaL_argcheck(L, ok, idx, "packed address expected");
  *len = (socklen_t)n;
  return sa;
}

/* ---- results ---- */

static const char *gai_code(int gai) {
  switch (gai) {
    case EAI_NONAME: return "EAI_NONAME";
    case EAI_AGAIN: return "EAI_AGAIN";
    case EAI_FAIL: return "EAI_FAIL";
    case EAI_MEMORY: return "EAI_MEMORY";
    case EAI_FAMILY: return "EAI_FAMILY";
    case EAI_SERVICE: return "EAI_SERVICE";
#ifdef EAI_NODATA
    case EAI_NODATA: return "EAI_NODATA";
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
#endif
    default: return "EAI_FAIL";
  }
}

static int push_gai_fail(lua_State *L, const char *host, int gai,
                         int sys_err) {
  if (gai == EAI_SYSTEM) {
    lua_pushnil(L);
    lua_pushfstring(L, "resolve %s: %s", host, mp_strerror(-sys_err));
    lua_pushstring(L, mp_errname(-sys_err));
    return 3;
  }
  lua_pushnil(L);
  lua_pushfstring(L, "resolve %s: %s", host, gai_strerror(gai));
  lua_pushstring(L, gai_code(gai));
  return 3;
}

/* Pushes { { sa = packed, family = "inet"|"inet6", addr = "..." }, ... }. */
static int push_list(lua_State *L, const struct dns_job *j) {
  lua_createtable(L, j->n, 0);
  for (int i = 0; i < j->n; i++) {
    const struct sockaddr *sa = (const struct sockaddr *)&j->addrs[i];
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, (const char *)sa, j->lens[i]);
    lua_setfield(L, -2, "sa");
    lua_pushstring(L, sa->sa_family == AF_INET6 ? "inet6" : "inet");
    lua_setfield(L, -2, "family");
    lsock_push_addr(L, sa, j->lens[i]);
    lua_pop(L, 1); /* the port */
    lua_setfield(L, -2, "addr");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static void add_addr(struct dns_job *j, const struct sockaddr *sa,
                     socklen_t len) {
  if (j->n >= MAX_ADDRS || len > sizeof j->addrs[0]) return;
  if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) return;
  for (int i = 0; i < j->n; i++)
    if (j->lens[i] == len && memcmp(&j->addrs[i], sa, len) == 0) return;
  memcpy(&j->addrs[j->n], sa, len);
  j->lens[j->n++] = len;
}

static void run_gai(struct dns_job *j, int numeric) {
  struct addrinfo hints, *res = NULL;
  char port[8];
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (j->passive ? AI_PASSIVE : 0) |
                   (numeric ? AI_NUMERICHOST : 0);
  snprintf(port, sizeof port, "%d", j->port);
  j->gai = getaddrinfo(j->host[0] ? j->host : NULL, port, &hints, &res);
  if (j->gai == EAI_SYSTEM) j->sys_err = errno;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
    add_addr(j, ai->ai_addr, ai->ai_addrlen);
  if (res) freeaddrinfo(res);
  if (j->gai == 0 && j->n == 0) j->gai = EAI_NONAME;
}

static void dns_work(struct mp_op *op) {
  run_gai(op->u.work.arg, 0);
  op->result = 0;
}

/* Host names as RFC 1123 allows (letters, digits, '-', '_', dots): an
 * invalid name fails here, never reaching the resolver. */
static int valid_name(const char *h, size_t n) {
  size_t label = 0;
  if (n == 0 || n > MAX_NAME) return 0;
  if (strspn(h, "0123456789.") == n) return 0; /* a bad IPv4 literal */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)h[i];
    if (c == '.') {
      if (label == 0) return 0;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-' || c == '_') {
      if (++label > 63) return 0;
    } else {
      return 0;
    }
  }
  return 1;
}

static int dns_k(lua_State *L, struct mp_op *op) {
  struct dns_job *j = op->owned;
  if (op->result < 0) {
    int err = (int)op->result;
    mp_op_release(op);
    return lmp_fail(L, err, "resolve");
  }
  /* Released before pushing, which may run out of memory. */
  struct dns_job done = *j;
  mp_op_release(op);
  if (done.gai)
    return push_gai_fail(L, lua_tostring(L, 1), done.gai, done.sys_err);
  return push_list(L, &done);
}

/* core.net_addrs(host, port, passive): the address list, or nil, msg, code.
 * Literals and "*" answer at once; names go to the threadpool. */
static int l_addrs(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  size_t n;
  const char *host = luaL_checklstring(L, 1, &n);
  lua_Integer port = luaL_checkinteger(L, 2);
  int passive = lua_toboolean(L, 3);
  struct in6_addr a6;
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  lua_settop(L, 3);
  if (strlen(host) != n) { /* an embedded NUL must not truncate the name */
    lua_pushnil(L);
    lua_pushliteral(L, "resolve: invalid name (embedded zero byte)");
    lua_pushliteral(L, "EINVAL");
    return 3;
  }
  struct dns_job *j = mp_loop_calloc(S->loop, 1, sizeof *j);
  if (!j) return luaL_error(L, "not enough memory");
  j->port = (int)port;
  j->passive = passive;
  if (passive && (n == 0 || strcmp(host, "*") == 0)) {
    j->host[0] = '\0'; /* the wildcard: 0.0.0.0 and :: */
    run_gai(j, 1);
  } else if (n <= MAX_NAME && (inet_pton(AF_INET, host, &a6) == 1 ||
                               strchr(host, ':'))) {
    memcpy(j->host, host, n + 1);
    run_gai(j, 1); /* numeric only: never blocks */
  } else if (!valid_name(host, n)) {
    free(j);
    return push_gai_fail(L, host, EAI_NONAME, 0);
  } else {
    memcpy(j->host, host, n + 1);
    struct mp_op *op = mp_op_new(S->loop, NULL, NULL);
    if (!op) {
      free(j);
      return luaL_error(L, "not enough memory");
    }
    op->owned = j; /* plain memory: freed with the op, even orphaned */
    mp_op_prep_work(op, dns_work, j);
    return lmp_await(L, op, dns_k, "resolve");
  }
  /* Freed before pushing, which may run out of memory. */
  struct dns_job done = *j;
  free(j);
  return done.gai ? push_gai_fail(L, host, done.gai, done.sys_err)
                  : push_list(L, &done);
}

/* core.net_unix_addr(path): a packed sockaddr_un, or nil, msg, code. */
static int l_unix_addr(lua_State *L) {
  size_t n;
  const char *path = luaL_checklstring(L, 1, &n);
  struct sockaddr_un un;
  memset(&un, 0, sizeof un);
  if (n == 0 || strlen(path) != n) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: invalid socket path", path);
    lua_pushliteral(L, "EINVAL");
    return 3;
  }
  if (n >= sizeof un.sun_path) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, mp_strerror(MP_ENAMETOOLONG));
    lua_pushliteral(L, "ENAMETOOLONG");
    return 3;
  }
  un.sun_family = AF_UNIX;
  memcpy(un.sun_path, path, n);
  lua_pushlstring(L, (const char *)&un,
                  offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 1;
}

void lmp_open_dns(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg funcs[] = {
    {"net_addrs", l_addrs}, {"net_unix_addr", l_unix_addr}, {NULL, NULL}};
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
