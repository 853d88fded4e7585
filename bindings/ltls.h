/* ltls.h: TLS on streams (ltls.c, docs/tls.md): the hooks lstream.c and
 * lserver.c call on a socket whose s->tls is set. Not a public header.
 *
 * The ciphertext moves through the stream's own ops (recv/send into
 * memory the op owns) and OpenSSL works on memory BIOs, so nothing blocks
 * and every backend runs the same code. A TLS stream's IO methods first
 * make sure the handshake ran (ltls_handshake_then), then:
 *   read formats: rd_start receives ciphertext (or, when plaintext is
 *     waiting inside OpenSSL, a NOP op) and rd_done calls ltls_decrypt;
 *   recv, write, shutdown: ltls_recv, ltls_write, ltls_shutdown. */
#ifndef LTLS_H
#define LTLS_H

#include "lsock.h"

/* Whether s's handshake is done (or failed: the method then reports the
 * failure through ltls_handshake_then). */
int ltls_ready(struct lsock *s);
/* Runs the handshake (or waits for the task running it), then returns
 * fn(L), the method again on the stack it was called with (s at 1); a
 * failure returns nil, msg, code (raises if raise: lines iterators). */
int ltls_handshake_then(lua_State *L, struct lsock *s, lua_CFunction fn,
                        const char *fname, int raise);
/* Whether plaintext may be ready without receiving (use a NOP op). */
int ltls_readable(struct lsock *s);
/* A receive op on s completed (its callback, first run): hands the
 * ciphertext at buf to OpenSSL at once, so a read cancelled or timed out
 * after its bytes arrived loses none. */
void ltls_feed(struct lsock *s, struct mp_op *op, const char *buf);
/* After a receive (res: its result, fed already; < 0: a NOP, 0: the peer
 * closed), decrypts up to cap bytes into buf: the count, 0 at the end
 * of the stream, LMP_RBUF_RETRY (receive more), or LMP_ETLS. */
int64_t ltls_decrypt(struct lsock *s, int64_t res, char *buf, size_t cap);
/* stream:recv(max), stream:write(...) (the strings at 2..n+1, checked),
 * stream:shutdown() on a TLS stream whose handshake is done. */
int ltls_recv(lua_State *L, struct lsock *s, size_t max);
int ltls_write(lua_State *L, struct lsock *s, int n);
int ltls_shutdown(lua_State *L, struct lsock *s);
/* Pushes nil, msg, code for err; LMP_ETLS and LMP_ECERT carry the
 * library's reason in msg. */
int ltls_fail(lua_State *L, struct lsock *s, int err, const char *what);
/* accept: the new stream c of a TLS server takes the server role. */
void ltls_accepted(lua_State *L, struct lsock *server, struct lsock *c);

/* core.tls_ctx, core.tls_start, core.tls_server; stream:tlsinfo,
 * server:settls. */
void lmp_open_tls(lua_State *L, struct lmp_state *S);

#endif
