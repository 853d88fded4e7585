/* read.c: libFuzzer target for the read-format engine (bindings/lbuf.c).
 *
 * A fake object type plugs into the engine the way files and streams do
 * (lbuf.h), but its fills are NOP ops whose bytes come from the input:
 * the data, how it is cut into fills (1 byte up to all the engine asked
 * for), injected EIO and retry fills, the line limit, file or stream
 * semantics, failures returned or raised, and a series of read calls with
 * their formats, each run in the main context or in a task (some cancelled
 * mid-call). Every call is compared with a reference computed over the
 * whole data at once: counts, "a" and lines by a direct reading of the
 * contract in lbuf.h, numerals by liolib itself (io's read "n" over an
 * fmemopen of the same bytes). A call that fails with an error (EIO,
 * ELINETOOLONG, cancelled, a bad format) must consume nothing; a final
 * "a" checks that no byte was lost or duplicated.
 *
 * Input: flags, line limit, data repeat, calls (a mode byte, then the
 * formats), the fill schedule, then the data (the rest). */
#include <ctype.h>
#include <string.h>

#include "fuzz.h"
#include "lbuf.h"

enum { MAXDATA = 1200 * 1024, MAXFILLS = 4000, MAXCALLS = 8, MAXFMT = 4 };
#define OBJ_MT "fuzz.reader"

/* ---- the fake object ---- */

struct fobj {
  struct lmp_rbuf rb;
  int flags;             /* for lmp_rbuf_read */
  const char *data;      /* what the "peer" sends */
  size_t len, pos;
  const uint8_t *sched;  /* fill sizes, cycled */
  size_t nsched, si;
  int fills, odd, eio;   /* odd: EIO/retry fills in a row */
};

static struct lmp_rbuf *f_check(lua_State *L) {
  return &((struct fobj *)luaL_checkudata(L, 1, OBJ_MT))->rb;
}

static struct mp_op *f_start(lua_State *L, size_t want, int *err) {
  struct fobj *o = lua_touserdata(L, 1);
  struct mp_op *op = mp_op_new(moonport_loop(L), NULL, NULL);
  if (!op || !lmp_rbuf_opbuf(&o->rb, op, want)) {
    if (op) mp_op_release(op);
    *err = MP_ENOMEM;
    return NULL;
  }
  *lmp_rbuf_optag(op) = (int64_t)want;
  mp_op_prep_nop(op);
  return op;
}

/* The next fill: 0xFE retry, 0xFF EIO (at most two in a row), else a size
 * class; past MAXFILLS everything asked, so big inputs stay fast. */
static int64_t f_done(lua_State *L, struct mp_op *op) {
  struct fobj *o = lua_touserdata(L, 1);
  size_t want = (size_t)*lmp_rbuf_optag(op), n;
  unsigned b = o->nsched ? o->sched[o->si++ % o->nsched] : 0xE0;
  if (++o->fills > MAXFILLS) b = 0xE0;
  if (b >= 0xFE && o->odd < 2) {
    o->odd++;
    if (b == 0xFE) return LMP_RBUF_RETRY;
    o->eio++;
    return MP_EIO;
  }
  o->odd = 0;
  if (b < 0x80) n = b + 1;
  else if (b < 0xC0) n = 1 + (size_t)(b - 0x80) * 97;
  else if (b < 0xE0) n = (size_t)(b - 0xBF) * 8192;
  else n = want;
  if (n > want) n = want;
  if (n > o->len - o->pos) n = o->len - o->pos;
  memcpy(lmp_rbuf_opdata(op), o->data + o->pos, n);
  o->pos += n;
  return (int64_t)n;
}

static int f_fail(lua_State *L, int err) {
  struct fobj *o = luaL_testudata(L, 1, OBJ_MT);
  return lmp_rbuf_fail(L, err, "read", o ? o->rb.maxline : 0);
}

static const struct lmp_rbuf_vt f_vt = {"read", f_check, f_start, f_done,
                                        f_fail};

static int f_read(lua_State *L) {
  struct fobj *o = luaL_checkudata(L, 1, OBJ_MT);
  return lmp_rbuf_read(L, &f_vt, o->flags);
}

static int f_gc(lua_State *L) {
  lmp_rbuf_free(&((struct fobj *)luaL_checkudata(L, 1, OBJ_MT))->rb);
  return 0;
}

