/* net.c: libFuzzer target for what parses untrusted strings and values
 * in mp.net: host literals and names (ldns.c net_addrs), Unix socket paths
 * (net_unix_addr), packed addresses (lsock_check_addr, lsock_format_addr),
 * the argument checks of net.lua (ports, options), and setoption /
 * settimeout names and values on real sockets (lsock.c).
 *
 * Nothing reaches the network: this program defines socket(2), which
 * refuses every new socket once fuzzing starts (so connect, listen and
 * udp fail with EACCES after parsing), and getaddrinfo(3), which passes
 * numeric lookups to the C library and answers every name with 127.0.0.1
 * after checking that the name is one the resolver may see (RFC 1123
 * letters, digits, '-', '_', dots; no empty label; not a bad IPv4
 * literal). The sockets setoption works on are made before that.
 *
 * Checks: every call returns or raises "bad argument" as documented, never
 * anything else; addresses come back well formed (family, length, the
 * port asked for, a printable address); an IPv4 literal resolves to
 * itself; a name with a zero byte is refused; a packed Unix address holds
 * the path and its NUL. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz.h"
#include "lsock.h"

/* ---- no network ---- */

static volatile int refuse_sockets;

int socket(int domain, int type, int protocol) {
  static int (*real)(int, int, int);
  if (refuse_sockets) {
    errno = EACCES;
    return -1;
  }
  if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
  return real(domain, type, protocol);
}

/* A name the resolver may see (ldns.c's rule, restated). */
static int resolvable(const char *h) {
  size_t n = strlen(h), label = 0;
  if (n == 0 || n > 253 || strspn(h, "0123456789.") == n) return 0;
  for (size_t i = 0; i < n; i++) {
    if (h[i] == '.') {
      if (label == 0) return 0;
      label = 0;
    } else if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "0123456789-_", h[i]) ||
               ++label > 63) {
      return 0;
    }
  }
  return 1;
}

typedef int gai_fn(const char *, const char *, const struct addrinfo *,
                   struct addrinfo **);

int getaddrinfo(const char *host, const char *serv,
                const struct addrinfo *hints, struct addrinfo **res) {
  static gai_fn *real;
  struct addrinfo h;
  if (!real) real = (gai_fn *)dlsym(RTLD_NEXT, "getaddrinfo");
  if (!host || (hints && (hints->ai_flags & AI_NUMERICHOST)))
    return real(host, serv, hints, res);
  FUZZ_CHECK(resolvable(host), "the resolver was asked for \"%s\"", host);
  memset(&h, 0, sizeof h);
  if (hints) h = *hints;
  h.ai_flags |= AI_NUMERICHOST;
  return real("127.0.0.1", serv, &h, res);
}

/* ---- values from the input ---- */

static const char *const words[] = {
  "127.0.0.1", "::1", "*", "", "localhost", "0.0.0.0", "::", "[::1]",
  "1.2.3.4.5", "0x7f.1", "256.1.1.1", "fe80::1%lo", "a..b", "-", "_x",
  "example.com.", "80", "65535", "65536", "0", "-1", "1e3",
  "nodelay", "keepalive", "linger", "reuseaddr", "reuseport", "sndbuf",
  "rcvbuf", "broadcast", "timeout", "backlog", "/tmp/x.sock", "\x00"};

static void push_string(lua_State *L, struct fz *z) {
  unsigned b = fz_byte(z);
  if (b < 0x80) {
    lua_pushstring(L, words[b % (sizeof words / sizeof *words)]);
    return;
  }
  size_t n = b & 0x40 ? fz_byte(z) + 200 : fz_byte(z) % 64;
  if (n > z->n) n = z->n;
  lua_pushlstring(L, (const char *)z->p, n);
  z->p += n;
  z->n -= n;
}

static void push_number(lua_State *L, struct fz *z) {
  static const double floats[] = {0.0, -0.0, 1.5, -1.0, 65535.0, 1e300,
                                  1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0, 4.6e9,
                                  0.001, 9.2e18};
  unsigned b = fz_byte(z);
  switch (b % 4) {
    case 0: lua_pushinteger(L, (lua_Integer)fz_bytes(z, 2) - 1); break;
    case 1: lua_pushinteger(L, (lua_Integer)fz_bytes(z, 8)); break;
    case 2: lua_pushnumber(L, floats[fz_byte(z) % 12]); break;
    default: lua_pushinteger(L, (lua_Integer)fz_byte(z) - 128);
  }
}

