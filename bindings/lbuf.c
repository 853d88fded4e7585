/* lbuf.c: the shared read buffer and io.read format engine (see lbuf.h).
 *
 * Stack layout while a read runs (it survives yields, so the continuation
 * finds its state there, not in C):
 *   1            the object
 *   2            light userdata: the vtable
 *   3            integer: number of formats * 4 + flags
 *   4 .. 3+nfmt  the formats
 *   4+nfmt ..    the results so far
 * The format to parse next is the one after the last result. */
#include <ctype.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "lbuf.h"

#define MAXLENNUM 200 /* as liolib's L_MAXLENNUM */
#define NEED (-1)      /* parse: more bytes are needed */

struct opbuf {
  struct lmp_rbuf *rb; /* the owner, NULL once detached */
  mp_op_cb next_cb;    /* the type's callback, or lmp_task_op_cb */
  size_t cap;          /* data bytes */
  int64_t tag;         /* for the object type */
  const struct lmp_rbuf_vt *vt; /* a line wait's: for line_k */
  int flags;                    /* a line wait's read flags */
  /* data follows, aligned */
};
#define OPBUF_HDR ((sizeof(struct opbuf) + 15) & ~(size_t)15)

void lmp_rbuf_init(struct lmp_rbuf *rb) {
  memset(rb, 0, sizeof *rb);
  rb->maxline = LMP_RBUF_MAXLINE;
}

void lmp_rbuf_free(struct lmp_rbuf *rb) {
  lmp_rbuf_detach(rb);
  free(rb->blk);
  free(rb->spare);
  rb->spare = rb->blk = NULL;
  rb->p = NULL;
  rb->off = rb->tpos = rb->len = rb->cap = rb->scanned = 0;
}

void lmp_rbuf_reset(struct lmp_rbuf *rb) {
  rb->off = rb->tpos = rb->len = rb->scanned = 0;
  rb->eof = 0;
}

void lmp_rbuf_detach(struct lmp_rbuf *rb) {
  struct mp_op *op = rb->pending;
  if (!op) return;
  rb->pending = NULL;
  ((struct opbuf *)op->owned)->rb = NULL;
  mp_op_cancel(op); /* the op completes later; its callback releases it */
}

void *lmp_rbuf_opbuf(struct lmp_rbuf *rb, struct mp_op *op, size_t n) {
  struct opbuf *h = rb->spare;
  if (h && h->cap >= n) {
    rb->spare = NULL; /* the op owns it now; absorb may hand it back */
  } else {
    if (!(h = mp_loop_malloc(op->loop, OPBUF_HDR + n))) return NULL;
    h->cap = n;
  }
  h->rb = NULL;
  h->next_cb = lmp_task_op_cb;
  h->tag = 0;
  free(op->owned);
  op->owned = h;
  return (char *)h + OPBUF_HDR;
}

void *lmp_rbuf_opdata(struct mp_op *op) {
  return (char *)op->owned + OPBUF_HDR;
}

int64_t *lmp_rbuf_optag(struct mp_op *op) {
  return &((struct opbuf *)op->owned)->tag;
}

/* The read op's callback: an orphaned op (its task is gone) unlinks from
 * its rbuf so later reads are not refused as busy; then the type's
 * callback (which chains to lmp_task_op_cb). */
static void rbuf_op_cb(struct mp_op *op) {
  struct opbuf *h = op->owned;
  if (!op->data && h->rb) {
    h->rb->pending = NULL;
    h->rb = NULL;
  }
  h->next_cb(op);
}

int lmp_rbuf_fail(lua_State *L, int err, const char *what, size_t maxline) {
  if (err != LMP_ELINETOOLONG) return lmp_fail(L, err, what);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: line longer than %I bytes", what ? what : "read",
                  (lua_Integer)maxline);
  lua_pushliteral(L, "ELINETOOLONG");
  return 3;
}

