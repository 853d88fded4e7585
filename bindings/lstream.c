/* lstream.c: TCP and Unix-domain streams (mp.net): read formats on the
 * lbuf engine, recv, write with its non-blocking fast path, shutdown,
 * connect. The socket base is lsock.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsock.h"
#include "ltls.h"
#include "mp_os.h"

enum {
  FILL_SIZE = 16384,      /* bytes asked for per receive by read() */
  RECV_MAX = 65536,       /* largest single recv(max) op */
  WRITE_IOV = 64          /* args sent at once on the fast path */
};

/* ---- streams ---- */

/* Every stream method checks its object. A full userdata whose block is
 * one of the state's live streams (S->streams, kept by lsock.c) is one:
 * a hash and a probe, where luaL_testudata looks the metatable up in the
 * registry by name and even a metatable compare takes six API calls.
 * Anything else (other callers, errors) takes lsock_check. */
static struct lsock *check_stream(lua_State *L, const char *fname) {
  if (lua_type(L, 1) == LUA_TUSERDATA) {
    struct lsock *s = lua_touserdata(L, 1);
    struct lmp_state *S = lmp_state(L); /* (every caller has it) */
    if (S && lmp_ptrset_has(&S->streams, s) && !s->closed) return s;
  }
  return lsock_check(L, 1, LSOCK_STREAM, fname);
}

static void no_reader(lua_State *L, struct lsock *s, const char *fname) {
  if (s->reading || s->rb.pending)
    luaL_error(L, "%s: another task is reading from this stream", fname);
}

/* Pushes up to max buffered bytes (recv after read left some). */
static int rb_push(lua_State *L, struct lmp_rbuf *b, size_t max) {
  size_t n = lmp_rbuf_avail(b);
  if (n > max) n = max;
  lua_pushlstring(L, b->p + b->off, n);
  b->off += n;
  if (b->off == b->len) b->off = b->len = 0;
  b->tpos = b->off;
  return 1;
}

static int eof_fail(lua_State *L, struct lsock *s, const char *what) {
  return lsock_fail(L, s, LMP_EEOS, what);
}

static int recv_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct lsock_req *r = op->owned;
  if (op->result < 0 || r->closed) return lsock_fail_op(L, s, op, "recv");
  if (op->result == 0) {
    mp_op_release(op);
    s->eof = 1;
    return eof_fail(L, s, "recv");
  }
  s->drained = (size_t)op->result < r->len; /* (see rd_done) */
  lua_pushlstring(L, r->data, (size_t)op->result);
  mp_op_release(op);
  return 1;
}

static int stream_recv(lua_State *L) {
  struct lsock *s = check_stream(L, "recv");
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max > 0, 2, "positive size expected");
  no_reader(L, s, "recv");
  lua_settop(L, 2);
  if (lmp_rbuf_avail(&s->rb)) return rb_push(L, &s->rb, (size_t)max);
  if (s->eof) return eof_fail(L, s, "recv");
  size_t n = max > RECV_MAX ? RECV_MAX : (size_t)max;
  if (s->tls) {
    if (!ltls_ready(s)) return ltls_handshake_then(L, s, stream_recv,
                                                   "recv", 0);
    return ltls_recv(L, s, n);
  }
  struct mp_op *op = lsock_op(L, s, n, lsock_deadline(s));
  lsock_req(op)->dir = LSOCK_RD;
  lsock_prep_in(op, s, lsock_req(op)->data, n);
  if (s->drained) mp_op_poll_first(op); /* (a RECV's hint only) */
  return lsock_await(L, s, op, recv_k, "recv");
}

/* ---- read(formats): the lbuf engine, fed by recv ops ---- */

static struct lmp_rbuf *rd_check(lua_State *L) {
  return &check_stream(L, "read")->rb;
}

static struct lsock_req *rd_req(struct mp_op *op) {
  return (struct lsock_req *)(intptr_t)*lmp_rbuf_optag(op);
}

