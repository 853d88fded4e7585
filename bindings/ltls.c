/* ltls.c: TLS on mp.net streams with OpenSSL 3 (ltls.h, docs/tls.md).
 *
 * OpenSSL never touches the socket: each session reads ciphertext from a
 * memory BIO (rbio) that the stream's recv ops fill, and writes it into
 * another (wbio) that send ops drain. Those ops own their buffers like
 * every other socket op, so close, cancel and timeouts behave as on a
 * plain stream, and the same code runs on io_uring, epoll and IOCP.
 *
 * Contexts (SSL_CTX) are made in ltlsctx.c. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ltls.h"
#include "ltlsctx.h"
#include "mp_os.h"

#ifdef MP_WITH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

enum {
  HS_CHUNK = 16 * 1024,        /* handshake: ciphertext per recv/send */
  RECV_CHUNK = 16 * 1024 + 512, /* recv(max): at least one full record */
  POLL_NS = 2000000            /* a second task waiting for the handshake
                                  checks every 2 ms */
};

struct ltls {
  struct lsock_tls base;   /* first: s->tls points here */
  struct ctx *ctx;
  SSL *ssl;                /* streams; NULL on a server */
  BIO *rbio, *wbio;        /* owned by ssl */
  int64_t hs_timeout;      /* ns: handshake deadline without settimeout */
  int err;                 /* the handshake's failure */
  unsigned char done;      /* handshake done */
  unsigned char busy;      /* a task runs the handshake */
  unsigned char failed;    /* the handshake failed: err, reason */
  unsigned char rdmore;    /* the last decrypt filled its buffer */
  unsigned char peer_closed; /* close_notify received */
  unsigned char rderr;     /* a record failed after bytes were returned */
  unsigned char shut;      /* our close_notify is written */
  char reason[200];
};

static struct ltls *tls_of(struct lsock *s) { return (struct ltls *)s->tls; }

/* ---- errors ---- */

/* The library's reason for the last failure, or dflt. */
static void set_reason(struct ltls *t, const char *dflt) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  snprintf(t->reason, sizeof t->reason, "%s", r ? r : dflt);
  ERR_clear_error();
}

static int push_fail(lua_State *L, struct lsock *s, int err,
                     const char *what, const char *reason) {
  lsock_fail(L, s, err, what);
  if ((err == LMP_ETLS || err == LMP_ECERT) && reason && reason[0]) {
    lua_pushfstring(L, "%s (%s)", lua_tostring(L, -2), reason);
    lua_replace(L, -3);
  }
  return 3;
}

int ltls_fail(lua_State *L, struct lsock *s, int err, const char *what) {
  struct ltls *t = s && !s->closed ? tls_of(s) : NULL;
  return push_fail(L, s, err, what, t ? t->reason : NULL);
}

/* ---- sessions ---- */

/* Sends what wbio holds without waiting (an alert, a close_notify, a
 * key update's answer); what the socket does not take stays queued for
 * the next write. Never while a send op is in flight (order). */
static void flush_now(struct lsock *s, struct ltls *t) {
  char *p;
  long n = BIO_get_mem_data(t->wbio, &p);
  if (n <= 0 || s->writing || lsock_fd(s) == MP_INVALID_HANDLE) return;
  struct mp_iov iov = {p, (size_t)n};
  int64_t r = mp_os_trysend(lsock_fd(s), &iov, 1);
  char tmp[4096];
  while (r > 0) {
    int k = BIO_read(t->wbio, tmp, r > (int64_t)sizeof tmp ? (int)sizeof tmp
                                                           : (int)r);
    if (k <= 0) break;
    r -= k;
  }
}

/* lsock_shut: close_notify (best effort, never waiting), then free. */
static void stream_release(struct lsock *s) {
  struct ltls *t = tls_of(s);
  if (t->done && !t->failed && !t->shut && !s->writing) {
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    flush_now(s, t);
  }
  ERR_clear_error();
  SSL_free(t->ssl);
  ltls_ctx_unref(t->ctx);
  free(t);
  s->tls = NULL;
}

static void server_release(struct lsock *s) {
  struct ltls *t = tls_of(s);
  ltls_ctx_unref(t->ctx);
  free(t);
  s->tls = NULL;
}