/* Makes room for n more bytes: drop the committed prefix, then grow. */
static int reserve(struct lmp_rbuf *rb, size_t n) {
  if (rb->len + n <= rb->cap) return 0;
  if (rb->off > 0) {
    memmove(rb->p, rb->p + rb->off, rb->len - rb->off);
    rb->len -= rb->off;
    rb->tpos -= rb->off;
    rb->off = 0;
    if (rb->len + n <= rb->cap) return 0;
  }
  size_t cap = rb->cap ? rb->cap : 4096;
  while (cap < rb->len + n) {
    if (cap > SIZE_MAX / 4) return MP_ENOMEM;
    cap *= 2;
  }
  /* The storage is an opbuf block too, so it can trade places with an
   * op's scratch memory (see absorb). */
  struct opbuf *b = realloc(rb->blk, OPBUF_HDR + cap);
  if (!b) return MP_ENOMEM;
  b->cap = cap;
  rb->blk = b;
  rb->p = (char *)b + OPBUF_HDR;
  rb->cap = cap;
  return 0;
}

char *lmp_rbuf_space(struct lmp_rbuf *rb, size_t n) {
  return reserve(rb, n) ? NULL : rb->p + rb->len;
}

/* Formats. */
enum { F_COUNT, F_ALL, F_LINE, F_LINEKEEP, F_NUM };

static int fmt_kind(lua_State *L, int idx, lua_Integer *count) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    *count = lua_tointeger(L, idx);
    return F_COUNT;
  }
  const char *s = lua_tostring(L, idx);
  if (*s == '*') s++; /* Lua 5.3 compatibility */
  switch (*s) {
    case 'a': return F_ALL;
    case 'l': return F_LINE;
    case 'L': return F_LINEKEEP;
    default: return F_NUM;
  }
}

int lmp_rbuf_lines(lua_State *L, lua_CFunction iter) {
  int n = lua_gettop(L) - 1;
  luaL_argcheck(L, n <= 250, 252, "too many arguments");
  lmp_rbuf_check_formats(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_pushinteger(L, n);
  lua_insert(L, 3);
  lua_pushcclosure(L, iter, 3 + n);
  return 1;
}

void lmp_rbuf_check_formats(lua_State *L, int first) {
  int top = lua_gettop(L);
  for (int i = first; i <= top; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      int isnum;
      lua_Integer n = lua_tointegerx(L, i, &isnum);
      luaL_argcheck(L, isnum, i, "number has no integer representation");
      luaL_argcheck(L, n >= 0, i, "non-negative count expected");
    } else {
      const char *s = luaL_checkstring(L, i);
      if (*s == '*') s++;
      luaL_argcheck(L, *s && strchr("alLn", *s), i, "invalid format");
    }
  }
}

/* liolib's read_number over the buffer: peek gives the byte at i, EOF at
 * the end of data, or NEED when more may come. */
struct numscan {
  const char *p;
  size_t n, i;
  int eof, c, need, len;
  char buf[MAXLENNUM + 1];
};

static int ns_peek(struct numscan *s) {
  if (s->i < s->n) return (unsigned char)s->p[s->i];
  if (!s->eof) s->need = 1;
  return EOF;
}

static int ns_next(struct numscan *s) {
  if (s->len >= MAXLENNUM) {
    s->buf[0] = '\0';
    return 0;
  }
  s->buf[s->len++] = (char)s->c;
  s->i++;
  s->c = ns_peek(s);
  return 1;
}

static int ns_test2(struct numscan *s, const char *set) {
  if (s->c != EOF && (s->c == set[0] || s->c == set[1])) return ns_next(s);
  return 0;
}

static int ns_digits(struct numscan *s, int hex) {
  int count = 0;
  while (s->c != EOF && (hex ? isxdigit(s->c) : isdigit(s->c)) &&
         ns_next(s))
    count++;
  return count;
}

