/* lsock.h: shared by the socket bindings: lsock.c (the op bookkeeping
 * every socket uses), lstream.c (streams), lserver.c (servers), ludp.c
 * (datagrams) and ldns.c (names). Not a public header. */
#ifndef LSOCK_H
#define LSOCK_H

#include <stdint.h>

#include "lbuf.h"
#include "lcore.h"
#include "lhandle.h"

#define LSOCK_STREAM_MT "moonport.stream"
#define LSOCK_SERVER_MT "moonport.server"
#define LSOCK_UDP_MT "moonport.udp"

enum { LSOCK_STREAM, LSOCK_SERVER, LSOCK_UDP };
enum { LSOCK_RD = 1, LSOCK_WR = 2 };

struct lsock_req;
struct lsock;

/* A socket's TLS state (ltls.c), NULL on a plain socket: lsock_shut
 * calls release (close_notify, frees it) through this hook. */
struct lsock_tls {
  void (*release)(struct lsock *s);
};

/* The userdata of every socket object. Its descriptor's lifetime is an
 * lmp_handle: closed only once no op on it is in flight (an SQE still
 * queued in the ring names the fd by number, so closing early could aim
 * it at a reused descriptor), even after the object is collected. */
struct lsock {
  struct lmp_state *S;
  struct lmp_handle *h;    /* NULL once collected */
  int family;              /* MP_AF_INET, MP_AF_INET6, MP_AF_UNIX */
  unsigned char type;      /* LSOCK_* */
  unsigned char closed;    /* close() was called: methods raise */
  unsigned char reading;   /* a read/recv is in progress (one at a time) */
  unsigned char writing;   /* a write is in progress (one at a time) */
  unsigned char linger;    /* SO_LINGER > 0 set: close on the pool */
  unsigned char eof;       /* the peer closed its side */
  unsigned char pipe;      /* stream over a pipe (mp.net.wrap): read and
                              write ops rather than recv and send */
  unsigned char accepted;  /* stream from accept: TLS server role */
  unsigned char drained;   /* stream: the last receive (read or recv) got
                              less than it asked for, so it emptied the
                              socket: the next one waits for readiness
                              first (a server waiting for the next
                              request; mp_op_poll_first) */
  int64_t timeout;         /* settimeout, ns; -1: none */
  int64_t backoff;         /* accept: current EMFILE back-off, ns */
  int64_t rddl;            /* read(): the deadline of the call running */
  struct lsock_req *reqs;  /* the requests of the ops in flight */
  struct lmp_rbuf rb;      /* stream: bytes received, not yet read */
  struct lsock_tls *tls;   /* TLS session (stream), context (server) */
  struct lmp_share *share; /* server: the listener the workers share
                              (lworker.c; reuseport where the system has
                              no SO_REUSEPORT), else NULL */
};

/* The socket's descriptor (MP_INVALID_HANDLE once closed). */
static inline mp_handle_t lsock_fd(const struct lsock *s) {
  return s->h ? s->h->handle : MP_INVALID_HANDLE;
}

/* One op on a socket; lives in op->owned, so it is freed with the op.
 * Its payload (receive buffer, bytes to send, address) follows. */
struct lsock_req {
  struct lsock *s;          /* NULL once the socket was collected */
  struct mp_op *op;
  struct mp_op *timer;      /* the settimeout deadline racing op */
  struct lsock_req *next, *prev;
  int64_t deadline;         /* absolute loop time (ns), 0: none */
  size_t off, len;          /* write progress / payload size */
  size_t base;              /* write: bytes sent before the op */
  unsigned char dir;        /* LSOCK_RD / LSOCK_WR: sets reading/writing */
  unsigned char linked, timed_out, closed;
  _Alignas(16) char data[]; /* the payload */
};

/* Registers a socket metatable (__gc, __close, __tostring) with methods. */
void lsock_new_type(lua_State *L, struct lmp_state *S, const char *mt,
                    const luaL_Reg *methods);