/* ---- formats ---- */

enum { K_COUNT, K_ALL, K_LINE, K_LINEKEEP, K_NUM, K_BAD };

struct fmt {
  int kind;
  size_t count;
  int push;        /* how it is passed: 's', 'i', 'f' (float), 'b' */
  const char *s;
  lua_Integer i;
  double f;
};

/* One format from the input (see the table in docs/reliability.md). */
static void take_fmt(struct fz *z, struct fmt *f) {
  static const char *const named[] = {"l", "L", "n", "a",
                                      "*l", "*L", "*n", "*a"};
  static const int kinds[] = {K_LINE, K_LINEKEEP, K_NUM, K_ALL};
  static const size_t big[] = {65535, 65536, 65537, 262143, 262144,
                               262145, 1 << 20, (1 << 20) + 1};
  unsigned b = fz_byte(z), v;
  memset(f, 0, sizeof *f);
  f->push = 's';
  switch (b % 16) {
    case 8:
      f->kind = K_COUNT;
      f->push = 'i';
      f->i = (lua_Integer)(f->count = fz_byte(z));
      return;
    case 9:
      v = fz_byte(z);
      f->kind = K_COUNT;
      f->push = 'i';
      f->count = v < 8 ? big[v] : (size_t)v * 1000;
      f->i = (lua_Integer)f->count;
      return;
    case 10: /* a float with an integer value is a count */
      f->kind = K_COUNT;
      f->push = 'f';
      f->f = (double)(f->count = fz_byte(z) % 16);
      return;
    case 11:
      f->kind = K_BAD;
      switch (fz_byte(z) % 6) {
        case 0: f->s = "x"; break;
        case 1: f->s = ""; break;
        case 2: f->s = "*"; break;
        case 3: f->push = 'i'; f->i = -1; break;
        case 4: f->push = 'f'; f->f = 1.5; break;
        default: f->push = 'b'; break;
      }
      return;
    case 12: f->kind = K_LINE; f->s = "line"; return;
    case 13: f->kind = K_LINEKEEP; f->s = "Lx"; return;
    case 14: case 15: f->kind = K_LINE; f->s = "l"; return;
    default:
      f->s = named[b % 16];
      f->kind = kinds[b % 4];
  }
}

static void push_fmt(lua_State *L, const struct fmt *f) {
  switch (f->push) {
    case 'i': lua_pushinteger(L, f->i); break;
    case 'f': lua_pushnumber(L, f->f); break;
    case 'b': lua_pushboolean(L, 1); break;
    default: lua_pushstring(L, f->s);
  }
}

/* ---- the reference ---- */

enum { R_OK, R_NIL, R_EOF, R_LONG };

struct ref {
  lua_State *L;
  const char *d;
  size_t len, maxline;
  int stream;
  FILE *f;      /* fmemopen(d) inside a luaL_Stream ... */
  int file;     /* ... at this stack index */
};

/* liolib's read "n" at *p: pushes its value (R_OK) or fails. */
static int ref_num(struct ref *r, size_t *p) {
  lua_State *L = r->L;
  size_t at = *p;
  FUZZ_CHECK(fseek(r->f, (long)*p, SEEK_SET) == 0, "fseek");
  lua_getfield(L, r->file, "read");
  lua_pushvalue(L, r->file);
  lua_pushliteral(L, "n");
  lua_call(L, 2, 1);
  *p = (size_t)ftell(r->f);
  if (!lua_isnil(L, -1)) return R_OK;
  lua_pop(L, 1);
  while (at < r->len && isspace((unsigned char)r->d[at])) at++;
  return at == r->len ? R_EOF : R_NIL; /* no numeral: a bad one */
}

