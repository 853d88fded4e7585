/* ltlsctx.c: TLS contexts (SSL_CTX) for ltls.c (ltls.h, docs/tls.md).
 *
 * A context is built once per set of options: net.lua caches the client
 * ones, a server keeps one for its new connections (settls replaces it).
 * It is shared by reference counts: its Lua object, the server and every
 * session made from it. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ltlsctx.h"

#ifdef MP_WITH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define CTX_MT "moonport.tlsctx"

void ltls_ctx_unref(struct ctx *c) {
  if (--c->refs > 0) return;
  SSL_CTX_free(c->ssl);
  free(c->alpn);
  free(c);
}

static int ctx_gc(lua_State *L) {
  struct ctx **ud = luaL_checkudata(L, 1, CTX_MT);
  if (*ud) ltls_ctx_unref(*ud);
  *ud = NULL;
  return 0;
}

/* A server's ALPN choice: its own preference order. */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  struct ctx *c = arg;
  (void)ssl;
  for (size_t i = 0; i < c->alpnlen; i += 1 + (size_t)c->alpn[i])
    for (unsigned j = 0; j < inlen && j + 1u + in[j] <= inlen;
         j += 1u + in[j])
      if (c->alpn[i] == in[j] && !memcmp(c->alpn + i + 1, in + j + 1, in[j])) {
        *out = in + j + 1;
        *outlen = in[j];
        return SSL_TLSEXT_ERR_OK;
      }
  return SSL_TLSEXT_ERR_NOACK;
}

/* opts[name]: a string or NULL; anything else raises. */
static const char *opt_str(lua_State *L, const char *name, const char *fname,
                           int argn) {
  const char *v = NULL;
  int ty = lua_getfield(L, 1, name);
  if (ty == LUA_TSTRING) v = lua_tostring(L, -1);
  else if (ty != LUA_TNIL)
    luaL_error(L, "bad argument #%d to '%s' (tls.%s must be a string)", argn,
               fname, name);
  lua_pop(L, 1); /* the string stays in opts */
  return v;
}

static int ctx_fail(lua_State *L, const char *what) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  char buf[300];
  snprintf(buf, sizeof buf, "tls: %s", what);
  lmp_fail(L, LMP_ETLS, buf);
  lua_pushfstring(L, "%s (%s)", lua_tostring(L, -2), r ? r : "unusable");
  lua_replace(L, -3);
  ERR_clear_error();
  return 3;
}

/* core.tls_ctx(opts, server, fname, argn): a context, or nil, msg, code
 * when a file cannot be used. Options: cert, key, cafile, capath, verify,
 * alpn (see docs/tls.md). */
static int l_ctx(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int server = lua_toboolean(L, 2);
  const char *fname = luaL_optstring(L, 3, "tls");
  int argn = (int)luaL_optinteger(L, 4, 3);
  const char *cert = opt_str(L, "cert", fname, argn);
  const char *key = opt_str(L, "key", fname, argn);
  const char *cafile = opt_str(L, "cafile", fname, argn);
  const char *capath = opt_str(L, "capath", fname, argn);
  int ty = lua_getfield(L, 1, "verify");
  if (ty != LUA_TNIL && ty != LUA_TBOOLEAN)
    luaL_error(L, "bad argument #%d to '%s' (tls.verify must be a boolean)",
               argn, fname);
  int verify = ty == LUA_TNIL ? !server : lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (server && !cert)
    luaL_error(L, "bad argument #%d to '%s' (tls.cert expected for a "
               "server)", argn, fname);
  /* ALPN names in wire format: length-prefixed. */
  unsigned char wire[1024];
  size_t wlen = 0;
  ty = lua_getfield(L, 1, "alpn");
  if (ty == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
      size_t n;
      const char *p = lua_tolstring(L, -1, &n);
      if (!p || lua_type(L, -1) != LUA_TSTRING || n == 0 || n > 255 ||
          wlen + 1 + n > sizeof wire)
        luaL_error(L, "bad argument #%d to '%s' (tls.alpn must be a list "
                   "of protocol names)", argn, fname);
      wire[wlen++] = (unsigned char)n;
      memcpy(wire + wlen, p, n);
      wlen += n;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else if (ty != LUA_TNIL) {
    luaL_error(L, "bad argument #%d to '%s' (tls.alpn must be a list of "
               "protocol names)", argn, fname);
  }
  lua_pop(L, 1);

  struct ctx **ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  luaL_setmetatable(L, CTX_MT);
  struct ctx *c = calloc(1, sizeof *c);
  if (!c) return luaL_error(L, "not enough memory");
  *ud = c;
  c->refs = 1;
  c->verify = verify;
  ERR_clear_error();
  if (!(c->ssl = SSL_CTX_new(server ? TLS_server_method()
                                    : TLS_client_method())))
    return ctx_fail(L, "context");
  SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
  /* No renegotiation (TLS 1.2; 1.3 has none), no compression. */
  SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION |
                              SSL_OP_NO_COMPRESSION);
  if (cert) {
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1)
      return ctx_fail(L, cert);
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key ? key : cert,
                                    SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c->ssl) != 1)
      return ctx_fail(L, key ? key : cert);
  }
  if (verify) {
    SSL_CTX_set_verify(c->ssl, server ? SSL_VERIFY_PEER |
                                        SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                      : SSL_VERIFY_PEER, NULL);
    if (cafile || capath) {
      if (SSL_CTX_load_verify_locations(c->ssl, cafile, capath) != 1)
        return ctx_fail(L, cafile ? cafile : capath);
    } else if (SSL_CTX_set_default_verify_paths(c->ssl) != 1) {
      return ctx_fail(L, "the system's certificate store");
    }
  }
  if (wlen && server) {
    if (!(c->alpn = malloc(wlen))) return luaL_error(L, "not enough memory");
    memcpy(c->alpn, wire, wlen);
    c->alpnlen = wlen;
    SSL_CTX_set_alpn_select_cb(c->ssl, alpn_select, c);
  } else if (wlen && SSL_CTX_set_alpn_protos(c->ssl, wire,
                                              (unsigned)wlen) != 0) {
    return ctx_fail(L, "alpn");
  }
  return 1;
}

struct ctx *ltls_ctx_check(lua_State *L, int idx) {
  struct ctx **ud = luaL_checkudata(L, idx, CTX_MT);
  luaL_argcheck(L, *ud != NULL, idx, "TLS context expected");
  return *ud;
}

void ltls_open_ctx(lua_State *L) {
  luaL_newmetatable(L, CTX_MT);
  lua_pushcfunction(L, ctx_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_ctx);
  lua_setfield(L, -2, "tls_ctx");
}

#endif
