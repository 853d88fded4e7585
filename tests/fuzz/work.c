/* work.c: libFuzzer target for mp.work's value encoding (bindings/lwork.c).
 *
 * The input builds Lua values: nil, booleans, integers and floats from raw
 * bits (NaN, -0.0, infinities), strings of any bytes, tables with string,
 * number and boolean keys, nested to any depth (chains of up to 2140),
 * sharing tables and strings within and across values (any table or long
 * string built earlier in the input, `t = {t, t}` doubled up to 70 times)
 * and cyclic (a table holding itself or an ancestor), and now and then
 * something mp.work must refuse (a function, a table key). The values are
 * encoded as one message: a refusable one must be refused with a message
 * naming the first value that holds something refusable; any other must
 * decode to an isomorphic copy (same subtypes, same float bits, and the
 * same sharing: a bijection between the tables of the input and those of
 * the copy, all new) that spans exactly its encoding, whose size is
 * linear (each table and long string written once). One input in four
 * also sends the values through mp.work to a worker thread and back (an
 * identity function): the same values, sharing kept across both hops, or
 * the same refusal with "bad argument".
 *
 * The decoder is not fed raw bytes: it only ever reads bytes its own
 * encoder wrote in the same process (arguments to the worker, results
 * back), never input from outside, so it trusts them; what is reachable
 * is every encoding, which this target covers. */
#include <string.h>

#include "fuzz.h"
#include "lwork.h"

enum { BUDGET = 2000, REF_MIN = 32 /* as lwork.c */ };

struct gen {
  struct fz z;
  int budget; /* values left to build: bounds the work per input */
  int pool;   /* stack index of the tables and long strings built so far */
  lua_Integer npool;
};

static void build(lua_State *L, struct gen *g);