/* Scans a numeral at p[0, n). Returns NEED, or the bytes consumed with
 * buf holding the text (NUL-terminated). */
static int scan_number(struct numscan *s) {
  int count = 0, hex = 0;
  char decp[3] = {lua_getlocaledecpoint(), '.', 0};
  s->c = ns_peek(s);
  ns_test2(s, "-+");
  if (ns_test2(s, "00")) {
    if (ns_test2(s, "xX")) hex = 1;
    else count = 1;
  }
  count += ns_digits(s, hex);
  if (ns_test2(s, decp)) count += ns_digits(s, hex);
  if (count > 0 && ns_test2(s, hex ? "pP" : "eE")) {
    ns_test2(s, "-+");
    ns_digits(s, 0);
  }
  if (s->need) return NEED;
  s->buf[s->len] = '\0'; /* "" after an overflow: invalid */
  return s->len;
}

/* Results of parse_one. */
enum { P_OK, P_FAIL, P_BAD, P_NEED, P_ERR };

/* Parses one format against rb at tpos. P_OK pushed a value; P_FAIL (no
 * data left) and P_BAD (not a numeral) pushed nothing (the caller pushes
 * the failure); P_NEED wants *want more bytes; P_ERR sets *err. */
static int parse_one(lua_State *L, struct lmp_rbuf *rb, int kind,
                     lua_Integer count, int flags, size_t *want, int *err) {
  size_t avail = rb->len - rb->tpos;
  /* no storage before the first fill: NULL + 0 is undefined */
  const char *p = avail ? rb->p + rb->tpos : "";
  switch (kind) {
    case F_COUNT: {
      size_t n = (size_t)count;
      if (n == 0) {
        if (avail > 0) lua_pushliteral(L, "");
        else if (rb->eof) return P_FAIL;
        else return (*want = 1), P_NEED;
        return P_OK;
      }
      /* at EOF a file returns what there is; a stream wants it all (the
       * partial bytes stay buffered for "a") */
      if (avail >= n ||
          (rb->eof && avail > 0 && !(flags & LMP_RBUF_STREAM))) {
        if (avail < n) n = avail;
        lua_pushlstring(L, p, n);
        rb->tpos += n;
        return P_OK;
      }
      if (rb->eof) return P_FAIL;
      *want = n - avail;
      return P_NEED;
    }
    case F_ALL:
      if (!rb->eof) {
        *want = avail; /* grow reads with the data */
        return P_NEED;
      }
      lua_pushlstring(L, p, avail);
      rb->tpos = rb->len;
      return P_OK;
    case F_LINE:
    case F_LINEKEEP: {
      const char *nl = avail > rb->scanned
          ? memchr(p + rb->scanned, '\n', avail - rb->scanned) : NULL;
      if (nl) {
        size_t n = (size_t)(nl - p);
        if (n > rb->maxline) {
          *err = LMP_ELINETOOLONG;
          return P_ERR;
        }
        lua_pushlstring(L, p, kind == F_LINEKEEP ? n + 1 : n);
        rb->tpos += n + 1;
        rb->scanned = 0;
        return P_OK;
      }
      rb->scanned = avail;
      if (avail > rb->maxline) {
        *err = LMP_ELINETOOLONG;
        return P_ERR;
      }
      if (!rb->eof) {
        *want = 0;
        return P_NEED;
      }
      if (avail == 0) return P_FAIL;
      lua_pushlstring(L, p, avail);
      rb->tpos = rb->len;
      rb->scanned = 0;
      return P_OK;
    }
    default: { /* F_NUM */
      struct numscan s;
      while (avail > 0 && isspace((unsigned char)*p)) {
        p++;
        avail--;
        rb->tpos++;
      }
      if (avail == 0 && !rb->eof) {
        *want = 0;
        return P_NEED;
      }
      memset(&s, 0, sizeof s);
      s.p = p;
      s.n = avail;
      s.eof = rb->eof;
      int r = scan_number(&s);
      if (r == NEED) {
        *want = 0;
        return P_NEED;
      }
      rb->tpos += (size_t)r;
      if (lua_stringtonumber(L, s.buf)) return P_OK;
      return avail == 0 ? P_FAIL : P_BAD; /* bytes there: not the end */
    }
  }
}