/* sock:sockname(): host, port (or the path of a Unix socket). */
int lsock_sockname(lua_State *L);
/* A stream's receive and send: recv/send on a socket, read/write (at
 * the current position) on a pipe. */
static inline void lsock_prep_in(struct mp_op *op, struct lsock *s,
                                 void *buf, size_t len) {
  if (s->pipe) mp_op_prep_read(op, lsock_fd(s), buf, len, -1);
  else mp_op_prep_recv(op, lsock_fd(s), buf, len);
}
static inline void lsock_prep_out(struct mp_op *op, struct lsock *s,
                                  const void *buf, size_t len) {
  if (s->pipe) mp_op_prep_write(op, lsock_fd(s), buf, len, -1);
  else mp_op_prep_send(op, lsock_fd(s), buf, len);
}
/* Checks arg idx is a socket of the given type that is not closed. */
struct lsock *lsock_check(lua_State *L, int idx, int type, const char *fname);
/* Pushes a new socket object owning fd (closed if that fails). */
struct lsock *lsock_push(lua_State *L, struct lmp_state *S, int type,
                         mp_handle_t fd, int family);
/* A new op whose owned memory is a request with `extra` payload bytes. */
struct mp_op *lsock_op(lua_State *L, struct lsock *s, size_t extra,
                       int64_t deadline);
/* The deadline for an operation starting now under settimeout (0: none). */
int64_t lsock_deadline(struct lsock *s);
/* Links the op's request to s, starts its deadline timer and suspends
 * until it completes (see lmp_await). */
int lsock_await(lua_State *L, struct lsock *s, struct mp_op *op,
                lmp_done k, const char *fname);
/* Links r to s, tracks its op on s's handle and starts its deadline timer
 * (MP_ENOMEM: r stays unlinked); lsock_req_finish undoes it when r's op
 * completes (the handle closes after the last op of a closed socket). */
int lsock_req_link(struct lsock *s, struct lsock_req *r);
void lsock_req_finish(struct lsock_req *r);
static inline struct lsock_req *lsock_req(struct mp_op *op) {
  return op->owned;
}
/* Pushes nil, "what ADDR: message", code for a failed op, turning a
 * cancel caused by close() into "closed" and one caused by the socket
 * timeout into "timeout". Releases op. Returns 3. */
int lsock_fail_op(lua_State *L, struct lsock *s, struct mp_op *op,
                  const char *what);
/* Pushes nil, "what ADDR: message", code through lmp_fail; ADDR is the
 * peer's (streams) or the local name, when s has one. */
int lsock_fail(lua_State *L, struct lsock *s, int err, const char *what);
/* The same through lmp_rbuf_fail (knows LMP_ELINETOOLONG). */
int lsock_rbuf_fail(lua_State *L, struct lsock *s, int err,
                    const char *what);
/* Marks s closed and cancels its ops; the last one closes the fd. */
void lsock_shut(struct lsock *s);
/* settimeout / close / sockname shared by every type. */
int lsock_settimeout(lua_State *L, int type, const char *fname);
int lsock_close(lua_State *L, int type);
int lsock_gc(lua_State *L);
int lsock_tostring(lua_State *L);
int lsock_push_name(lua_State *L, struct lsock *s, int peer);
int lsock_setoption(lua_State *L, int type);

void lmp_open_socket(lua_State *L, struct lmp_state *S); /* lstream.c */
void lmp_open_server(lua_State *L, struct lmp_state *S); /* lserver.c */
void lmp_open_udp(lua_State *L, struct lmp_state *S);    /* ludp.c */
void lmp_open_dns(lua_State *L, struct lmp_state *S);    /* ldns.c */

/* Addresses. Pushes host, port (or the path for Unix). */
int lsock_push_addr(lua_State *L, const struct mp_addr *a);
/* Formats "host:port" / "[v6]:port" / path into buf. */
void lsock_format_addr(const struct mp_addr *a, char *buf, size_t size);
/* Checks a packed address (a string made by ldns.c) at idx. */
void lsock_check_addr(lua_State *L, int idx, struct mp_addr *a);

#endif