static struct ltls *attach(lua_State *L, struct lsock *s, struct ctx *c,
                           int server) {
  struct ltls *t = calloc(1, sizeof *t);
  if (!t) {
    luaL_error(L, "not enough memory");
    return NULL;
  }
  t->ssl = SSL_new(c->ssl);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    luaL_error(L, "not enough memory");
    return NULL;
  }
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  if (server) SSL_set_accept_state(t->ssl);
  else SSL_set_connect_state(t->ssl);
  t->base.release = stream_release;
  t->ctx = c;
  c->refs++;
  t->hs_timeout = -1;
  s->tls = &t->base;
  return t;
}

void ltls_accepted(lua_State *L, struct lsock *server, struct lsock *c) {
  struct ltls *st = tls_of(server);
  struct ltls *t = attach(L, c, st->ctx, 1);
  t->hs_timeout = st->hs_timeout;
}

int ltls_ready(struct lsock *s) {
  struct ltls *t = tls_of(s);
  return t->done && !t->failed;
}

int ltls_readable(struct lsock *s) {
  struct ltls *t = tls_of(s);
  return t->rdmore || t->peer_closed || t->rderr;
}

void ltls_feed(struct lsock *s, struct mp_op *op, const char *buf) {
  struct ltls *t = tls_of(s);
  if (op->kind != MP_OP_RECV || op->result <= 0 || t->rderr) return;
  t->rdmore = 1; /* for the next read, if this one's continuation never
                    runs (cancel, mp.timeout) */
  if (BIO_write(t->rbio, buf, (int)op->result) != op->result) {
    snprintf(t->reason, sizeof t->reason, "out of memory");
    t->rderr = 1;
  }
}

/* ---- the handshake ----
 *
 * One op carries it from start to end (its deadline covers all of it):
 * it sends what OpenSSL wrote, receives when OpenSSL wants more, and at
 * the end the method that needed the handshake runs again. Its request
 * payload starts with the method to run. A second task needing the
 * handshake meanwhile polls until it is over. An interrupted handshake
 * (cancel, mp.timeout) leaves a session that cannot be resumed: the
 * stream then fails every operation. */

struct hsreq {
  lua_CFunction fn;
  const char *fname;
  int raise;       /* a lines iterator: failures raise */
};
#define HS_HEAD 32 /* sizeof(struct hsreq), rounded up to 16 */
_Static_assert(sizeof(struct hsreq) <= HS_HEAD, "HS_HEAD too small");
#define HS_BUF(r) ((r)->data + HS_HEAD)

static void hs_broken(struct ltls *t, int err, const char *reason) {
  t->busy = 0;
  t->failed = 1;
  t->err = err;
  snprintf(t->reason, sizeof t->reason, "%s", reason);
}

/* Feeds what a receive brought (first run); marks the handshake broken
 * when the op is given up without its continuation running. */
static void hs_op_cb(struct mp_op *op) {
  struct lsock_req *r = op->owned;
  if (r->linked && r->s && r->s->tls) ltls_feed(r->s, op, HS_BUF(r));
  if (!op->data && r->s && r->s->tls && !r->s->closed &&
      tls_of(r->s)->busy)
    hs_broken(tls_of(r->s), LMP_ETLS, "handshake interrupted");
  lsock_req_finish(r);
  lmp_task_op_cb(op);
}

static int hs_step(lua_State *L, struct lsock *s, struct mp_op *op);

/* The failure just pushed (nil, msg, code), raised for an iterator. */
static int hs_ret(lua_State *L, int raise) {
  if (raise) return luaL_error(L, "%s", lua_tostring(L, -2));
  return 3;
}

static int hs_await(lua_State *L, struct lsock *s, struct mp_op *op,
                    lmp_done k) {
  struct hsreq *h = (struct hsreq *)lsock_req(op)->data;
  if (lsock_req_link(s, op->owned) < 0) {
    const char *fname = h->fname;
    int raise = h->raise;
    hs_broken(tls_of(s), MP_ENOMEM, "");
    mp_op_release(op);
    lsock_fail(L, s, MP_ENOMEM, fname);
    return hs_ret(L, raise);
  }
  return lmp_await(L, op, k, h->fname);
}