#define NFMT(L) ((int)(lua_tointeger(L, 3) >> 2))
#define FLAGS(L) ((int)(lua_tointeger(L, 3) & 3))

/* Ends the call with an error: results dropped, nothing consumed. */
static int finish_err(lua_State *L, const struct lmp_rbuf_vt *vt,
                      struct lmp_rbuf *rb, int err) {
  if (rb) rb->scanned = 0;
  int flags = FLAGS(L);
  lua_settop(L, 1); /* the object: fail names it */
  vt->fail(L, err);
  if (flags & LMP_RBUF_RAISE)
    return luaL_error(L, "%s", lua_tostring(L, -2));
  return 3;
}

/* Ends the call: commits what was consumed, returns the results. */
static int finish_ok(lua_State *L, struct lmp_rbuf *rb, int base) {
  rb->off = rb->tpos;
  rb->scanned = 0;
  if (rb->off == rb->len) rb->off = rb->tpos = rb->len = 0;
  return lua_gettop(L) - base;
}

static int engine(lua_State *L, const struct lmp_rbuf_vt *vt,
                  struct lmp_rbuf *rb);

/* The count that may bypass the buffer: the last format is a count and
 * the buffer is empty. 0 otherwise. */
static size_t direct_size(lua_State *L, struct lmp_rbuf *rb) {
  int nfmt = NFMT(L), nres = lua_gettop(L) - 3 - nfmt;
  lua_Integer count;
  if (nres != nfmt - 1 || rb->tpos != rb->len ||
      lua_type(L, 4 + nres) != LUA_TNUMBER) /* "l": no fmt_kind */
    return 0;
  if (fmt_kind(L, 4 + nres, &count) != F_COUNT || count <= 0) return 0;
  return (size_t)count;
}

/* Keeps block h (no op owns it) as the spare scratch memory, or frees it:
 * one or two blocks per object, not a malloc per op (a 64 KiB malloc/free
 * pair per read showed up as page faults from heap trimming). */
static void keep_spare(struct lmp_rbuf *rb, struct opbuf *h) {
  if (!h) return;
  if (!rb->spare || rb->spare->cap < h->cap) {
    free(rb->spare);
    rb->spare = h;
  } else {
    free(h);
  }
}

/* Nothing buffered: the op's memory (n bytes, the first skip of them
 * already taken) becomes the buffer, no copy; the old storage becomes the
 * spare. */
static void adopt(struct lmp_rbuf *rb, struct mp_op *op, size_t n,
                  size_t skip) {
  struct opbuf *h = op->owned, *old = rb->blk;
  rb->p = lmp_rbuf_opdata(op);
  op->owned = NULL;
  rb->blk = h;
  rb->cap = h->cap;
  rb->off = 0;
  rb->tpos = skip; /* committed by finish_ok */
  rb->len = n;
  rb->scanned = 0;
  keep_spare(rb, old);
}

/* Absorbs a completed fill op, n what vt->done made of it. Returns 0
 * (bytes buffered, or EOF noted), 1 (the last format was served straight
 * from the op's memory and pushed), or an error code. Releases op. live:
 * the rbuf the op was started for, if still attached (the object is open:
 * close and __gc detach it), else NULL: then the object is checked again.
 * *rbp: the object's rbuf when known (else NULL). */