/* Runs after lbuf's own callback (which chains here). */
static void rd_op_cb(struct mp_op *op) {
  struct lsock_req *r = rd_req(op);
  if (r->linked && r->s && r->s->tls) /* ciphertext: never dropped */
    ltls_feed(r->s, op, lmp_rbuf_opdata(op));
  lsock_req_finish(r);
  lmp_task_op_cb(op);
}

/* One receive into memory the op owns; the request record sits after the
 * bytes the kernel may write. */
static struct mp_op *rd_start(lua_State *L, size_t want, int *err) {
  struct lsock *s = lua_touserdata(L, 1);
  /* The engine asks for at least a 64 KiB chunk; an idle keep-alive
   * connection waiting for its next line would pin that much. Lines and
   * small reads get FILL_SIZE; bigger explicit needs keep their size. */
  if (want == LMP_RBUF_CHUNK || want < FILL_SIZE) want = FILL_SIZE;
  struct mp_op *op = mp_op_new(s->S->loop, rd_op_cb, NULL);
  size_t at = (want + 15) & ~(size_t)15;
  char *buf;
  if (!op || !(buf = lmp_rbuf_opbuf(&s->rb, op,
                                      at + sizeof(struct lsock_req)))) {
    if (op) mp_op_release(op);
    *err = MP_ENOMEM;
    return NULL;
  }
  struct lsock_req *r = (struct lsock_req *)(buf + at);
  memset(r, 0, sizeof *r);
  r->op = op;
  r->deadline = s->rddl;
  r->dir = LSOCK_RD;
  r->len = want;
  *lmp_rbuf_optag(op) = (int64_t)(intptr_t)r;
  if (s->tls && ltls_readable(s)) mp_op_prep_nop(op); /* no IO needed */
  else lsock_prep_in(op, s, buf, want);
  if (s->drained) mp_op_poll_first(op); /* (a RECV's hint only) */
  if (lsock_req_link(s, r) < 0) {
    mp_op_release(op);
    *err = MP_ENOMEM;
    return NULL;
  }
  return op;
}

static int64_t rd_done(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct lsock_req *r = rd_req(op);
  lsock_req_finish(r);
  if (op->kind == MP_OP_RECV)
    s->drained = op->result > 0 && (size_t)op->result < r->len;
  if (r->closed || s->closed) return MP_ECLOSED;
  if (op->result == MP_ECANCELED && r->timed_out) return LMP_ETIMEOUT;
  if (s->tls && op->result >= 0)
    return ltls_decrypt(s, op->kind == MP_OP_NOP ? -1 : op->result,
                        lmp_rbuf_opdata(op), r->len);
  return op->result;
}

static int rd_fail(lua_State *L, int err) {
  struct lsock *s = luaL_testudata(L, 1, LSOCK_STREAM_MT);
  if (s && s->closed) s = NULL;
  if (err == LMP_ETLS || err == LMP_ECERT) return ltls_fail(L, s, err, "read");
  return lsock_rbuf_fail(L, s, err == MP_EOF ? LMP_EEOS : err, "read");
}

static const struct lmp_rbuf_vt stream_vt = {
  "read", rd_check, rd_start, rd_done, rd_fail,
};

static int stream_read(lua_State *L) {
  struct lsock *s = check_stream(L, "read");
  if (s->reading || s->rb.pending)
    return luaL_error(L, "read: another task is reading from this stream");
  if (s->tls && !ltls_ready(s))
    return ltls_handshake_then(L, s, stream_read, "read", 0);
  /* a whole line buffered (a request's headers): no format engine */
  int kind = lmp_rbuf_line_kind(L);
  if (kind && lmp_rbuf_read_line(L, &s->rb, kind)) return 1;
  s->rddl = lsock_deadline(s);
  return lmp_rbuf_read_on(L, &stream_vt, &s->rb, LMP_RBUF_STREAM |
                          (kind ? LMP_RBUF_WAITLINE : 0) |
                          (kind == 2 ? LMP_RBUF_KEEPNL : 0));
}

