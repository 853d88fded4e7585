/* work.c: libFuzzer target for mp.work's value encoding (bindings/lwork.c).
 *
 * The input builds Lua values: nil, booleans, integers and floats from raw
 * bits (NaN, -0.0, infinities), strings of any bytes, tables nested to any
 * depth with string, number and boolean keys, and now and then something
 * mp.work must refuse (a function, a table key, a cycle, nesting deeper
 * than it allows). Each value is encoded: a refusable value must be
 * refused with a message, any other must decode to a deep-equal copy
 * (same subtypes, same float bits) that spans exactly its encoding. One
 * input in four also sends the values through mp.work to a worker thread
 * and back (an identity function), which must return the same values or
 * refuse the same ones with "bad argument".
 *
 * The decoder is not fed raw bytes: it only ever reads bytes its own
 * encoder wrote in the same process (arguments to the worker, results
 * back), never input from outside, so it trusts them; what is reachable
 * is every encoding, which this target covers. */
#include <string.h>

#include "fuzz.h"
#include "lmoonport.h"

enum { MAX_DEPTH = 64, BUDGET = 2000 };

struct gen {
  struct fz z;
  int budget; /* values left to build: bounds the work per input */
};

static void build(lua_State *L, struct gen *g);

static lua_Number take_float(struct fz *z) {
  uint64_t bits = fz_bytes(z, 8);
  lua_Number d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

/* A table key: string, integer, float (NaN is no key), boolean; rarely a
 * table (refused). */
static void build_key(lua_State *L, struct gen *g) {
  unsigned b = fz_byte(&g->z);
  switch (b % 6) {
    case 0: case 1: {
      size_t n = fz_byte(&g->z) % 24;
      if (n > g->z.n) n = g->z.n;
      lua_pushlstring(L, (const char *)g->z.p, n);
      g->z.p += n;
      g->z.n -= n;
      break;
    }
    case 2: lua_pushinteger(L, (lua_Integer)fz_byte(&g->z) - 8); break;
    case 3: {
      lua_Number d = take_float(&g->z);
      lua_pushnumber(L, d != d ? 0.5 : d);
      break;
    }
    case 4: lua_pushboolean(L, b & 8); break;
    default:
      if (b == 0xFF) {
        lua_newtable(L); /* refused */
      } else {
        lua_pushinteger(L, (lua_Integer)fz_bytes(&g->z, 8));
      }
  }
}

/* Pushes one value. */
static void build(lua_State *L, struct gen *g) {
  unsigned b = fz_byte(&g->z);
  luaL_checkstack(L, 8, "build");
  if (--g->budget < 0) b = 1; /* out of budget: a boolean */
  switch (b % 16) {
    case 0: lua_pushnil(L); break;
    case 1: lua_pushboolean(L, b & 16); break;
    case 2: lua_pushinteger(L, (lua_Integer)fz_bytes(&g->z, 8)); break;
    case 3: lua_pushinteger(L, (lua_Integer)fz_byte(&g->z) - 128); break;
    case 4: lua_pushnumber(L, take_float(&g->z)); break;
    case 5: lua_pushnumber(L, (lua_Number)((int)fz_byte(&g->z) - 128) / 4);
      break;
    case 6: case 7: {
      size_t n = fz_byte(&g->z);
      if (b & 0x80) n = n * 256 + fz_byte(&g->z);
      if (n > g->z.n) n = g->z.n;
      lua_pushlstring(L, (const char *)g->z.p, n);
      g->z.p += n;
      g->z.n -= n;
      break;
    }
    case 8: { /* a chain of nested tables: {{{...}}} */
      int n = (int)fz_byte(&g->z) % 80;
      lua_pushinteger(L, n);
      for (int i = 0; i < n; i++) {
        lua_createtable(L, 1, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
      }
      break;
    }
    case 9:
      if (b == 0xF9) { /* a function: refused */
        lua_pushcfunction(L, luaopen_base);
        break;
      }
      /* fall through */
    default: { /* a table of n entries */
      int n = (int)fz_byte(&g->z) % 9;
      lua_newtable(L);
      for (int i = 0; i < n; i++) {
        build_key(L, g);
        if ((fz_byte(&g->z) & 0x3F) == 0x3F) {
          lua_pushvalue(L, -2); /* the table itself: a cycle */
        } else {
          build(L, g);
        }
        if (lua_isnil(L, -1)) lua_pop(L, 2); /* no such entry */
        else lua_rawset(L, -3);
      }
    }
  }
}

/* Whether mp.work must refuse the value at idx (nesting counted from 1):
 * the documented rule, checked independently of the encoder. */
static int refusable(lua_State *L, int idx, int level) {
  int t = lua_type(L, idx);
  if (t != LUA_TTABLE)
    return t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER &&
           t != LUA_TSTRING;
  if (level > MAX_DEPTH) return 1;
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 4, "refusable");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int kt = lua_type(L, -2);
    if ((kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) ||
        refusable(L, -1, level + 1)) {
      lua_pop(L, 2);
      return 1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* Deep equality: same types, number subtypes and float bits, same keys. */
static int deq(lua_State *L, int a, int b) {
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (lua_type(L, a) != lua_type(L, b)) return 0;
  switch (lua_type(L, a)) {
    case LUA_TNIL: return 1;
    case LUA_TBOOLEAN: return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TNUMBER:
      if (lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
      if (lua_isinteger(L, a))
        return lua_tointeger(L, a) == lua_tointeger(L, b);
      {
        lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
        return memcmp(&x, &y, sizeof x) == 0;
      }
    case LUA_TSTRING: {
      size_t la, lb;
      const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
      return la == lb && memcmp(sa, sb, la) == 0;
    }
    case LUA_TTABLE: {
      int na = 0, nb = 0, ok = 1;
      luaL_checkstack(L, 6, "deq");
      lua_pushnil(L);
      while (ok && lua_next(L, a)) {
        na++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        ok = deq(L, -2, -1);
        lua_pop(L, 2);
      }
      if (!ok) {
        lua_pop(L, 1); /* the key lua_next left */
        return 0;
      }
      lua_pushnil(L);
      while (lua_next(L, b)) {
        nb++;
        lua_pop(L, 1);
      }
      return na == nb;
    }
    default:
      return lua_rawequal(L, a, b);
  }
}

static lua_State *L;
static int through_work; /* registry ref */

static const char work_src[] =
  "return function(...)\n"
  "  return table.pack(pcall(mp.work, function(...) return ... end, ...))\n"
  "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  L = fuzz_state();
  through_work = fuzz_chunk(L, work_src);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  struct gen g = {{in, size}, BUDGET};
  unsigned flags = fz_byte(&g.z);
  int nvals = 1 + (int)(flags % 4), top = lua_gettop(L), anybad = 0;
  for (int i = 0; i < nvals; i++) {
    build(L, &g);
    int v = lua_gettop(L);
    int refused = refusable(L, v, 1);
    anybad |= refused;
    const char *e = lmp_work_encode(L, v);
    if (e) {
      FUZZ_CHECK(refused, "value %d refused: %s", i, e);
      continue;
    }
    FUZZ_CHECK(!refused, "value %d was encoded, yet it holds a function, a "
               "table key, a cycle or nesting deeper than %d", i, MAX_DEPTH);
    size_t n;
    const char *p = lua_tolstring(L, -1, &n);
    const char *end = lmp_work_decode(L, p);
    FUZZ_CHECK(end == p + n, "value %d: decoding read %td of %zu bytes", i,
               end - p, n);
    FUZZ_CHECK(deq(L, v, -1), "value %d: the copy differs", i);
    lua_settop(L, v);
  }
  if (flags & 0x30) {
    lua_settop(L, top);
    return 0;
  }
  /* the same values to a worker and back */
  lua_rawgeti(L, LUA_REGISTRYINDEX, through_work);
  lua_insert(L, top + 1);
  lua_call(L, nvals, 1);
  int res = lua_gettop(L);
  lua_rawgeti(L, res, 1);
  int ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!ok) {
    lua_rawgeti(L, res, 2);
    const char *msg = lua_tostring(L, -1);
    FUZZ_CHECK(anybad && msg && strstr(msg, "bad argument"),
               "mp.work failed: %s", msg ? msg : "(not a string)");
  } else {
    FUZZ_CHECK(!anybad, "mp.work accepted a value it must refuse");
    /* rebuild the arguments to compare: the generator is deterministic */
    struct gen g2 = {{in + 1, size ? size - 1 : 0}, BUDGET};
    lua_getfield(L, res, "n");
    FUZZ_CHECK(lua_tointeger(L, -1) == 1 + nvals, "mp.work: %d results",
               (int)lua_tointeger(L, -1) - 1);
    lua_pop(L, 1);
    for (int i = 0; i < nvals; i++) {
      build(L, &g2);
      lua_rawgeti(L, res, 2 + i);
      FUZZ_CHECK(deq(L, -2, -1), "mp.work: result %d differs", i + 1);
      lua_pop(L, 2);
    }
  }
  lua_settop(L, top);
  FUZZ_CHECK(mp_loop_inflight(moonport_loop(L)) == 0, "ops in flight");
  return 0;
}