/* One format at *p: pushes its value for R_OK. */
static int ref_one(struct ref *r, const struct fmt *f, size_t *p) {
  lua_State *L = r->L;
  const char *s = r->d + *p, *nl;
  size_t rem = r->len - *p, k;
  switch (f->kind) {
    case K_COUNT:
      k = f->count;
      if (rem == 0) return R_EOF;
      if (rem < k) {
        if (r->stream) return R_EOF; /* a stream wants every byte */
        k = rem;
      }
      lua_pushlstring(L, s, k);
      *p += k;
      return R_OK;
    case K_ALL:
      lua_pushlstring(L, s, rem);
      *p = r->len;
      return R_OK;
    case K_LINE:
    case K_LINEKEEP:
      nl = rem ? memchr(s, '\n', rem) : NULL;
      k = nl ? (size_t)(nl - s) : rem;
      if (k > r->maxline) return R_LONG;
      if (!nl && rem == 0) return R_EOF;
      lua_pushlstring(L, s, nl && f->kind == K_LINEKEEP ? k + 1 : k);
      *p += nl ? k + 1 : k;
      return R_OK;
    default:
      return ref_num(r, p);
  }
}

/* The expected outcome of one call, for the comparison. */
enum { X_VALUES, X_FAIL, X_BADARG };
struct expect {
  int kind;
  int nil;          /* X_VALUES: a format failed, nil follows */
  const char *code; /* X_FAIL: the code after nil, msg */
};

/* Pushes the values the call returns (a table) and fills x; moves *pos
 * past what the call consumes. */