/* stream:lines(...): an iterator over read(...) (default "l"), as
 * file:lines: nil at the end of the stream, errors raise. Upvalues: S,
 * the stream, the count of formats, the formats. */
static int lines_iter(lua_State *L) {
  int n = (int)lua_tointeger(L, lua_upvalueindex(3));
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(2));
  struct lsock *s = luaL_testudata(L, 1, LSOCK_STREAM_MT);
  if (!s || s->closed) return luaL_error(L, "stream is already closed");
  for (int i = 1; i <= n; i++) lua_pushvalue(L, lua_upvalueindex(3 + i));
  if (s->reading || s->rb.pending)
    return luaL_error(L, "read: another task is reading from this stream");
  if (s->tls && !ltls_ready(s))
    return ltls_handshake_then(L, s, lines_iter, "read", 1);
  s->rddl = lsock_deadline(s);
  return lmp_rbuf_read(L, &stream_vt, LMP_RBUF_RAISE);
}

static int stream_lines(lua_State *L) {
  check_stream(L, "lines");
  return lmp_rbuf_lines(L, lines_iter);
}

/* ---- write ---- */

static int write_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct lsock_req *r = op->owned;
  if (op->result < 0 || r->closed) {
    lua_Integer sent = (lua_Integer)(r->base + r->off);
    lsock_fail_op(L, s, op, "write");
    lua_pushinteger(L, sent);
    return 4;
  }
  r->off += (size_t)op->result;
  if (r->off < r->len) {
    lsock_prep_out(op, s, r->data + r->off, r->len - r->off);
    return lsock_await(L, s, op, write_k, "write");
  }
  mp_op_release(op);
  lua_settop(L, 1);
  return 1;
}

static int stream_write(lua_State *L) {
  struct lsock *s = check_stream(L, "write");
  int n = lua_gettop(L) - 1;
  struct mp_iov iov[WRITE_IOV];
  size_t total = 0, sent = 0;
  if (s->writing)
    return luaL_error(L, "write: another task is writing to this stream");
  for (int i = 0; i < n; i++) {
    size_t len;
    const char *p = luaL_checklstring(L, 2 + i, &len);
    if (i < WRITE_IOV) {
      iov[i].base = p;
      iov[i].len = len;
    }
    total += len;
  }
  if (total == 0) {
    lua_settop(L, 1);
    return 1;
  }
  if (s->tls) {
    if (!ltls_ready(s)) return ltls_handshake_then(L, s, stream_write,
                                                   "write", 0);
    return ltls_write(L, s, n);
  }
  /* Fast path: hand as much as the kernel takes right now (a socket: a
   * pipe may be blocking, and its mode is not ours to change). */
  if (n <= WRITE_IOV && !s->pipe) {
    int64_t r = mp_os_trysend(lsock_fd(s), iov, n);
    if (r < 0 && r != MP_EAGAIN) {
      lsock_fail(L, s, (int)r, "write");
      lua_pushinteger(L, 0);
      return 4;
    }
    if (r > 0) sent = (size_t)r;
    if (sent == total) {
      lua_settop(L, 1);
      return 1;
    }
  }
  /* The rest goes to an op; the bytes are copied (a Lua string may be
   * collected while the kernel still reads it). */
  struct mp_op *op = lsock_op(L, s, total - sent, lsock_deadline(s));
  struct lsock_req *r = op->owned;
  size_t skip = sent, at = 0;
  for (int i = 0; i < n; i++) {
    size_t len;
    const char *p = lua_tolstring(L, 2 + i, &len);
    if (skip >= len) {
      skip -= len;
      continue;
    }
    memcpy(r->data + at, p + skip, len - skip);
    at += len - skip;
    skip = 0;
  }
  r->base = sent;
  r->dir = LSOCK_WR;
  lua_settop(L, 1);
  lsock_prep_out(op, s, r->data, r->len);
  return lsock_await(L, s, op, write_k, "write");
}