static int absorb(lua_State *L, const struct lmp_rbuf_vt *vt,
                  struct mp_op *op, int64_t n, struct lmp_rbuf *live,
                  struct lmp_rbuf **rbp) {
  struct lmp_rbuf *rb = NULL;
  int r = 0;
  if (n == LMP_RBUF_RETRY) {
    r = 0;
  } else if (n < 0) {
    r = (int)n;
  } else if (n == 0) {
    rb = live ? live : vt->check(L);
    rb->eof = 1;
  } else {
    char *data = lmp_rbuf_opdata(op);
    size_t direct, skip = 0;
    rb = live ? live : vt->check(L);
    direct = direct_size(L, rb);
    if (direct && (size_t)n >= direct) { /* straight into the string */
      lua_pushlstring(L, data, direct);
      skip = direct;
      r = 1;
    }
    if ((size_t)n > skip && rb->off == rb->len) {
      adopt(rb, op, (size_t)n, skip);
    } else if ((size_t)n > skip) {
      int e = reserve(rb, (size_t)n - skip);
      if (e == 0) {
        memcpy(rb->p + rb->len, data + skip, (size_t)n - skip);
        rb->len += (size_t)n - skip;
      } else {
        r = e;
      }
    }
  }
  if (rb && r >= 0 && op->owned) { /* the op no longer needs it */
    keep_spare(rb, op->owned);
    op->owned = NULL;
  }
  mp_op_release(op);
  *rbp = rb;
  return r;
}

/* Continuation after a fill inside a task. */
static int rbuf_k(lua_State *L, struct mp_op *op) {
  const struct lmp_rbuf_vt *vt = lua_touserdata(L, 2);
  struct opbuf *h = op->owned;
  struct lmp_rbuf *live = h->rb, *rb;
  if (live) { /* not busy any more */
    live->pending = NULL;
    h->rb = NULL;
  }
  /* vt->done first: it notices a closed object */
  int r = absorb(L, vt, op, vt->done(L, op), live, &rb);
  if (r < 0) return finish_err(L, vt, NULL, r);
  if (r == 1) return finish_ok(L, rb, 3 + NFMT(L));
  return engine(L, vt, rb); /* checked by absorb, or NULL */
}

/* Continuation after a fill in the main context (no task): returns to
 * engine's loop instead of recursing, so a long "a" cannot grow the C
 * stack. */
static int main_k(lua_State *L, struct mp_op *op) {
  const struct lmp_rbuf_vt *vt = lua_touserdata(L, 2);
  struct opbuf *h = op->owned;
  if (h->rb) {
    h->rb->pending = NULL;
    h->rb = NULL;
  }
  struct lmp_rbuf *rb;
  return absorb(L, vt, op, vt->done(L, op), NULL, &rb);
}

/* Links a fill op started by vt->start to rb, behind rbuf_op_cb. */
static void arm(struct lmp_rbuf *rb, struct mp_op *op) {
  struct opbuf *h = op->owned;
  if (op->cb) h->next_cb = op->cb;
  op->cb = rbuf_op_cb;
  h->rb = rb;
  rb->pending = op;
}