static int hs_io_fail(lua_State *L, struct lsock *s, struct mp_op *op) {
  struct lsock_req *r = op->owned;
  const char *fname = ((struct hsreq *)r->data)->fname;
  int raise = ((struct hsreq *)r->data)->raise;
  if (!s->closed && s->tls) {
    int err = op->result == MP_ECANCELED && r->timed_out ? LMP_ETIMEOUT
                                                         : (int)op->result;
    hs_broken(tls_of(s), err, "");
  }
  lsock_fail_op(L, s, op, fname);
  return hs_ret(L, raise);
}

static int hs_sent_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct lsock_req *r = op->owned;
  if (op->result < 0 || r->closed || s->closed) return hs_io_fail(L, s, op);
  r->off += (size_t)op->result;
  if (r->off < r->len) {
    lsock_prep_out(op, s, HS_BUF(r) + r->off, r->len - r->off);
    return hs_await(L, s, op, hs_sent_k);
  }
  return hs_step(L, s, op);
}

static int hs_recv_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct lsock_req *r = op->owned;
  if (op->result < 0 || r->closed || s->closed) return hs_io_fail(L, s, op);
  struct ltls *t = tls_of(s);
  struct hsreq *h = (struct hsreq *)r->data;
  const char *fname = h->fname;
  int raise = h->raise;
  if (op->result == 0) {
    hs_broken(t, LMP_ETLS, "connection closed during the handshake");
    mp_op_release(op);
    ltls_fail(L, s, LMP_ETLS, fname);
    return hs_ret(L, raise);
  }
  if (t->rderr) { /* ltls_feed ran out of memory */
    hs_broken(t, MP_ENOMEM, "");
    mp_op_release(op);
    lsock_fail(L, s, MP_ENOMEM, fname);
    return hs_ret(L, raise);
  }
  return hs_step(L, s, op);
}

/* Why the handshake failed: the certificate check, else the protocol. */
static void hs_error(struct ltls *t) {
  long v = SSL_get_verify_result(t->ssl);
  if (v != X509_V_OK && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER)) {
    t->err = LMP_ECERT;
    snprintf(t->reason, sizeof t->reason, "%s",
             X509_verify_cert_error_string(v));
    ERR_clear_error();
  } else {
    t->err = LMP_ETLS;
    set_reason(t, "handshake failed");
  }
  t->failed = 1;
  t->busy = 0;
}

static int hs_step(lua_State *L, struct lsock *s, struct mp_op *op) {
  struct ltls *t = tls_of(s);
  struct lsock_req *r = op->owned;
  struct hsreq *h = (struct hsreq *)r->data;
  for (;;) {
    size_t out = BIO_ctrl_pending(t->wbio);
    if (out) {
      int n = BIO_read(t->wbio, HS_BUF(r), out > HS_CHUNK ? HS_CHUNK
                                                          : (int)out);
      r->off = 0;
      r->len = n > 0 ? (size_t)n : 0;
      lsock_prep_out(op, s, HS_BUF(r), r->len);
      return hs_await(L, s, op, hs_sent_k);
    }
    if (t->done) break;
    ERR_clear_error();
    int k = SSL_do_handshake(t->ssl);
    if (k == 1) {
      t->done = 1;
      continue; /* send what is left (a Finished, tickets) */
    }
    if (SSL_get_error(t->ssl, k) == SSL_ERROR_WANT_READ) {
      if (BIO_ctrl_pending(t->wbio)) continue;
      lsock_prep_in(op, s, HS_BUF(r), HS_CHUNK);
      return hs_await(L, s, op, hs_recv_k);
    }
    hs_error(t);
    flush_now(s, t); /* the alert, if the socket takes it */
    const char *fname = h->fname;
    int raise = h->raise;
    mp_op_release(op);
    ltls_fail(L, s, t->err, fname);
    return hs_ret(L, raise);
  }
  t->busy = 0;
  /* The last receive may have brought records past the handshake (the
   * client's first request with its Finished): the next read must look
   * at them before receiving. */
  t->rdmore = BIO_ctrl_pending(t->rbio) > 0 || SSL_has_pending(t->ssl);
  lua_CFunction fn = h->fn;
  mp_op_release(op);
  return fn(L);
}