static void ref_call(struct ref *r, const struct fmt *fmts, int nfmt,
                     size_t *pos, struct expect *x) {
  lua_State *L = r->L;
  size_t p = *pos;
  int n = 0;
  static const struct fmt deflt = {K_LINE, 0, 's', "l", 0, 0};
  if (nfmt == 0) {
    fmts = &deflt;
    nfmt = 1;
  }
  lua_newtable(L);
  x->kind = X_VALUES;
  x->nil = 0;
  x->code = NULL;
  for (int i = 0; i < nfmt; i++)
    if (fmts[i].kind == K_BAD) {
      x->kind = X_BADARG;
      return;
    }
  for (int i = 0; i < nfmt; i++) {
    int res = ref_one(r, &fmts[i], &p);
    if (res == R_OK) {
      lua_rawseti(L, -2, ++n);
      continue;
    }
    if (res == R_LONG) { /* the call fails, nothing consumed */
      lua_pop(L, 1);
      lua_newtable(L);
      x->kind = X_FAIL;
      x->code = "ELINETOOLONG";
      return;
    }
    if (res == R_EOF && r->stream) {
      x->kind = X_FAIL;
      x->code = "EOF";
    } else {
      x->nil = 1;
    }
    break; /* the first failure ends the results */
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  *pos = p;
}

/* ---- comparison ---- */

static int same(lua_State *L, int a, int b) {
  int t = lua_type(L, a);
  size_t la, lb;
  if (t != lua_type(L, b)) return 0;
  switch (t) {
    case LUA_TNIL: return 1;
    case LUA_TSTRING: {
      const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
      return la == lb && memcmp(sa, sb, la) == 0;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
      if (lua_isinteger(L, a))
        return lua_tointeger(L, a) == lua_tointeger(L, b);
      {
        lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
        return memcmp(&x, &y, sizeof x) == 0;
      }
    default:
      return 0;
  }
}

static const char *show(lua_State *L, int idx) {
  return luaL_tolstring(L, idx, NULL); /* leaves it on the stack: we abort */
}

/* Checks the call's actual results (table at act: status, values...)
 * against the expected table at exp. Returns 1 when the call consumed
 * nothing (it failed with an error), 0 when it consumed per the
 * reference. */
static int compare(lua_State *L, int act, int exp, const struct expect *x,
                   int raise, int cancelled_ok, int eio, int call) {
  lua_getfield(L, act, "n");
  int an = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_rawgeti(L, act, 1);
  int ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!ok) {
    lua_rawgeti(L, act, 2);
    const char *msg = lua_tostring(L, -1);
    FUZZ_CHECK(msg, "call %d: a non-string error", call);
    if (cancelled_ok && strcmp(msg, "cancelled") == 0) {
      lua_pop(L, 1);
      return 1;
    }
    if (x->kind == X_BADARG) {
      FUZZ_CHECK(strstr(msg, "bad argument"), "call %d: %s", call, msg);
      lua_pop(L, 1);
      return 1;
    }
    FUZZ_CHECK(raise && (eio || x->kind == X_FAIL),
               "call %d raised: %s", call, msg);
    lua_pop(L, 1);
    return eio || (x->code && strcmp(x->code, "EOF") != 0);
  }
  FUZZ_CHECK(x->kind != X_BADARG, "call %d: a bad format was accepted", call);
  if (eio) {
    FUZZ_CHECK(!raise, "call %d: EIO did not raise", call);
    lua_rawgeti(L, act, 4);
    FUZZ_CHECK(an == 4 && lua_type(L, -1) == LUA_TSTRING &&
               strcmp(lua_tostring(L, -1), "EIO") == 0,
               "call %d: EIO injected, got %d results", call, an - 1);
    lua_pop(L, 1);
    return 1;
  }
  lua_getfield(L, exp, "n");
  int en = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (x->kind == X_FAIL) {
    FUZZ_CHECK(!raise, "call %d: %s did not raise", call, x->code);
    FUZZ_CHECK(an == 1 + en + 3, "call %d: %d results, expected %d + "
               "nil, msg, %s", call, an - 1, en, x->code);
    lua_rawgeti(L, act, an);
    lua_rawgeti(L, act, an - 1);
    lua_rawgeti(L, act, an - 2);
    FUZZ_CHECK(lua_isnil(L, -1) && lua_type(L, -2) == LUA_TSTRING &&
               strcmp(lua_tostring(L, -3), x->code) == 0,
               "call %d: expected nil, msg, %s; got %s", call, x->code,
               show(L, -3));
    lua_pop(L, 3);
  } else {
    /* the values, then nil when a format failed */
    FUZZ_CHECK(an - 1 == en + x->nil, "call %d: %d results, expected %d%s",
               call, an - 1, en, x->nil ? " + nil" : "");
    lua_rawgeti(L, act, an);
    FUZZ_CHECK(!x->nil || lua_isnil(L, -1), "call %d: no nil at the end",
               call);
    lua_pop(L, 1);
  }
  for (int i = 1; i <= en; i++) {
    lua_rawgeti(L, act, i + 1);
    lua_rawgeti(L, exp, i);
    if (!same(L, -2, -1)) {
      const char *e = show(L, -1), *a = show(L, -3);
      FUZZ_CHECK(0, "call %d, result %d: got %s, expected %s", call, i, a,
                 e);
    }
    lua_pop(L, 2);
  }
  return x->kind == X_FAIL && strcmp(x->code, "EOF") != 0;
}

/* ---- the target ---- */

static lua_State *L;
static int runner; /* registry ref */

static const char runner_src[] =
  "return function(obj, task, cancel, ...)\n"
  "  if not task then return table.pack(pcall(obj.read, obj, ...)) end\n"
  "  local t = mp.spawn(obj.read, obj, ...)\n"
  "  if cancel then\n"
  "    mp.spawn(function()\n"
  "      for _ = 1, cancel do mp.sleep(0) end\n"
  "      t:cancel()\n"
  "    end)\n"
  "  end\n"
  "  return table.pack(t:join())\n"
  "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  static const luaL_Reg meta[] = {{"__gc", f_gc}, {NULL, NULL}};
  static const luaL_Reg methods[] = {{"read", f_read}, {NULL, NULL}};
  (void)argc;
  (void)argv;
  L = fuzz_state();
  lmp_new_class(L, lmp_getstate(L), OBJ_MT, meta, methods);
  lua_pop(L, 1);
  runner = fuzz_chunk(L, runner_src);
  return 0;
}

struct call {
  int task, cancel; /* cancel: -1, or sleeps before the cancel */
  int nfmt;
  struct fmt fmts[MAXFMT];
};

