/* fuzz.h: shared by the libFuzzer targets in tests/fuzz (see
 * docs/reliability.md): a reader of structure from the fuzzer's bytes, a
 * Lua state with moonport open, and the abort that reports a mismatch. */
#ifndef FUZZ_H
#define FUZZ_H

#include <lauxlib.h>
#include <lualib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "moonport.h"

/* The input, consumed from the front; zeros once it runs out. */
struct fz {
  const uint8_t *p;
  size_t n;
};

static inline unsigned fz_byte(struct fz *z) {
  if (!z->n) return 0;
  z->n--;
  return *z->p++;
}

static inline uint64_t fz_bytes(struct fz *z, int k) {
  uint64_t v = 0;
  for (int i = 0; i < k; i++) v = v << 8 | fz_byte(z);
  return v;
}

/* A mismatch: libFuzzer saves the input that led here. */
#define FUZZ_CHECK(cond, ...)                                        \
  do {                                                               \
    if (!(cond)) {                                                   \
      fprintf(stderr, "fuzz check failed: %s (%s:%d)\n  ", #cond,    \
              __FILE__, __LINE__);                                   \
      fprintf(stderr, __VA_ARGS__);                                  \
      fputc('\n', stderr);                                           \
      abort();                                                       \
    }                                                                \
  } while (0)

/* A state with the standard libraries and moonport (the module left in
 * the global "mp"), made once per process: inputs share it. */
static inline lua_State *fuzz_state(void) {
  lua_State *L = luaL_newstate();
  if (!L) abort();
  luaL_openlibs(L);
  moonport_open(L, NULL);
  lua_setglobal(L, "mp");
  return L;
}

/* Runs a chunk that returns a function; leaves that function in the
 * registry and returns its reference. */
static inline int fuzz_chunk(lua_State *L, const char *src) {
  if (luaL_dostring(L, src) != LUA_OK) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

#endif