/* A second task: waits for the first to finish the handshake. */
static int hs_wait_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct lsock_req *r = op->owned;
  struct hsreq *h = (struct hsreq *)r->data;
  if (op->result < 0 || r->closed || s->closed) {
    int raise = h->raise;
    lsock_fail_op(L, s, op, h->fname);
    return hs_ret(L, raise);
  }
  if (s->tls && tls_of(s)->busy) {
    mp_op_prep_timer(op, POLL_NS);
    return lsock_await(L, s, op, hs_wait_k, h->fname);
  }
  lua_CFunction fn = h->fn;
  mp_op_release(op);
  return fn(L);
}

int ltls_handshake_then(lua_State *L, struct lsock *s, lua_CFunction fn,
                        const char *fname, int raise) {
  struct ltls *t = tls_of(s);
  if (t->failed) {
    ltls_fail(L, s, t->err, fname);
    return hs_ret(L, raise);
  }
  int64_t deadline = lsock_deadline(s);
  if (!deadline && t->hs_timeout >= 0) {
    mp_loop_update_time(s->S->loop);
    deadline = mp_loop_now(s->S->loop) + t->hs_timeout;
    if (!deadline) deadline = 1;
  }
  struct mp_op *op = lsock_op(L, s, HS_HEAD + (t->busy ? 0 : HS_CHUNK),
                              deadline);
  struct hsreq *h = (struct hsreq *)lsock_req(op)->data;
  h->fn = fn;
  h->fname = fname;
  h->raise = raise;
  if (t->busy) {
    mp_op_prep_timer(op, POLL_NS);
    return lsock_await(L, s, op, hs_wait_k, fname);
  }
  t->busy = 1;
  op->cb = hs_op_cb;
  return hs_step(L, s, op);
}

/* ---- data ---- */

int64_t ltls_decrypt(struct lsock *s, int64_t res, char *buf, size_t cap) {
  struct ltls *t = tls_of(s);
  if (t->rderr) return LMP_ETLS;
  if (res == 0) {
    /* The peer closed without close_notify: the end of the stream on a
     * record boundary (docs/tls.md), a failure inside a record. */
    if (BIO_ctrl_pending(t->rbio) || SSL_has_pending(t->ssl)) {
      snprintf(t->reason, sizeof t->reason,
               "connection closed inside a record");
      t->rderr = 1;
      return LMP_ETLS;
    }
    return 0;
  }
  size_t n = 0;
  t->rdmore = 0;
  while (n < cap && !t->peer_closed) {
    size_t want = cap - n > INT_MAX ? INT_MAX : cap - n;
    ERR_clear_error();
    int k = SSL_read(t->ssl, buf + n, (int)want);
    if (k > 0) {
      n += (size_t)k;
      /* Nothing left to decrypt: spare the call that says so. */
      if (!SSL_pending(t->ssl) && !BIO_ctrl_pending(t->rbio)) break;
      continue;
    }
    int e = SSL_get_error(t->ssl, k);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      t->peer_closed = 1;
      break;
    }
    set_reason(t, "bad record");
    t->rderr = 1;
    if (!n) return LMP_ETLS;
    break;
  }
  if (n == cap) t->rdmore = 1;
  flush_now(s, t);
  if (n) return (int64_t)n;
  return t->peer_closed ? 0 : LMP_RBUF_RETRY;
}

static void recv_cb(struct mp_op *op) {
  struct lsock_req *r = op->owned;
  if (r->linked && r->s && r->s->tls) ltls_feed(r->s, op, r->data);
  lsock_req_finish(r);
  lmp_task_op_cb(op);
}

static void recv_prep(struct mp_op *op, struct lsock *s) {
  struct lsock_req *r = op->owned;
  if (ltls_readable(s)) mp_op_prep_nop(op);
  else lsock_prep_in(op, s, r->data, r->len);
}