/* Any argument: mostly strings and numbers, sometimes other types or an
 * options table. */
static void push_arg(lua_State *L, struct fz *z, int depth) {
  static const char *const keys[] = {"timeout", "backlog", "reuseaddr",
                                     "reuseport", "tls", "x"};
  unsigned b = fz_byte(z);
  switch (b % 8) {
    case 0: case 1: case 2: push_string(L, z); break;
    case 3: case 4: push_number(L, z); break;
    case 5: lua_pushboolean(L, b & 8); break;
    case 6:
      if (depth == 0) {
        int n = (int)fz_byte(z) % 4;
        lua_newtable(L);
        for (int i = 0; i < n; i++) {
          push_arg(L, z, 1);
          lua_setfield(L, -2, keys[fz_byte(z) % 6]);
        }
        break;
      }
      /* fall through */
    default: lua_pushnil(L);
  }
}

/* ---- checks ---- */

/* Results at [base, top]: nil, message, code (returns 1), or raised "bad
 * argument" (status != LUA_OK, returns 0); anything else fails. */
static int failed_well(lua_State *L, int status, int base, const char *f) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    FUZZ_CHECK(msg && strstr(msg, "bad argument"), "%s raised: %s", f,
               msg ? msg : "(not a string)");
    return 0;
  }
  FUZZ_CHECK(lua_gettop(L) == base + 2 && lua_isnil(L, base) &&
             lua_type(L, base + 1) == LUA_TSTRING &&
             lua_type(L, base + 2) == LUA_TSTRING,
             "%s: expected nil, msg, code (%d results)", f,
             lua_gettop(L) - base + 1);
  return 1;
}

/* One entry of an address list: { sa, family, addr } well formed. */
static void check_entry(lua_State *L, int t, lua_Integer port) {
  size_t n;
  lua_getfield(L, t, "sa");
  lua_getfield(L, t, "family");
  lua_getfield(L, t, "addr");
  const char *sa = lua_tolstring(L, -3, &n);
  const char *fam = lua_tostring(L, -2), *addr = lua_tostring(L, -1);
  FUZZ_CHECK(sa && fam && addr, "address entry fields");
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
  char buf[sizeof in6];
  if (strcmp(fam, "inet") == 0) {
    FUZZ_CHECK(n == sizeof in, "inet sa of %zu bytes", n);
    memcpy(&in, sa, sizeof in);
    FUZZ_CHECK(in.sin_family == AF_INET && ntohs(in.sin_port) == port &&
               inet_pton(AF_INET, addr, buf) == 1, "inet entry %s", addr);
  } else {
    FUZZ_CHECK(strcmp(fam, "inet6") == 0 && n == sizeof in6,
               "family %s, sa of %zu bytes", fam, n);
    memcpy(&in6, sa, sizeof in6);
    FUZZ_CHECK(in6.sin6_family == AF_INET6 &&
               ntohs(in6.sin6_port) == port &&
               inet_pton(AF_INET6, addr, buf) == 1, "inet6 entry %s", addr);
  }
  lua_pop(L, 3);
}

static lua_State *L;
static int core, stream, udp, netmod; /* stack slots made at init */

