/* lwork.c: mp.work, a Lua function run on a threadpool thread.
 *
 * The function is string.dump'ed (so it may have no upvalues but _ENV) and
 * loaded into a fresh lua_State on the worker; arguments and results cross
 * as a private serialization of nil, booleans, numbers, strings and tables
 * of those, nested, shared and cyclic (luv refuses tables; users asked for
 * them). Only the worker touches its state; the loop thread sees bytes. */
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "lwork.h"

struct buf {
  char *p;
  size_t n, cap;
};

struct job {
  struct buf fn, args, res; /* res: results, or the error message */
  int nargs, nres, failed;
};

static int put(struct buf *b, const void *d, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
  return 0;
}

static void job_free(void *p) {
  struct job *j = p;
  free(j->fn.p);
  free(j->args.p);
  free(j->res.p);
  free(j);
}

/* The encoding. A message is n values, each followed by the entries of
 * the tables it reached first. A value is a tag byte and its payload.
 * Tables, and strings of REF_MIN bytes or more, are numbered from 1 in
 * order of first appearance: the first appearance is written ('T', or
 * 'S' with the bytes), later ones refer back to it ('R' and the number).
 * So a table reached twice is copied once and the copy is reached twice,
 * cycles included (as structured clone), and the message is linear in
 * the distinct tables, entries and long strings: `t = {t, t}` n times
 * over is n + 1 tables, not 2^n. A table's entries (key, value pairs,
 * then 'E') are written after the value that reached it, tables in
 * number order, breadth first: neither side recurses, whatever the
 * nesting. No size limit: the message is within a small factor of
 * the memory the values already take in the sender's state, so a limit
 * would only refuse what the sender could afford. */
enum { REF_MIN = 32 };

struct enc {
  struct buf *b;
  lua_Integer nrefs, done; /* numbered so far; entries written up to */
  int bad;                 /* the value being written, from 1 */
  const char *err;
};

static const char *put_ref(struct buf *b, char tag, lua_Integer k) {
  return put(b, &tag, 1) || put(b, &k, sizeof k) ? "out of memory" : NULL;
}

/* Appends the value at idx; seen maps tables and long strings to their
 * numbers and numbers to tables. Returns NULL or a static reason. */
static const char *encode_value(lua_State *L, int idx, int seen,
                                struct enc *e) {
  struct buf *b = e->b;
  char tag;
  int t = lua_type(L, idx);
  switch (t) {
    case LUA_TNIL: tag = 'n'; return put(b, &tag, 1) ? "out of memory" : NULL;
    case LUA_TBOOLEAN:
      tag = lua_toboolean(L, idx) ? 't' : 'f';
      return put(b, &tag, 1) ? "out of memory" : NULL;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        tag = 'i';
        if (put(b, &tag, 1) || put(b, &i, sizeof i)) return "out of memory";
      } else {
        lua_Number d = lua_tonumber(L, idx);
        tag = 'd';
        if (put(b, &tag, 1) || put(b, &d, sizeof d)) return "out of memory";
      }
      return NULL;
    case LUA_TSTRING:
    case LUA_TTABLE: {
      size_t len = 0;
      const char *s = t == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
      if (s && len < REF_MIN) {
        tag = 's';
        if (put(b, &tag, 1) || put(b, &len, sizeof len) || put(b, s, len))
          return "out of memory";
        return NULL;
      }
      lua_pushvalue(L, idx);
      if (lua_rawget(L, seen) == LUA_TNUMBER) {
        lua_Integer k = lua_tointeger(L, -1);
        lua_pop(L, 1);
        return put_ref(b, 'R', k);
      }
      lua_pop(L, 1);
      lua_pushvalue(L, idx);
      lua_pushinteger(L, ++e->nrefs);
      lua_rawset(L, seen);
      if (s) {
        tag = 'S';
        if (put(b, &tag, 1) || put(b, &len, sizeof len) || put(b, s, len))
          return "out of memory";
        return NULL;
      }
      lua_pushvalue(L, idx);
      lua_rawseti(L, seen, e->nrefs);
      tag = 'T';
      return put(b, &tag, 1) ? "out of memory" : NULL;
    }
    default:
      return "cannot copy this type (nil, booleans, numbers, strings and "
             "tables only)";
  }
}