static int recv_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct lsock_req *r = op->owned;
  if (op->result < 0 || r->closed || s->closed)
    return lsock_fail_op(L, s, op, "recv");
  int64_t n = ltls_decrypt(s, op->kind == MP_OP_NOP ? -1 : op->result,
                           r->data, r->base);
  if (n > 0) {
    lua_pushlstring(L, r->data, (size_t)n);
    mp_op_release(op);
    return 1;
  }
  if (n == LMP_RBUF_RETRY) {
    recv_prep(op, s);
    return lsock_await(L, s, op, recv_k, "recv");
  }
  mp_op_release(op);
  if (n == 0) {
    s->eof = 1;
    return lsock_fail(L, s, LMP_EEOS, "recv");
  }
  return ltls_fail(L, s, (int)n, "recv");
}

int ltls_recv(lua_State *L, struct lsock *s, size_t max) {
  struct mp_op *op = lsock_op(L, s, max < RECV_CHUNK ? RECV_CHUNK : max,
                              lsock_deadline(s));
  struct lsock_req *r = op->owned;
  op->cb = recv_cb;
  r->dir = LSOCK_RD;
  r->base = max;
  recv_prep(op, s);
  return lsock_await(L, s, op, recv_k, "recv");
}

/* Empties wbio once its bytes are sent or copied. BIO_reset clears the
 * whole buffer it grew to: after a large write, a fresh BIO is cheaper. */
static void wbio_clear(struct ltls *t) {
  BUF_MEM *bm = NULL;
  BIO_get_mem_ptr(t->wbio, &bm);
  if (bm && bm->max > 256 * 1024) {
    BIO *b = BIO_new(BIO_s_mem());
    if (b) {
      SSL_set0_wbio(t->ssl, b); /* frees the old one */
      t->wbio = b;
      return;
    }
  }
  (void)BIO_reset(t->wbio);
}

/* Sending wbio: mode 0 write (returns the stream), 1 shutdown. */
static int sent_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct lsock_req *r = op->owned;
  int shut = r->base == 1;
  const char *what = shut ? "shutdown" : "write";
  if (op->result < 0 || r->closed || s->closed) {
    lsock_fail_op(L, s, op, what);
    if (shut) return 3;
    lua_pushinteger(L, 0);
    return 4;
  }
  r->off += (size_t)op->result;
  if (r->off < r->len) {
    lsock_prep_out(op, s, r->data + r->off, r->len - r->off);
    return lsock_await(L, s, op, sent_k, what);
  }
  mp_op_release(op);
  if (s->tls) flush_now(s, tls_of(s));
  if (shut) {
    int e = mp_os_shutdown(lsock_fd(s));
    if (e < 0) return lsock_fail(L, s, e, "shutdown");
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  return 1;
}

static int send_out(lua_State *L, struct lsock *s, int shut) {
  struct ltls *t = tls_of(s);
  const char *what = shut ? "shutdown" : "write";
  char *p;
  long out = BIO_get_mem_data(t->wbio, &p);
  size_t sent = 0;
  if (out > 0) {
    struct mp_iov iov = {p, (size_t)out};
    int64_t r = mp_os_trysend(lsock_fd(s), &iov, 1);
    if (r < 0 && r != MP_EAGAIN) {
      wbio_clear(t);
      lsock_fail(L, s, (int)r, what);
      if (shut) return 3;
      lua_pushinteger(L, 0);
      return 4;
    }
    if (r > 0) sent = (size_t)r;
  }
  if (out <= 0 || sent == (size_t)out) {
    wbio_clear(t);
    return 0;
  }
  struct mp_op *op = lsock_op(L, s, (size_t)out - sent, lsock_deadline(s));
  struct lsock_req *r = op->owned;
  memcpy(r->data, p + sent, r->len);
  wbio_clear(t);
  r->dir = LSOCK_WR;
  r->base = (size_t)shut;
  lsock_prep_out(op, s, r->data, r->len);
  return lsock_await(L, s, op, sent_k, what);
}