/* core.net_addrs(host, port, passive) */
static void fuzz_addrs(struct fz *z) {
  int base = lua_gettop(L) + 1;
  size_t n;
  struct in_addr a4;
  lua_getfield(L, core, "net_addrs");
  push_string(L, z);
  const char *host = lua_tolstring(L, -1, &n);
  lua_Integer port = (lua_Integer)fz_bytes(z, 2);
  int passive = fz_byte(z) & 1;
  int literal = inet_pton(AF_INET, host, &a4) == 1 && strlen(host) == n;
  int nul = strlen(host) != n;
  lua_pushinteger(L, port);
  lua_pushboolean(L, passive);
  int st = lua_pcall(L, 3, LUA_MULTRET, 0);
  FUZZ_CHECK(st == LUA_OK, "net_addrs raised: %s", lua_tostring(L, -1));
  if (lua_istable(L, base)) {
    lua_Integer k = luaL_len(L, base);
    FUZZ_CHECK(!nul, "a name with a zero byte resolved");
    FUZZ_CHECK(k >= 1 && k <= 16, "%d addresses", (int)k);
    for (lua_Integer i = 1; i <= k; i++) {
      lua_rawgeti(L, base, i);
      check_entry(L, lua_gettop(L), port);
      if (literal && i == 1) {
        lua_getfield(L, -1, "addr");
        char want[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a4, want, sizeof want);
        FUZZ_CHECK(k == 1 && strcmp(lua_tostring(L, -1), want) == 0,
                   "literal %s resolved to %s", host, lua_tostring(L, -1));
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  } else {
    failed_well(L, st, base, "net_addrs");
    FUZZ_CHECK(!literal, "the literal %s did not resolve", host);
    if (nul)
      FUZZ_CHECK(strcmp(lua_tostring(L, base + 2), "EINVAL") == 0,
                 "a zero byte in a name: %s", lua_tostring(L, base + 2));
  }
  lua_settop(L, base - 1);
}

/* core.net_unix_addr(path) */
static void fuzz_unix_addr(struct fz *z) {
  int base = lua_gettop(L) + 1;
  size_t n, m;
  struct sockaddr_un un;
  lua_getfield(L, core, "net_unix_addr");
  push_string(L, z);
  const char *path = lua_tolstring(L, -1, &n);
  char *copy = malloc(n + 1);
  memcpy(copy, path, n + 1);
  int st = lua_pcall(L, 1, LUA_MULTRET, 0);
  const char *sa = lua_tolstring(L, base, &m);
  if (st == LUA_OK && sa) {
    size_t off = offsetof(struct sockaddr_un, sun_path);
    FUZZ_CHECK(n > 0 && strlen(copy) == n && n < sizeof un.sun_path &&
               m == off + n + 1, "unix address of %zu bytes for %zu", m, n);
    memcpy(&un, sa, m);
    FUZZ_CHECK(un.sun_family == AF_UNIX &&
               memcmp(un.sun_path, copy, n + 1) == 0, "unix address path");
  } else {
    failed_well(L, st, base, "net_unix_addr");
    FUZZ_CHECK(n == 0 || strlen(copy) != n || n >= sizeof un.sun_path,
               "path of %zu bytes refused: %s", n,
               lua_tostring(L, base + 1));
  }
  free(copy);
  lua_settop(L, base - 1);
}

/* A packed address: random bytes, or a real one from net_addrs /
 * net_unix_addr, maybe cut or extended. */
static void push_packed(struct fz *z) {
  unsigned b = fz_byte(z);
  if (b % 3 == 0) {
    push_string(L, z);
    return;
  }
  if (b % 3 == 1) {
    lua_getfield(L, core, "net_addrs");
    lua_pushstring(L, b & 4 ? "::1" : "127.0.0.1");
    lua_pushinteger(L, (lua_Integer)fz_bytes(z, 2));
    lua_call(L, 2, 1);
    lua_rawgeti(L, -1, 1);
    lua_getfield(L, -1, "sa");
    lua_replace(L, -3);
    lua_pop(L, 1);
  } else {
    lua_getfield(L, core, "net_unix_addr");
    push_string(L, z);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "\x01");
    }
  }
  if (b & 8) { /* cut or extend by a few bytes */
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    int d = (int)(fz_byte(z) % 9) - 4;
    luaL_Buffer B;
    luaL_buffinit(L, &B);
    luaL_addlstring(&B, s, d < 0 && (size_t)-d > n ? 0 : n + (d < 0 ? d : 0));
    for (int i = 0; i < d; i++) luaL_addchar(&B, (char)fz_byte(z));
    luaL_pushresult(&B);
    lua_remove(L, -2);
  }
}

/* core.net_connect / net_listen / net_udp over a packed address: parsing
 * and formatting, then the refused socket. */