/* Appends the entries of the tables numbered since the last call. */
static const char *encode_entries(lua_State *L, int seen, struct enc *e) {
  const char *err;
  char tag = 'E';
  while (e->done < e->nrefs) {
    if (lua_rawgeti(L, seen, ++e->done) != LUA_TTABLE) { /* a string */
      lua_pop(L, 1);
      continue;
    }
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
      int kt = lua_type(L, -2);
      if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN)
        return "table keys must be strings, numbers or booleans";
      if ((err = encode_value(L, -2, seen, e)) ||
          (err = encode_value(L, -1, seen, e)))
        return err;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (put(e->b, &tag, 1)) return "out of memory";
  }
  return NULL;
}

/* encode's protected part: the values are its arguments after the enc. */
static int encode_p(lua_State *L) {
  struct enc *e = lua_touserdata(L, 1);
  int n = lua_gettop(L);
  lua_newtable(L); /* seen */
  for (int i = 2; i <= n; i++) {
    e->bad = i - 1;
    if ((e->err = encode_value(L, i, n + 1, e)) ||
        (e->err = encode_entries(L, n + 1, e)))
      return 0; /* lua_pcall drops what this left */
  }
  e->bad = 0;
  return 0;
}

/* Appends the n values from idx to b as one message (sharing spans them
 * all). Never raises: returns NULL, or why not with *bad the value (from
 * 1; 0 when it is none in particular) that cannot be copied. */
static const char *encode(lua_State *L, int idx, int n, struct buf *b,
                          int *bad) {
  struct enc e = {b, 0, 0, 0, NULL};
  idx = lua_absindex(L, idx);
  *bad = 0;
  if (!lua_checkstack(L, n + 2)) return "too many values";
  lua_pushcfunction(L, encode_p);
  lua_pushlightuserdata(L, &e);
  for (int i = 0; i < n; i++) lua_pushvalue(L, idx + i);
  if (lua_pcall(L, n + 1, 0, 0) != LUA_OK) { /* only memory errors */
    lua_pop(L, 1);
    e.err = "not enough memory";
  }
  *bad = e.bad;
  return e.err;
}

struct dec {
  const char *p;
  lua_Integer nrefs, done;
  int refs; /* number -> table or string */
};

static void take(struct dec *d, void *v, size_t n) {
  memcpy(v, d->p, n);
  d->p += n;
}

/* Pushes the value at d->p (input we wrote ourselves). */
static void decode_value(lua_State *L, struct dec *d) {
  char tag = *d->p++;
  switch (tag) {
    case 'n': lua_pushnil(L); break;
    case 't': lua_pushboolean(L, 1); break;
    case 'f': lua_pushboolean(L, 0); break;
    case 'i': {
      lua_Integer i;
      take(d, &i, sizeof i);
      lua_pushinteger(L, i);
      break;
    }
    case 'd': {
      lua_Number n;
      take(d, &n, sizeof n);
      lua_pushnumber(L, n);
      break;
    }
    case 's':
    case 'S': {
      size_t len;
      take(d, &len, sizeof len);
      lua_pushlstring(L, d->p, len);
      d->p += len;
      if (tag == 'S') {
        lua_pushvalue(L, -1);
        lua_rawseti(L, d->refs, ++d->nrefs);
      }
      break;
    }
    case 'T':
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_rawseti(L, d->refs, ++d->nrefs);
      break;
    case 'R': {
      lua_Integer k;
      take(d, &k, sizeof k);
      lua_rawgeti(L, d->refs, k);
      break;
    }
    default:
      luaL_error(L, "work: corrupt message");
  }
}

/* Pushes the n values of the message at *p; advances *p past it. */
static void decode(lua_State *L, const char **p, int n) {
  struct dec d = {*p, 0, 0, 0};
  luaL_checkstack(L, n + 4, "work: too many values");
  lua_newtable(L);
  d.refs = lua_gettop(L);
  for (int i = 0; i < n; i++) {
    decode_value(L, &d);
    while (d.done < d.nrefs) {
      if (lua_rawgeti(L, d.refs, ++d.done) == LUA_TTABLE) {
        while (*d.p != 'E') {
          decode_value(L, &d);
          decode_value(L, &d);
          lua_rawset(L, -3);
        }
        d.p++;
      }
      lua_pop(L, 1);
    }
  }
  lua_remove(L, d.refs);
  *p = d.p;
}

/* The encoding alone, for tests/fuzz/work.c: pushes the bytes of the n
 * values from idx as a string, or returns why they cannot be copied with
 * *bad as encode sets it. (A memory error in the push would leak the
 * buffer: a test hook, not API.) */
const char *lmp_work_encode(lua_State *L, int idx, int n, int *bad) {
  struct buf b = {NULL, 0, 0};
  const char *e = encode(L, idx, n, &b, bad);
  if (!e) lua_pushlstring(L, b.p ? b.p : "", b.n);
  free(b.p);
  return e;
}