int ltls_write(lua_State *L, struct lsock *s, int n) {
  struct ltls *t = tls_of(s);
  for (int i = 0; i < n; i++) {
    size_t len;
    const char *p = lua_tolstring(L, 2 + i, &len);
    while (len > 0) {
      int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
      ERR_clear_error();
      int k = SSL_write(t->ssl, p, chunk);
      if (k <= 0) {
        set_reason(t, "cannot write");
        ltls_fail(L, s, LMP_ETLS, "write");
        lua_pushinteger(L, 0);
        return 4;
      }
      p += k;
      len -= (size_t)k;
    }
  }
  lua_settop(L, 1);
  int r = send_out(L, s, 0);
  return r ? r : 1;
}

int ltls_shutdown(lua_State *L, struct lsock *s) {
  struct ltls *t = tls_of(s);
  if (t->done && !t->failed && !t->shut) {
    if (s->writing)
      return luaL_error(L, "shutdown: another task is writing to this "
                        "stream");
    t->shut = 1;
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    lua_settop(L, 1);
    int r = send_out(L, s, 1);
    if (r) return r;
  }
  int e = mp_os_shutdown(lsock_fd(s));
  if (e < 0) return lsock_fail(L, s, e, "shutdown");
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- Lua functions ---- */

static int started(lua_State *L) {
  lua_pushboolean(L, 1);
  return 1;
}

/* core.tls_start(stream, ctx, name, server, timeout, connect): attaches a
 * session and runs the handshake; true or nil, msg, code. name: the host
 * to check (and SNI) for a client. */
static int l_start(lua_State *L) {
  int connect = lua_toboolean(L, 6);
  const char *fname = connect ? "connect" : "starttls";
  struct lsock *s = lsock_check(L, 1, LSOCK_STREAM, fname);
  struct ctx *c = ltls_ctx_check(L, 2);
  const char *name = luaL_optstring(L, 3, NULL);
  int server = lua_toboolean(L, 4);
  lua_Number timeout = luaL_optnumber(L, 5, -1);
  if (s->tls) return luaL_error(L, "%s: the stream speaks TLS already",
                                fname);
  if (s->reading || s->writing)
    return luaL_error(L, "%s: another task is using this stream", fname);
  if (s->pipe) return push_fail(L, s, LMP_ETLS, fname, "not a socket");
  /* Bytes the peer sent after the STARTTLS exchange, before our
   * handshake, are not ours to trust (CVE-2011-0411). */
  if (lmp_rbuf_avail(&s->rb))
    return push_fail(L, s, LMP_ETLS, fname,
                     "plaintext received before the handshake");
  struct ltls *t = attach(L, s, c, server);
  if (timeout >= 0 && timeout < 4.6e9)
    t->hs_timeout = (int64_t)(timeout * 1e9);
  if (!server && name) {
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);
    if (ip) { /* an IP literal: no SNI; checked against IP names */
      ASN1_OCTET_STRING_free(ip);
      if (c->verify)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name);
    } else {
      SSL_set_tlsext_host_name(t->ssl, name);
      if (c->verify) SSL_set1_host(t->ssl, name);
    }
    ERR_clear_error();
  }
  lua_settop(L, 1);
  return ltls_handshake_then(L, s, started, fname, 0);
}

/* core.tls_server(server, ctx, timeout): new connections of server speak
 * TLS with ctx (replacing the previous one: server:settls). */
static int l_server(lua_State *L) {
  struct lsock *s = lsock_check(L, 1, LSOCK_SERVER, "settls");
  struct ctx *c = ltls_ctx_check(L, 2);
  lua_Number timeout = luaL_optnumber(L, 3, -1);
  struct ltls *t = tls_of(s);
  if (!t) {
    if (!(t = calloc(1, sizeof *t))) return luaL_error(L, "not enough memory");
    t->base.release = server_release;
    s->tls = &t->base;
  } else {
    ltls_ctx_unref(t->ctx);
  }
  t->ctx = c;
  c->refs++;
  t->hs_timeout = timeout >= 0 && timeout < 4.6e9 ? (int64_t)(timeout * 1e9)
                                                  : -1;
  lua_settop(L, 1);
  return 1;
}

/* core.tls_accepted(stream): whether it came from accept. */
static int l_accepted(lua_State *L) {
  struct lsock *s = lsock_check(L, 1, LSOCK_STREAM, "starttls");
  lua_pushboolean(L, s->accepted);
  return 1;
}