static lua_Number take_float(struct fz *z) {
  uint64_t bits = fz_bytes(z, 8);
  lua_Number d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

/* Adds the value on top to the pool, leaving it there. */
static void pool_add(lua_State *L, struct gen *g) {
  lua_pushvalue(L, -1);
  lua_rawseti(L, g->pool, ++g->npool);
}

/* A table key: string, integer, float (NaN is no key), boolean; rarely a
 * table (refused). */
static void build_key(lua_State *L, struct gen *g) {
  unsigned b = fz_byte(&g->z);
  switch (b % 6) {
    case 0: case 1: {
      size_t n = fz_byte(&g->z) % (b & 0x80 ? 64 : 24);
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
      if (n >= REF_MIN) pool_add(L, g);
      break;
    }
    case 8: { /* a chain of nested tables: {{{...}}}, rarely very deep */
      int n = (int)fz_byte(&g->z) % 80;
      if (b == 0xF8 && g->budget > BUDGET / 2) { /* once per input */
        n = 100 + (int)fz_byte(&g->z) * 8;
        g->budget = BUDGET / 2;
      }
      lua_pushinteger(L, n);
      for (int i = 0; i < n; i++) {
        lua_createtable(L, 1, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
      }
      if (n) pool_add(L, g);
      break;
    }
    case 9:
      if (b == 0xF9) { /* a function: refused */
        lua_pushcfunction(L, luaopen_base);
        break;
      }
      goto table;
    case 10: case 11: /* something built before: shared, or a cycle */
      if (!g->npool) goto table;
      lua_rawgeti(L, g->pool, 1 + (lua_Integer)fz_bytes(&g->z, 2) % g->npool);
      break;
    case 12: { /* t = {t, t}, n times: 2^n paths to n + 1 tables */
      int n = (int)fz_byte(&g->z) % 70;
      lua_newtable(L);
      for (int i = 0; i < n; i++) {
        lua_createtable(L, 2, 0);
        lua_pushvalue(L, -2);
        lua_rawseti(L, -2, 1);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 2);
      }
      pool_add(L, g);
      break;
    }
    default:
    table: { /* a table of n entries */
      int n = (int)fz_byte(&g->z) % 9;
      lua_newtable(L);
      pool_add(L, g); /* its entries may refer back to it */
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

/* The independent walk: the documented rule and the encoding's size.
 * Visits the n values from first, breadth first, each table and long
 * string once (seen); returns the first value (from 1) from which a
 * function, userdata or table key is reachable that no earlier one
 * reached, or 0, and sets *bound to the most bytes the message may take
 * if each table and long string is written once. */
struct walk {
  int seen, queue;
  lua_Integer nq, bound;
};

static int walk_value(lua_State *L, int idx, struct walk *w) {
  size_t len = 0;
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL: case LUA_TBOOLEAN: w->bound += 1; return 1;
    case LUA_TNUMBER: w->bound += 9; return 1;
    case LUA_TSTRING:
      lua_tolstring(L, idx, &len);
      w->bound += 9;
      if (len < REF_MIN) {
        w->bound += (lua_Integer)len;
        return 1;
      }
      break;
    case LUA_TTABLE: w->bound += 9; break;
    default: return 0;
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, w->seen) != LUA_TNIL) {
    lua_pop(L, 1);
    return 1;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, w->seen);
  if (lua_type(L, idx) == LUA_TSTRING) {
    w->bound += (lua_Integer)len;
    return 1;
  }
  w->bound += 1; /* 'E' */
  lua_pushvalue(L, idx);
  lua_rawseti(L, w->queue, ++w->nq);
  return 1;
}

static int walk(lua_State *L, int first, int n, lua_Integer *bound) {
  struct walk w = {0, 0, 0, 0};
  lua_Integer done = 0;
  int bad = 0, base = lua_gettop(L);
  luaL_checkstack(L, 8, "walk");
  lua_newtable(L);
  w.seen = lua_gettop(L);
  lua_newtable(L);
  w.queue = lua_gettop(L);
  for (int i = 0; i < n && !bad; i++) {
    if (!walk_value(L, first + i, &w)) bad = i + 1;
    while (!bad && done < w.nq) {
      lua_rawgeti(L, w.queue, ++done);
      int t = lua_gettop(L);
      lua_pushnil(L);
      while (lua_next(L, t)) {
        int kt = lua_type(L, -2);
        if ((kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) ||
            !walk_value(L, -2, &w) || !walk_value(L, -1, &w)) {
          bad = i + 1;
          break;
        }
        lua_pop(L, 1);
      }
      lua_settop(L, w.queue);
    }
  }
  lua_settop(L, base);
  *bound = w.bound;
  return bad;
}

/* Isomorphism of the n values from a and from b: same types, number
 * subtypes and float bits, same strings, same keys, and a bijection
 * between the tables reachable from each (ab, ba) that pairs each
 * original with a new table; checked breadth first (queue of pairs). */
struct iso {
  int ab, ba, queue;
  lua_Integer nq;
};

static int iso_value(lua_State *L, int a, int b, struct iso *s) {
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
      int ok;
      if (lua_rawequal(L, a, b)) return 0; /* not copied */
      lua_pushvalue(L, a);
      if (lua_rawget(L, s->ab) != LUA_TNIL) { /* a seen: paired with b? */
        ok = lua_rawequal(L, -1, b);
        lua_pop(L, 1);
        return ok;
      }
      lua_pushvalue(L, b);
      ok = lua_rawget(L, s->ba) == LUA_TNIL; /* b paired with another */
      lua_pop(L, 2);
      if (!ok) return 0;
      lua_pushvalue(L, a);
      lua_pushvalue(L, b);
      lua_rawset(L, s->ab);
      lua_pushvalue(L, b);
      lua_pushvalue(L, a);
      lua_rawset(L, s->ba);
      lua_pushvalue(L, a);
      lua_rawseti(L, s->queue, ++s->nq);
      lua_pushvalue(L, b);
      lua_rawseti(L, s->queue, ++s->nq);
      return 1;
    }
    default:
      return 0;
  }
}