/* rb: the object's rbuf when the caller has just checked it, or NULL. */
static int engine(lua_State *L, const struct lmp_rbuf_vt *vt,
                  struct lmp_rbuf *rb) {
  int nfmt = NFMT(L), flags = FLAGS(L), base = 3 + nfmt;
  struct lmp_state *S = lmp_state(L);
  for (;; rb = NULL) { /* after a wait, the object may be closed */
    size_t want = 0;
    int err = 0, pr = P_OK, kind = F_LINE;
    lua_Integer count = 0;
    if (!rb) rb = vt->check(L);
    while (lua_gettop(L) - base < nfmt) {
      int idx = 4 + (lua_gettop(L) - base);
      luaL_checkstack(L, 4, "too many results");
      kind = fmt_kind(L, idx, &count);
      pr = parse_one(L, rb, kind, count, flags, &want, &err);
      if (pr != P_OK) break;
    }
    if (pr == P_OK) return finish_ok(L, rb, base);
    if (pr == P_ERR) return finish_err(L, vt, rb, err);
    if (pr == P_FAIL || pr == P_BAD) {
      if (pr == P_FAIL && (flags & LMP_RBUF_STREAM)) {
        int n = lua_gettop(L) - base;
        finish_ok(L, rb, base);
        vt->fail(L, MP_EOF);
        if (flags & LMP_RBUF_RAISE)
          return luaL_error(L, "%s", lua_tostring(L, -2));
        return n + 3;
      }
      lua_pushnil(L);
      return finish_ok(L, rb, base);
    }
    /* P_NEED: read more. Sizes: at least a chunk, the missing part of a
     * count, or as much as is buffered ("a" doubles), at most MAXREAD. */
    size_t sz = want > LMP_RBUF_CHUNK ? want : LMP_RBUF_CHUNK;
    if (sz > LMP_RBUF_MAXREAD) sz = LMP_RBUF_MAXREAD;
    {
      int nres = lua_gettop(L) - base;
      /* a count that is the last format, into an empty buffer: read it
       * and some more (LMP_RBUF_AHEAD): the first bytes go straight into
       * the Lua string, the rest stays for the next reads, in the same
       * memory (absorb adopts it): one op per AHEAD bytes, one copy */
      if (nres == nfmt - 1 && rb->tpos == rb->len &&
          kind == F_COUNT && count > 0 &&
          (size_t)count >= LMP_RBUF_CHUNK)
        sz = (size_t)count > LMP_RBUF_AHEAD ? (size_t)count : LMP_RBUF_AHEAD;
      if (sz > LMP_RBUF_MAXREAD) sz = LMP_RBUF_MAXREAD;
    }
    if (rb->trynow) { /* bytes there for the taking: no op, no wait */
      int64_t n = rb->trynow(rb, sz);
      if (n == 0) rb->eof = 1;
      if (n >= 0) continue;
      if (n != MP_EAGAIN) return finish_err(L, vt, rb, (int)n);
    }
    struct mp_op *op = vt->start(L, sz, &err);
    if (!op) return finish_err(L, vt, rb, err);
    arm(rb, op);
    if (!lmp_self(S)->is_main) return lmp_await(L, op, rbuf_k, vt->fname);
    int r = lmp_await(L, op, main_k, vt->fname);
    if (r < 0) return finish_err(L, vt, NULL, r);
    if (r == 1) return finish_ok(L, vt->check(L), base);
  }
}

/* The formats of a lines iterator (upvalues 3, 4..): 1 one "l" (or
 * none), 2 one "L", else 0. */
static int line_format(lua_State *L) {
  lua_Integer n = lua_tointeger(L, lua_upvalueindex(3));
  if (n == 0) return 1;
  if (n > 1 || lua_type(L, lua_upvalueindex(4)) != LUA_TSTRING) return 0;
  const char *s = lua_tostring(L, lua_upvalueindex(4));
  if (*s == '*') s++;
  return *s == 'l' ? 1 : *s == 'L' ? 2 : 0;
}

/* Pushes the whole line buffered at off (keep: with its '\n'), consumed
 * (committed, as finish_ok does): 1; 0 when no whole line within the
 * limit is buffered or a read is in flight (the engine's case). */
static int take_line(lua_State *L, struct lmp_rbuf *rb, int keep) {
  size_t avail = rb->len - rb->off;
  const char *p = rb->p + rb->off, *nl = memchr(p, '\n', avail);
  if (!nl || (size_t)(nl - p) > rb->maxline) return 0;
  size_t n = (size_t)(nl - p);
  lua_pushlstring(L, p, keep ? n + 1 : n);
  rb->off += n + 1;
  rb->tpos = rb->off;
  rb->scanned = 0;
  if (rb->off == rb->len) rb->off = rb->tpos = rb->len = 0;
  return 1;
}

int lmp_rbuf_line(lua_State *L, struct lmp_rbuf *rb) {
  int kind;
  if (rb->pending || rb->off == rb->len || !(kind = line_format(L)))
    return 0;
  return take_line(L, rb, kind == 2);
}

