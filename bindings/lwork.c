/* lwork.c: mp.work, a Lua function run on a threadpool thread.
 *
 * The function is string.dump'ed (so it may have no upvalues but _ENV) and
 * loaded into a fresh lua_State on the worker; arguments and results cross
 * as a private serialization of nil, booleans, numbers, strings and tables
 * of those, nested (luv refuses tables; users asked for them). Only the
 * worker touches its state; the loop thread sees bytes. */
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "lmoonport.h"

enum { MAX_DEPTH = 64 };

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

static void job_free(struct job *j) {
  free(j->fn.p);
  free(j->args.p);
  free(j->res.p);
  free(j);
}

/* Appends the value at idx; on failure returns a static reason. */
static const char *encode(lua_State *L, int idx, struct buf *b, int depth) {
  char tag;
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
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
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      tag = 's';
      if (put(b, &tag, 1) || put(b, &len, sizeof len) || put(b, s, len))
        return "out of memory";
      return NULL;
    }
    case LUA_TTABLE: {
      if (depth >= MAX_DEPTH) return "tables nested too deeply (a cycle?)";
      if (!lua_checkstack(L, 3)) return "stack overflow";
      tag = 'T';
      if (put(b, &tag, 1)) return "out of memory";
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        const char *e;
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) {
          lua_pop(L, 2);
          return "table keys must be strings, numbers or booleans";
        }
        if ((e = encode(L, -2, b, depth + 1)) ||
            (e = encode(L, -1, b, depth + 1))) {
          lua_pop(L, 2);
          return e;
        }
        lua_pop(L, 1);
      }
      tag = 'E';
      return put(b, &tag, 1) ? "out of memory" : NULL;
    }
    default:
      return "cannot copy this type (nil, booleans, numbers, strings and "
             "tables only)";
  }
}

/* Pushes the value at *p (input we wrote ourselves). */
static void decode(lua_State *L, const char **p) {
  char tag = *(*p)++;
  luaL_checkstack(L, 3, "work: nesting");
  switch (tag) {
    case 'n': lua_pushnil(L); break;
    case 't': lua_pushboolean(L, 1); break;
    case 'f': lua_pushboolean(L, 0); break;
    case 'i': {
      lua_Integer i;
      memcpy(&i, *p, sizeof i);
      *p += sizeof i;
      lua_pushinteger(L, i);
      break;
    }
    case 'd': {
      lua_Number d;
      memcpy(&d, *p, sizeof d);
      *p += sizeof d;
      lua_pushnumber(L, d);
      break;
    }
    case 's': {
      size_t len;
      memcpy(&len, *p, sizeof len);
      *p += sizeof len;
      lua_pushlstring(L, *p, len);
      *p += len;
      break;
    }
    case 'T':
      lua_newtable(L);
      while (**p != 'E') {
        decode(L, p);
        decode(L, p);
        lua_rawset(L, -3);
      }
      (*p)++;
      break;
    default:
      luaL_error(L, "work: corrupt message");
  }
}

/* The encoding alone, for tests/fuzz/work.c: pushes the bytes of the
 * value at idx as a string, or returns why it cannot be copied. (A memory
 * error in the push would leak the buffer: a test hook, not API.) */
const char *lmp_work_encode(lua_State *L, int idx) {
  struct buf b = {NULL, 0, 0};
  const char *e = encode(L, idx, &b, 0);
  if (!e) lua_pushlstring(L, b.p ? b.p : "", b.n);
  free(b.p);
  return e;
}

/* Pushes the value encoded at p; returns the end of its encoding. */
const char *lmp_work_decode(lua_State *L, const char *p) {
  decode(L, &p);
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
  for (int i = 0; i < j->nargs; i++) decode(L, &p);
  lua_call(L, j->nargs, LUA_MULTRET);
  int n = lua_gettop(L);
  j->res.n = 0;
  for (int i = 1; i <= n; i++) {
    const char *e = encode(L, i, &j->res, 0);
    if (e) return luaL_error(L, "work: result #%d: %s", i, e);
  }
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

static void work_cb(struct mp_op *op) {
  if (!op->data) job_free(op->u.work.arg); /* orphaned */
  lmp_task_op_cb(op);
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
    job_free(j);
    mp_op_release(op);
    return luaL_error(L, "work: %s", mp_strerror(err));
  }
  mp_op_release(op);
  /* Copy the bytes into Lua before decoding, so a memory error while
   * decoding cannot leak the C buffer; the copy itself is protected. */
  lua_pushcfunction(L, push_res);
  lua_pushlightuserdata(L, j);
  int st = lua_pcall(L, 1, 1, 0);
  int failed = j->failed, nres = j->nres;
  job_free(j);
  if (st != LUA_OK || failed) return lua_error(L);
  const char *p = lua_tostring(L, -1);
  for (int i = 0; i < nres; i++) decode(L, &p);
  return nres;
}

static int l_work(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  int nargs = lua_gettop(L) - 1;
  const char *name, *e;
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
  for (int i = 2; i <= nargs + 1; i++) {
    if ((e = encode(L, i, &j->args, 0))) {
      job_free(j);
      return luaL_argerror(L, i, e);
    }
  }
  j->nargs = nargs;
  struct mp_op *op = mp_op_new(S->loop, work_cb, NULL);
  if (!op) {
    job_free(j);
    return luaL_error(L, "not enough memory");
  }
  mp_op_prep_work(op, work_fn, j);
  return lmp_await(L, op, work_k, "work");
}

void lmp_open_work(lua_State *L, struct lmp_state *S) {
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, l_work, 1);
  lua_setfield(L, -2, "work");
}