static int iso(lua_State *L, int a, int b, int n) {
  struct iso s = {0, 0, 0, 0};
  lua_Integer done = 0;
  int ok = 1, base = lua_gettop(L);
  luaL_checkstack(L, 10, "iso");
  for (int i = 1; i <= 3; i++) lua_newtable(L);
  s.ab = base + 1, s.ba = base + 2, s.queue = base + 3;
  for (int i = 0; i < n && ok; i++) ok = iso_value(L, a + i, b + i, &s);
  while (ok && done < s.nq) {
    lua_rawgeti(L, s.queue, ++done);
    lua_rawgeti(L, s.queue, ++done);
    int ta = lua_gettop(L) - 1, tb = ta + 1;
    lua_Integer na = 0, nb = 0;
    lua_pushnil(L);
    while (ok && lua_next(L, ta)) {
      na++;
      lua_pushvalue(L, -2);
      lua_rawget(L, tb);
      ok = iso_value(L, -2, -1, &s);
      lua_pop(L, 2);
    }
    lua_settop(L, tb);
    lua_pushnil(L);
    while (ok && lua_next(L, tb)) {
      nb++;
      lua_pop(L, 1);
    }
    ok = ok && na == nb;
    lua_settop(L, s.queue);
  }
  lua_settop(L, base);
  return ok;
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
  int top = lua_gettop(L);
  lua_newtable(L);
  struct gen g = {{in, size}, BUDGET, top + 1, 0};
  unsigned flags = fz_byte(&g.z);
  int nvals = 1 + (int)(flags % 4), first = top + 2, bad, ebad;
  for (int i = 0; i < nvals; i++) build(L, &g);
  lua_Integer bound;
  bad = walk(L, first, nvals, &bound);
  const char *e = lmp_work_encode(L, first, nvals, &ebad);
  if (e) {
    FUZZ_CHECK(bad == ebad, "value %d refused (%s), yet the first to refuse "
               "is %d", ebad, e, bad);
  } else {
    FUZZ_CHECK(!bad, "value %d was encoded, yet it holds a function or a "
               "table key", bad);
    size_t n;
    const char *p = lua_tolstring(L, -1, &n);
    FUZZ_CHECK((lua_Integer)n <= bound, "the encoding takes %zu bytes, more "
               "than the %lld of one copy per table and long string", n,
               (long long)bound);
    const char *end = lmp_work_decode(L, p, nvals);
    FUZZ_CHECK(end == p + n, "decoding read %td of %zu bytes", end - p, n);
    FUZZ_CHECK(iso(L, first, first + nvals + 1, nvals), "the copy differs "
               "or shares differently");
  }
  lua_settop(L, first + nvals - 1);
  if (flags & 0x30) {
    lua_settop(L, top);
    return 0;
  }
  /* the same values to a worker and back */
  lua_rawgeti(L, LUA_REGISTRYINDEX, through_work);
  for (int i = 0; i < nvals; i++) lua_pushvalue(L, first + i);
  lua_call(L, nvals, 1);
  int res = lua_gettop(L);
  lua_rawgeti(L, res, 1);
  int ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!ok) {
    lua_rawgeti(L, res, 2);
    const char *msg = lua_tostring(L, -1);
    char want[32];
    snprintf(want, sizeof want, "bad argument #%d ", bad + 1);
    FUZZ_CHECK(bad && msg && strstr(msg, want), "mp.work failed: %s",
               msg ? msg : "(not a string)");
  } else {
    FUZZ_CHECK(!bad, "mp.work accepted a value it must refuse");
    lua_getfield(L, res, "n");
    FUZZ_CHECK(lua_tointeger(L, -1) == 1 + nvals, "mp.work: %d results",
               (int)lua_tointeger(L, -1) - 1);
    lua_pop(L, 1);
    for (int i = 0; i < nvals; i++) lua_rawgeti(L, res, 2 + i);
    FUZZ_CHECK(iso(L, first, res + 1, nvals), "mp.work: the results differ "
               "or share differently");
  }
  lua_settop(L, top);
  FUZZ_CHECK(mp_loop_inflight(moonport_loop(L)) == 0, "ops in flight");
  return 0;
}