int lmp_rbuf_read_line(lua_State *L, struct lmp_rbuf *rb, int kind) {
  if (rb->pending || rb->off == rb->len) return 0;
  return take_line(L, rb, kind == 2);
}

int lmp_rbuf_read(lua_State *L, const struct lmp_rbuf_vt *vt, int flags) {
  return lmp_rbuf_read_on(L, vt, vt->check(L), flags);
}

/* The engine's stack layout (see the top) over the formats at 2..top. */
static void layout(lua_State *L, const struct lmp_rbuf_vt *vt, int flags) {
  int nfmt = lua_gettop(L) - 1;
  lua_pushlightuserdata(L, (void *)vt);
  lua_insert(L, 2);
  lua_pushinteger(L, (lua_Integer)nfmt * 4 + (flags & 3));
  lua_insert(L, 3);
}

int lmp_rbuf_line_kind(lua_State *L) {
  int top = lua_gettop(L);
  if (top == 1) return 1;
  if (top != 2 || lua_type(L, 2) != LUA_TSTRING) return 0;
  const char *s = lua_tostring(L, 2);
  if (*s == '*') s++;
  return *s == 'l' ? 1 : *s == 'L' ? 2 : 0;
}

/* Continuation of a line wait (LMP_RBUF_WAITLINE): the stack is the
 * object and its format, if any. A fill that brought a whole line is
 * adopted as the buffer and the line taken from it; anything else (no
 * line yet, EOF, an error, a closed object) continues as the engine would
 * have after the same fill. */
static int line_k(lua_State *L, struct mp_op *op) {
  struct opbuf *h = op->owned;
  const struct lmp_rbuf_vt *vt = h->vt;
  struct lmp_rbuf *live = h->rb, *rb;
  int flags = h->flags, keep = (flags & LMP_RBUF_KEEPNL) != 0;
  if (live) { /* not busy any more */
    live->pending = NULL;
    h->rb = NULL;
  }
  int64_t n = vt->done(L, op); /* first: it notices a closed object */
  if (n > 0 && live && live->off == live->len) {
    adopt(live, op, (size_t)n, 0);
    mp_op_release(op);
    if (take_line(L, live, keep)) return 1;
    if (lua_gettop(L) < 2) lua_pushliteral(L, "l");
    layout(L, vt, flags);
    return engine(L, vt, live);
  }
  if (lua_gettop(L) < 2) lua_pushliteral(L, "l");
  layout(L, vt, flags);
  int r = absorb(L, vt, op, n, live, &rb);
  if (r < 0) return finish_err(L, vt, NULL, r);
  return engine(L, vt, rb); /* no count: r is 0 */
}

int lmp_rbuf_read_on(lua_State *L, const struct lmp_rbuf_vt *vt,
                     struct lmp_rbuf *rb, int flags) {
  if ((flags & LMP_RBUF_WAITLINE) && !rb->pending && rb->off == rb->len) {
    /* Nothing buffered: the engine would ask for a chunk right away. */
    int err;
    struct mp_op *op = vt->start(L, LMP_RBUF_CHUNK, &err);
    if (op) {
      struct opbuf *h = op->owned;
      rb->tpos = rb->off;
      rb->scanned = 0;
      rb->eof = 0;
      h->vt = vt;
      h->flags = flags;
      arm(rb, op);
      return lmp_await(L, op, line_k, vt->fname);
    }
  }
  if (lua_gettop(L) < 2) lua_pushliteral(L, "l");
  lmp_rbuf_check_formats(L, 2);
  if (rb->pending)
    return luaL_error(L, "%s: another task is already reading", vt->fname);
  rb->tpos = rb->off;
  rb->scanned = 0;
  rb->eof = 0;
  layout(L, vt, flags);
  return engine(L, vt, rb);
}