static void fuzz_packed(struct fz *z) {
  static const char *const fns[] = {"net_connect", "net_listen", "net_udp"};
  int base = lua_gettop(L) + 1, nargs = 1;
  unsigned which = fz_byte(z) % 3;
  lua_getfield(L, core, fns[which]);
  push_packed(z);
  if (which == 0) {
    push_number(L, z);
    nargs = 2;
  } else if (which == 1) {
    push_arg(L, z, 1);
    lua_pushboolean(L, fz_byte(z) & 1);
    lua_pushboolean(L, fz_byte(z) & 1);
    nargs = 4;
  }
  int st = lua_pcall(L, nargs, LUA_MULTRET, 0);
  if (failed_well(L, st, base, fns[which]))
    FUZZ_CHECK(strcmp(lua_tostring(L, base + 2), "EACCES") == 0,
               "%s: %s (%s)", fns[which], lua_tostring(L, base + 1),
               lua_tostring(L, base + 2));
  lua_settop(L, base - 1);
}

/* The public functions, any arguments. */
static void fuzz_public(struct fz *z) {
  static const char *const fns[] = {"connect", "listen", "resolve", "udp",
                                    "connect_unix", "listen_unix"};
  int base = lua_gettop(L) + 1;
  unsigned which = fz_byte(z) % 6;
  int nargs = (int)fz_byte(z) % 4;
  lua_getfield(L, netmod, fns[which]);
  for (int i = 0; i < nargs; i++) push_arg(L, z, 0);
  int st = lua_pcall(L, nargs, LUA_MULTRET, 0);
  if (st == LUA_OK && which == 2 && lua_istable(L, base)) {
    lua_settop(L, base - 1);
    return;
  }
  if (st == LUA_OK && which == 3 && lua_gettop(L) >= base &&
      lua_isuserdata(L, base)) { /* mp.net.udp(): no address, no socket */
    FUZZ_CHECK(0, "udp made a socket");
  }
  failed_well(L, st, base, fns[which]);
  lua_settop(L, base - 1);
}

/* setoption / settimeout on a real stream (a socketpair end) or UDP
 * socket. */
static void fuzz_options(struct fz *z) {
  int base = lua_gettop(L) + 1, sock = fz_byte(z) & 1 ? stream : udp;
  int timeout = fz_byte(z) % 4 == 0;
  lua_getfield(L, sock, timeout ? "settimeout" : "setoption");
  lua_pushvalue(L, sock);
  if (!timeout) push_arg(L, z, 1);
  push_arg(L, z, 1);
  int st = lua_pcall(L, timeout ? 2 : 3, LUA_MULTRET, 0);
  if (st == LUA_OK && lua_gettop(L) == base &&
      (lua_rawequal(L, base, sock) || lua_toboolean(L, base))) {
    lua_settop(L, base - 1);
    return;
  }
  failed_well(L, st, base, timeout ? "settimeout" : "setoption");
  lua_settop(L, base - 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  int sv[2];
  (void)argc;
  (void)argv;
  L = fuzz_state();
  /* the core table: the second upvalue of net.lua's loader */
  luaL_dostring(L, "return select(2, debug.getupvalue("
                   "package.preload['moonport.net'], 2)), mp.net");
  FUZZ_CHECK(lua_istable(L, -2) && lua_istable(L, -1), "core, mp.net");
  core = lua_gettop(L) - 1;
  netmod = core + 1;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                 sv) < 0)
    abort();
  close(sv[1]);
  lsock_push(L, lmp_getstate(L), LSOCK_STREAM, sv[0], AF_UNIX);
  stream = lua_gettop(L);
  luaL_dostring(L, "return mp.net.udp()");
  FUZZ_CHECK(lua_isuserdata(L, -1), "udp socket");
  udp = lua_gettop(L);
  refuse_sockets = 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  struct fz z = {in, size};
  int top = lua_gettop(L);
  for (int i = 0; i < 8 && z.n > 0; i++) {
    switch (fz_byte(&z) % 5) {
      case 0: fuzz_addrs(&z); break;
      case 1: fuzz_unix_addr(&z); break;
      case 2: fuzz_packed(&z); break;
      case 3: fuzz_public(&z); break;
      default: fuzz_options(&z);
    }
    FUZZ_CHECK(lua_gettop(L) == top, "stack");
  }
  FUZZ_CHECK(moonport_run(L, MP_RUN_DEFAULT) == 0, "tasks left");
  /* what is left (mp.timeout's cancelled timer, a lookup abandoned on the
   * pool) completes: a hang here is a timeout the fuzzer reports */
  mp_loop_run(moonport_loop(L), MP_RUN_DEFAULT);
  return 0;
}