static int stream_shutdown(lua_State *L) {
  struct lsock *s = check_stream(L, "shutdown");
  if (s->tls) return ltls_shutdown(L, s);
  int r = mp_os_shutdown(lsock_fd(s));
  if (r < 0) return lsock_fail(L, s, r, "shutdown");
  lua_pushboolean(L, 1);
  return 1;
}

static int stream_settimeout(lua_State *L) {
  return lsock_settimeout(L, LSOCK_STREAM, "settimeout");
}

static int stream_setoption(lua_State *L) {
  return lsock_setoption(L, LSOCK_STREAM);
}

static int stream_peername(lua_State *L) {
  return lsock_push_name(L, check_stream(L, "peername"), 1);
}

static int stream_close(lua_State *L) { return lsock_close(L, LSOCK_STREAM); }

/* ---- connect: core.net_connect(packed address, timeout) ---- */

static int connect_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 3);
  struct lsock_req *r = op->owned;
  if (op->result < 0 || r->closed) {
    char addr[160], what[200];
    lsock_format_addr((const struct mp_addr *)r->data, addr, sizeof addr);
    snprintf(what, sizeof what, "connect %s", addr);
    int err = op->result == MP_ECANCELED && r->timed_out ? LMP_ETIMEOUT
                                                         : (int)op->result;
    mp_op_release(op);
    if (!s->closed) lsock_shut(s);
    return lmp_fail(L, err, what);
  }
  mp_op_release(op);
  lua_settop(L, 3);
  return 1;
}

static int l_connect(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct mp_addr a;
  mp_handle_t fd;
  lsock_check_addr(L, 1, &a);
  lua_Number t = luaL_optnumber(L, 2, -1);
  lua_settop(L, 2);
  int family = mp_addr_family(&a), err = mp_os_socket(family,
                                                      MP_SOCK_STREAM, &fd);
  if (err < 0) return lmp_fail(L, err, "connect");
  struct lsock *s = lsock_push(L, S, LSOCK_STREAM, fd, family);
  int64_t deadline = 0;
  if (t >= 0 && t < 4.6e9) {
    s->timeout = (int64_t)(t * 1e9);
    deadline = lsock_deadline(s);
    s->timeout = -1;
  }
  struct mp_op *op = lsock_op(L, s, sizeof a, deadline);
  memcpy(lsock_req(op)->data, &a, sizeof a); /* for the error message */
  if (mp_op_prep_connect(op, fd, &a) < 0) {
    mp_op_release(op);
    return lsock_fail(L, s, MP_ENOMEM, "connect");
  }
  return lsock_await(L, s, op, connect_k, "connect");
}

/* ---- core.net_wrap(fd): adopts an inherited descriptor ---- */

static int l_wrap(lua_State *L) {
  static const int types[] = {LSOCK_STREAM, LSOCK_SERVER, LSOCK_UDP,
                              LSOCK_STREAM};
  struct lmp_state *S = lmp_state(L);
  lua_Integer fd = luaL_checkinteger(L, 1);
  int kind, family, err;
  char what[48];
  luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 1, "descriptor expected");
  snprintf(what, sizeof what, "wrap %d", (int)fd);
  if ((err = mp_os_adopt((mp_handle_t)(intptr_t)fd, &kind, &family)) < 0)
    return lmp_fail(L, err, what);
  struct lsock *s = lsock_push(L, S, types[kind],
                               (mp_handle_t)(intptr_t)fd, family);
  s->pipe = kind == MP_HK_PIPE;
  return 1;
}

void lmp_open_socket(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg stream[] = {
    {"read", stream_read}, {"lines", stream_lines}, {"recv", stream_recv},
    {"write", stream_write},
    {"shutdown", stream_shutdown}, {"settimeout", stream_settimeout},
    {"setoption", stream_setoption}, {"peername", stream_peername},
    {"sockname", lsock_sockname}, {"close", stream_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"net_connect", l_connect}, {"net_wrap", l_wrap}, {NULL, NULL}};
  lsock_new_type(L, S, LSOCK_STREAM_MT, stream);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
