/* ltlsctx.h: TLS contexts (ltlsctx.c) for the sessions of ltls.c. Not a
 * public header. */
#ifndef LTLSCTX_H
#define LTLSCTX_H

#include "lcore.h"

#ifdef MP_WITH_TLS
#include <openssl/ssl.h>

/* A context: its Lua object, a server and every session made
 * from it hold a reference each. */
struct ctx {
  SSL_CTX *ssl;
  int refs;
  int verify;              /* check the peer's certificate */
  unsigned char *alpn;     /* server: preference order, wire format */
  size_t alpnlen;
};
void ltls_ctx_unref(struct ctx *c);
/* The context at idx (raises if it is none, or was collected). */
struct ctx *ltls_ctx_check(lua_State *L, int idx);
/* core.tls_ctx, into the table on top. */
void ltls_open_ctx(lua_State *L);
#endif

#endif