/* stream:tlsinfo(): nil on a plain stream. */
static int stream_tlsinfo(lua_State *L) {
  struct lsock *s = lsock_check(L, 1, LSOCK_STREAM, "tlsinfo");
  struct ltls *t = s->tls ? tls_of(s) : NULL;
  if (!t) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 6);
  lua_pushboolean(L, t->done && !t->failed);
  lua_setfield(L, -2, "handshake");
  if (!t->done || t->failed) return 1;
  lua_pushstring(L, SSL_get_version(t->ssl));
  lua_setfield(L, -2, "version");
  lua_pushstring(L, SSL_get_cipher_name(t->ssl));
  lua_setfield(L, -2, "cipher");
  const unsigned char *a;
  unsigned alen;
  SSL_get0_alpn_selected(t->ssl, &a, &alen);
  if (alen) {
    lua_pushlstring(L, (const char *)a, alen);
    lua_setfield(L, -2, "alpn");
  }
  const char *sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
  if (sni) {
    lua_pushstring(L, sni);
    lua_setfield(L, -2, "servername");
  }
  X509 *peer = SSL_get0_peer_certificate(t->ssl);
  if (peer) {
    char buf[512];
    X509_NAME_oneline(X509_get_subject_name(peer), buf, sizeof buf);
    lua_pushstring(L, buf);
    lua_setfield(L, -2, "peer");
  }
  lua_pushboolean(L, peer && SSL_get_verify_result(t->ssl) == X509_V_OK &&
                     (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER));
  lua_setfield(L, -2, "verified");
  return 1;
}

void lmp_open_tls(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg funcs[] = {
    {"tls_start", l_start}, {"tls_server", l_server},
    {"tls_accepted", l_accepted}, {NULL, NULL}};
  ltls_open_ctx(L);
  luaL_getmetatable(L, LSOCK_STREAM_MT);
  lua_getfield(L, -1, "__index");
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, stream_tlsinfo, 1);
  lua_setfield(L, -2, "tlsinfo");
  lua_setfield(L, -3, "tls_stream_methods"); /* net.lua: starttls */
  lua_pop(L, 1);
  luaL_getmetatable(L, LSOCK_SERVER_MT);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "tls_server_methods"); /* net.lua: settls */
  lua_pop(L, 1);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "tls");
}

#else /* !MP_WITH_TLS: built without OpenSSL; s->tls is never set */

int ltls_ready(struct lsock *s) { (void)s; return 1; }
int ltls_handshake_then(lua_State *L, struct lsock *s, lua_CFunction fn,
                        const char *fname, int raise) {
  (void)s; (void)fname; (void)raise;
  return fn(L);
}
int ltls_readable(struct lsock *s) { (void)s; return 0; }
int64_t ltls_decrypt(struct lsock *s, int64_t res, char *buf, size_t cap) {
  (void)s; (void)buf; (void)cap;
  return res;
}
int ltls_recv(lua_State *L, struct lsock *s, size_t max) {
  (void)max;
  return lsock_fail(L, s, MP_ENOSYS, "recv");
}
int ltls_write(lua_State *L, struct lsock *s, int n) {
  (void)n;
  return lsock_fail(L, s, MP_ENOSYS, "write");
}
int ltls_shutdown(lua_State *L, struct lsock *s) {
  return lsock_fail(L, s, MP_ENOSYS, "shutdown");
}
int ltls_fail(lua_State *L, struct lsock *s, int err, const char *what) {
  return lsock_fail(L, s, err, what);
}
void ltls_accepted(lua_State *L, struct lsock *server, struct lsock *c) {
  (void)L; (void)server; (void)c;
}
void ltls_feed(struct lsock *s, struct mp_op *op, const char *buf) {
  (void)s; (void)op; (void)buf;
}
void lmp_open_tls(lua_State *L, struct lmp_state *S) {
  (void)S; /* net.lua's starttls and settls fail with "ENOSYS" */
  luaL_getmetatable(L, LSOCK_STREAM_MT);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "tls_stream_methods");
  lua_pop(L, 1);
  luaL_getmetatable(L, LSOCK_SERVER_MT);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "tls_server_methods");
  lua_pop(L, 1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "tls");
}

#endif
