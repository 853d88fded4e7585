/* fail.c: lmp_fail (bindings/lcore.c), the one place the bindings build
 * an IO failure: nil, "what: message" (or the message alone), and the
 * code's name, for every MP_E* code, the resolver's MP_EAI_* included. */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lcore.h"

static int failures;

#define CHECK(cond, ...)                      \
  do {                                        \
    if (!(cond)) {                            \
      fprintf(stderr, "FAIL: " __VA_ARGS__);  \
      fputc('\n', stderr);                    \
      failures++;                             \
    }                                         \
  } while (0)

static void check(lua_State *L, int err, const char *what) {
  char msg[512];
  const char *name = err == MP_ECANCELED ? "cancelled" : mp_errname(err);
  int top = lua_gettop(L);
  if (what) snprintf(msg, sizeof msg, "%s: %s", what, mp_strerror(err));
  else snprintf(msg, sizeof msg, "%s", mp_strerror(err));
  CHECK(lmp_fail(L, err, what) == 3, "%d returns 3", err);
  CHECK(lua_gettop(L) == top + 3, "%d pushes 3 values", err);
  CHECK(lua_isnil(L, -3), "%d: nil first", err);
  CHECK(lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2),
        msg) == 0, "%d: message '%s', want '%s'", err,
        lua_tostring(L, -2), msg);
  CHECK(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1),
        name) == 0, "%d: code '%s', want '%s'", err, lua_tostring(L, -1),
        name);
  CHECK(strcmp(name, "UNKNOWN") != 0 || err == MP_EUNKNOWN,
        "%d has no name", err);
  lua_settop(L, top);
}

int main(void) {
  static const int codes[] = {
#define MP__CODE(name, num) MP_##name,
    MP_ERRNO_MAP(MP__CODE) MP_EAI_MAP(MP__CODE)
#undef MP__CODE
    MP_EUNKNOWN, MP_EOF, MP_ECLOSED};
  lua_State *L = luaL_newstate();
  for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
    check(L, codes[i], NULL);
    check(L, codes[i], "open /tmp/x");
  }
  /* The resolver's codes read as getaddrinfo's own messages. */
  lmp_fail(L, MP_EAI_NONAME, "connect example.invalid");
  CHECK(strcmp(lua_tostring(L, -1), "EAI_NONAME") == 0, "EAI_NONAME name");
  CHECK(strstr(lua_tostring(L, -2), "connect example.invalid: ") ==
        lua_tostring(L, -2), "EAI message prefix");
  lua_close(L);
  if (failures) return 1;
  puts("ok - lmp_fail for every code");
  return 0;
}