static int io_close(lua_State *Ls) {
  luaL_Stream *p = luaL_checkudata(Ls, 1, LUA_FILEHANDLE);
  return luaL_fileresult(Ls, fclose(p->f) == 0, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  static const size_t maxlines[] = {0, 1, 2, 3, 7, 64, 4096,
                                    LMP_RBUF_MAXLINE};
  struct fz z = {in, size};
  struct call calls[MAXCALLS + 1];
  unsigned flags = fz_byte(&z);
  size_t maxline = maxlines[fz_byte(&z) % 8];
  unsigned rep = fz_byte(&z);
  int ncalls = 1 + (int)(fz_byte(&z) % MAXCALLS);
  for (int c = 0; c < ncalls; c++) {
    unsigned m = fz_byte(&z);
    calls[c].task = m & 1;
    calls[c].cancel = (m & 0x80) && calls[c].task ? (int)(m >> 1 & 3) : -1;
    calls[c].nfmt = (int)(fz_byte(&z) % (MAXFMT + 1));
    for (int i = 0; i < calls[c].nfmt; i++) take_fmt(&z, &calls[c].fmts[i]);
  }
  /* the last call reads whatever is left */
  calls[ncalls].task = 0;
  calls[ncalls].cancel = -1;
  calls[ncalls].nfmt = 1;
  calls[ncalls].fmts[0] = (struct fmt){K_ALL, 0, 's', "a", 0, 0};
  size_t nsched = fz_byte(&z) % 17;
  if (nsched > z.n) nsched = z.n;
  const uint8_t *sched = z.p;
  z.p += nsched;
  z.n -= nsched;

  /* the data: the rest, repeated (up to MAXDATA) */
  size_t reps = rep < 0xF0 ? 1 : (size_t)1 << (rep - 0xF0 + 6);
  size_t len = z.n * reps;
  if (len > MAXDATA) len = MAXDATA - MAXDATA % (z.n ? z.n : 1);
  char *data = malloc(len + 1);
  if (!data) return 0;
  for (size_t at = 0; z.n && at < len; at += z.n) memcpy(data + at, z.p, z.n);

  int top = lua_gettop(L);
  struct fobj *o = lua_newuserdatauv(L, sizeof *o, 0);
  memset(o, 0, sizeof *o);
  lmp_rbuf_init(&o->rb);
  o->rb.maxline = maxline;
  o->flags = flags & (LMP_RBUF_STREAM | LMP_RBUF_RAISE);
  o->data = data;
  o->len = len;
  o->sched = sched;
  o->nsched = nsched;
  luaL_setmetatable(L, OBJ_MT);
  int obj = lua_gettop(L);

  luaL_Stream *ls = lua_newuserdatauv(L, sizeof *ls, 0);
  ls->closef = NULL;
  luaL_setmetatable(L, LUA_FILEHANDLE);
  ls->f = fmemopen(data, len, "r");
  FUZZ_CHECK(ls->f, "fmemopen");
  ls->closef = io_close;
  struct ref r = {L, data, len, maxline, flags & LMP_RBUF_STREAM, ls->f,
                  lua_gettop(L)};
  int raise = (flags & LMP_RBUF_RAISE) != 0;

  size_t pos = 0;
  for (int c = 0; c <= ncalls; c++) {
    const struct call *k = &calls[c];
    struct expect x;
    int eio0 = o->eio;
    if (c == ncalls) o->nsched = 0; /* the last call gets every byte */
    lua_rawgeti(L, LUA_REGISTRYINDEX, runner);
    lua_pushvalue(L, obj);
    lua_pushboolean(L, k->task);
    if (k->cancel >= 0) lua_pushinteger(L, k->cancel);
    else lua_pushnil(L);
    luaL_checkstack(L, MAXFMT, NULL);
    for (int i = 0; i < k->nfmt; i++) push_fmt(L, &k->fmts[i]);
    if (lua_pcall(L, 3 + k->nfmt, 1, 0) != LUA_OK)
      FUZZ_CHECK(0, "call %d: runner: %s", c, lua_tostring(L, -1));
    int act = lua_gettop(L);
    size_t p = pos;
    ref_call(&r, k->fmts, k->nfmt, &p, &x);
    if (!compare(L, act, act + 1, &x, raise, k->cancel >= 0,
                 o->eio != eio0, c))
      pos = p;
    lua_settop(L, act - 1);
  }
  FUZZ_CHECK(pos == len && lmp_rbuf_avail(&o->rb) == 0,
             "%zu of %zu bytes read", pos, len);

  /* every task ended, no op left in flight */
  FUZZ_CHECK(moonport_run(L, MP_RUN_DEFAULT) == 0, "tasks left");
  FUZZ_CHECK(mp_loop_inflight(moonport_loop(L)) == 0, "ops in flight");
  lmp_rbuf_free(&o->rb);
  lua_pushcfunction(L, io_close);
  lua_pushvalue(L, r.file);
  lua_call(L, 1, 0);
  ls->closef = NULL;
  lua_settop(L, top);
  free(data);
  return 0;
}