/* Pushes the n values encoded at p; returns the end of their encoding. */
const char *lmp_work_decode(lua_State *L, const char *p, int n) {
  decode(L, &p, n);
  return p;
}

static int writer(lua_State *L, const void *d, size_t n, void *ud) {
  (void)L;
  return put(ud, d, n);
}

/* Runs in the worker's own state, protected. */
static int worker_main(lua_State *L) {
  struct job *j = lua_touserdata(L, 1);
  const char *p = j->args.p;
  lua_settop(L, 0);
  luaL_openlibs(L);
  if (luaL_loadbufferx(L, j->fn.p, j->fn.n, "=work", "b") != LUA_OK)
    return lua_error(L);
  decode(L, &p, j->nargs);
  lua_call(L, j->nargs, LUA_MULTRET);
  int n = lua_gettop(L), bad;
  j->res.n = 0;
  const char *e = encode(L, 1, n, &j->res, &bad);
  if (e && !bad) return luaL_error(L, "work: results: %s", e);
  if (e) return luaL_error(L, "work: result #%d: %s", bad, e);
  j->nres = n;
  return 0;
}

static void work_fn(struct mp_op *op) {
  struct job *j = op->u.work.arg;
  lua_State *L = luaL_newstate();
  const char *msg = "not enough memory";
  size_t len = strlen(msg);
  if (L) {
    lua_pushcfunction(L, worker_main);
    lua_pushlightuserdata(L, j);
    if (lua_pcall(L, 1, 0, 0) == LUA_OK) {
      lua_close(L);
      op->result = 0;
      return;
    }
    msg = lua_tolstring(L, -1, &len);
    if (!msg) msg = "(error object is not a string)", len = strlen(msg);
  }
  j->failed = 1;
  j->res.n = 0;
  put(&j->res, msg, len);
  if (L) lua_close(L);
  op->result = 0;
}

static int push_res(lua_State *L) {
  struct job *j = lua_touserdata(L, 1);
  lua_pushlstring(L, j->res.p, j->res.n);
  return 1;
}

static int work_k(lua_State *L, struct mp_op *op) {
  struct job *j = op->u.work.arg;
  if (op->result < 0) { /* never ran: cancelled, or the pool failed */
    int err = (int)op->result;
    mp_op_release(op); /* frees j (op-owned) */
    return luaL_error(L, "work: %s", mp_strerror(err));
  }
  /* Copy the bytes into Lua before decoding, so a memory error while
   * decoding cannot leak the C buffer; the copy itself is protected. */
  lua_pushcfunction(L, push_res);
  lua_pushlightuserdata(L, j);
  int st = lua_pcall(L, 1, 1, 0);
  int failed = j->failed, nres = j->nres;
  mp_op_release(op);
  if (st != LUA_OK || failed) return lua_error(L);
  const char *p = lua_tostring(L, -1);
  decode(L, &p, nres);
  return nres;
}

static int l_work(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  int nargs = lua_gettop(L) - 1;
  const char *name, *e;
  int bad;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_argcheck(L, !lua_iscfunction(L, 1), 1, "Lua function expected");
  for (int i = 1; (name = lua_getupvalue(L, 1, i)); i++) {
    lua_pop(L, 1);
    if (i > 1 || strcmp(name, "_ENV") != 0)
      return luaL_argerror(L, 1, lua_pushfstring(
          L, "function must have no upvalues (found '%s')", name));
  }
  struct job *j = mp_loop_calloc(S->loop, 1, sizeof *j);
  if (!j) return luaL_error(L, "not enough memory");
  lua_pushvalue(L, 1);
  int dumped = lua_dump(L, writer, &j->fn, 0);
  lua_pop(L, 1);
  if (dumped != 0) {
    job_free(j);
    return luaL_error(L, "not enough memory");
  }
  if ((e = encode(L, 2, nargs, &j->args, &bad))) {
    job_free(j);
    if (!bad) return luaL_error(L, "work: %s", e);
    return luaL_argerror(L, bad + 1, e);
  }
  j->nargs = nargs;
  struct mp_op *op = mp_op_new(S->loop, NULL, NULL);
  if (!op) {
    job_free(j);
    return luaL_error(L, "not enough memory");
  }
  /* The job lives as long as the op: an orphaned op (its task gone)
   * frees it when the pool is done with it. */
  mp_op_own(op, j, job_free);
  mp_op_prep_work(op, work_fn, j);
  return lmp_await(L, op, work_k, "work");
}

void lmp_open_work(lua_State *L, struct lmp_state *S) {
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, l_work, 1);
  lua_setfield(L, -2, "work");
}
