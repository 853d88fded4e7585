/* net_win.c: sockets and names on Windows (Winsock 2): struct mp_addr
 * around the sockaddr types, the datagram, connect and getaddrinfo ops'
 * memory (struct mp__dgram in op->priv, which backend_iocp.c hands to
 * WSASendTo / WSARecvFrom), and the synchronous socket calls of mp_os.h.
 *
 * Winsock is started once per process (WSAStartup under an INIT_ONCE,
 * never cleaned up: Winsock counts its users per process, and a loop
 * closing must not pull sockets from under another loop or the host).
 * Sockets are overlapped (for the IOCP backend), not inherited by child
 * processes, and non-blocking (FIONBIO: only the synchronous calls here
 * care; overlapped operations are not affected by it).
 *
 * AF_UNIX: Windows 10 has stream Unix sockets (afunix.h); where the
 * system refuses the family (wine 8, older Windows) socket creation
 * fails with MP_EAFNOSUPPORT. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
#include <windows.h>

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "mp_internal.h"
#include "mp_os.h"


_Static_assert(sizeof(struct sockaddr_storage) <= sizeof(struct mp_addr){0}.sa,
               "struct mp_addr holds any sockaddr");
_Static_assert(sizeof(struct sockaddr_un) <= sizeof(struct mp_addr){0}.sa,
               "struct mp_addr holds a sockaddr_un");
_Static_assert(sizeof(SOCKET) <= sizeof(mp_handle_t),
               "a SOCKET fits in an mp_handle_t");

static SOCKET sock_of(mp_handle_t h) { return (SOCKET)(uintptr_t)h; }

static const struct sockaddr *csa_of(const struct mp_addr *a) {
  return (const struct sockaddr *)a->sa.b;
}

static BOOL CALLBACK wsa_start(PINIT_ONCE once, PVOID arg, PVOID *ctx) {
  WSADATA wd;
  (void)once;
  (void)ctx;
  *(int *)arg = WSAStartup(MAKEWORD(2, 2), &wd);
  return TRUE;
}

/* 0, or the MP_E* code of a failed WSAStartup (the same every call);
 * adopt_win.c calls it too. */
int mp__net_init(void);
int mp__net_init(void) {
  static INIT_ONCE once = INIT_ONCE_STATIC_INIT;
  static int err; /* written once, under the INIT_ONCE */
  InitOnceExecuteOnce(&once, wsa_start, &err, NULL);
  return err ? mp_err_from_win((unsigned long)err) : 0;
}

static int fail(void) {
  return mp_err_from_win((unsigned long)WSAGetLastError());
}

/* As fail(), for a call on h: no socket there because no handle at all
 * is EBADF, as on Unix (Winsock says WSAENOTSOCK for both). */
static int fail_on(mp_handle_t h) {
  DWORD f;
  int e = fail();
  /* (-1 is also the process's own pseudo handle: valid for the system) */
  if (e == MP_ENOTSOCK && (h == MP_INVALID_HANDLE || h == NULL ||
                           !GetHandleInformation(h, &f)))
    return MP_EBADF;
  return e;
}

static int to_af(int family) {
  switch (family) {
    case MP_AF_INET: return AF_INET;
    case MP_AF_INET6: return AF_INET6;
    case MP_AF_UNIX: return AF_UNIX;
    default: return AF_UNSPEC;
  }
}

/* ---- ops ---- */

int mp_op_prep_connect(struct mp_op *op, mp_handle_t h,
                       const struct mp_addr *addr) {
  struct mp_addr *copy = mp__op_priv(op, sizeof *copy);
  if (!copy) return MP_ENOMEM;
  *copy = *addr;
  op->kind = MP_OP_CONNECT;
  op->handle = h;
  op->u.sa.addr = copy->sa.b;
  op->u.sa.addrlen = copy->len;
  return 0;
}

static int prep_dgram(struct mp_op *op, int kind, mp_handle_t h, void *buf,
                      size_t len, const struct mp_addr *to) {
  struct mp__dgram *d = mp__op_priv(op, sizeof *d);
  if (!d) return MP_ENOMEM;
  memset(d, 0, sizeof *d);
  if (to) d->addr = *to; /* RECVFROM: the backend sets addrlen */
  op->kind = (uint8_t)kind;
  op->handle = h;
  op->u.rw.buf = buf;
  op->u.rw.len = len;
  op->u.rw.off = -1;
  return 0;
}

int mp_op_prep_sendto(struct mp_op *op, mp_handle_t h, const void *buf,
                      size_t len, const struct mp_addr *to) {
  return prep_dgram(op, MP_OP_SENDTO, h, (void *)buf, len, to);
}

int mp_op_prep_recvfrom(struct mp_op *op, mp_handle_t h, void *buf,
                        size_t len) {
  return prep_dgram(op, MP_OP_RECVFROM, h, buf, len, NULL);
}

const struct mp_addr *mp_op_from(struct mp_op *op) {
  return &((struct mp__dgram *)op->priv)->addr;
}

/* getaddrinfo's failures are WSA codes on Windows. */
static int gai_err(int e) {
  switch (e) {
    case WSAHOST_NOT_FOUND: return MP_EAI_NONAME;
    case WSANO_DATA: return MP_EAI_NODATA;
    case WSATRY_AGAIN: return MP_EAI_AGAIN;
    case WSANO_RECOVERY: return MP_EAI_FAIL;
    case WSAEAFNOSUPPORT: return MP_EAI_FAMILY;
    case WSA_NOT_ENOUGH_MEMORY: return MP_EAI_MEMORY;
    case WSATYPE_NOT_FOUND: return MP_EAI_SERVICE;
    default: return mp_err_from_win((unsigned long)e);
  }
}

int mp_os_getaddrinfo(const char *host, int port, int family, int flags,
                      struct mp_addr *out, int max) {
  struct addrinfo hints, *res = NULL;
  char serv[8];
  int n = 0, err = mp__check_name(host, flags);
  if (err < 0) return err;
  if (port < 0 || port > 65535) return MP_EINVAL;
  if ((err = mp__net_init()) < 0) return err;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = to_af(family);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV |
                   (flags & MP_AI_PASSIVE ? AI_PASSIVE : 0) |
                   (flags & MP_AI_NUMERICHOST ? AI_NUMERICHOST : 0);
  snprintf(serv, sizeof serv, "%d", port);
  int gai = getaddrinfo(host && host[0] ? host : NULL, serv, &hints, &res);
  if (gai) return gai_err(gai);
  for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
    struct mp_addr a;
    int dup = 0;
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
        ai->ai_addrlen > sizeof a.sa.b)
      continue;
    memset(&a, 0, sizeof a);
    memcpy(a.sa.b, ai->ai_addr, ai->ai_addrlen);
    a.len = (uint32_t)ai->ai_addrlen;
    for (int i = 0; i < n && !dup; i++)
      dup = out[i].len == a.len && !memcmp(out[i].sa.b, a.sa.b, a.len);
    if (!dup) out[n++] = a;
  }
  freeaddrinfo(res);
  return n ? n : MP_EAI_NONAME;
}

/* ---- synchronous socket calls ---- */

int mp_os_socket(int family, int type, mp_handle_t *out) {
  int t = type == MP_SOCK_DGRAM ? SOCK_DGRAM : SOCK_STREAM, err;
  u_long on = 1;
  if ((err = mp__net_init()) < 0) return err;
  SOCKET s = WSASocketW(to_af(family), t, 0, NULL, 0,
                        WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET) {
    err = fail();
    /* Windows without AF_UNIX says the provider is missing. */
    if (family == MP_AF_UNIX) err = MP_EAFNOSUPPORT;
    return err;
  }
  if (ioctlsocket(s, FIONBIO, &on) != 0) {
    err = fail();
    closesocket(s);
    return err;
  }
  *out = (mp_handle_t)(uintptr_t)s;
  return 0;
}

int mp_os_bind(mp_handle_t h, const struct mp_addr *addr) {
  return bind(sock_of(h), csa_of(addr), (int)addr->len) ? fail_on(h) : 0;
}

int mp_os_listen(mp_handle_t h, int backlog) {
  return listen(sock_of(h), backlog) ? fail_on(h) : 0;
}

/* SO_REUSEADDR: Windows binds over TIME_WAIT by default, and its own
 * SO_REUSEADDR lets another socket take a port in use (what Unix calls
 * SO_REUSEPORT, without the load balancing): a stream socket asking for
 * Unix's meaning gets nothing set. REUSEPORT has no equivalent: EOPNOTSUPP. */
int mp_os_setsockopt(mp_handle_t h, enum mp_sockopt opt, int value) {
  int level = SOL_SOCKET, name, type = 0, tlen = sizeof type;
  struct linger lg = {(u_short)(value >= 0), (u_short)(value >= 0 ? value
                                                                 : 0)};
  const char *val = (const char *)&value;
  int len = sizeof value;
  switch (opt) {
    case MP_SO_REUSEADDR:
      if (getsockopt(sock_of(h), SOL_SOCKET, SO_TYPE, (char *)&type, &tlen))
        return fail_on(h);
      if (type == SOCK_STREAM) return 0;
      name = SO_REUSEADDR;
      break;
    case MP_SO_REUSEPORT: return MP_EOPNOTSUPP;
    case MP_SO_KEEPALIVE: name = SO_KEEPALIVE; break;
    case MP_SO_BROADCAST: name = SO_BROADCAST; break;
    case MP_SO_RCVBUF: name = SO_RCVBUF; break;
    case MP_SO_SNDBUF: name = SO_SNDBUF; break;
    case MP_SO_LINGER:
      if (value > 65535) return MP_EINVAL;
      name = SO_LINGER;
      val = (const char *)&lg;
      len = sizeof lg;
      break;
    case MP_TCP_NODELAY: level = IPPROTO_TCP; name = TCP_NODELAY; break;
    case MP_IPV6_V6ONLY: {
      /* An IPv4 socket has no IPv6 options (as Linux; wine takes it) */
      WSAPROTOCOL_INFOW pi;
      int plen = sizeof pi;
      if (getsockopt(sock_of(h), SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&pi,
                     &plen))
        return fail_on(h);
      if (pi.iAddressFamily != AF_INET6) return MP_ENOPROTOOPT;
      level = IPPROTO_IPV6;
      name = IPV6_V6ONLY;
      break;
    }
    default: return MP_EINVAL;
  }
  return setsockopt(sock_of(h), level, name, val, len) ? fail_on(h) : 0;
}

int mp_os_sockname(mp_handle_t h, struct mp_addr *addr, int peer) {
  int len = (int)sizeof addr->sa.b;
  memset(addr, 0, sizeof *addr);
  struct sockaddr *sa = (struct sockaddr *)addr->sa.b;
  int r = peer ? getpeername(sock_of(h), sa, &len)
               : getsockname(sock_of(h), sa, &len);
  if (r) return fail_on(h);
  addr->len = (uint32_t)len;
  return 0;
}

int mp_os_shutdown(mp_handle_t h) {
  return shutdown(sock_of(h), SD_SEND) ? fail_on(h) : 0;
}

enum { TRYSEND_IOV = 64 };

/* A handle that is no socket (a child's pipe) takes nothing now: its
 * write goes to an op (ReadFile/WriteFile in the backend). */
static int64_t try_result(int r, DWORD sent) {
  if (r == 0) return (int64_t)sent;
  int e = WSAGetLastError();
  if (e == WSAEWOULDBLOCK || e == WSAENOTSOCK) return MP_EAGAIN;
  return mp_err_from_win((unsigned long)e);
}

int64_t mp_os_trysend(mp_handle_t h, const struct mp_iov *iov, int n) {
  WSABUF v[TRYSEND_IOV];
  DWORD sent = 0;
  if (n > TRYSEND_IOV) n = TRYSEND_IOV; /* a partial send, as allowed */
  if (n < 0) n = 0;
  for (int i = 0; i < n; i++) {
    /* WSABUF lengths are 32 bits: a longer piece is sent in part */
    v[i].buf = (char *)iov[i].base;
    v[i].len = iov[i].len > 0x7fffffff ? 0x7fffffff : (ULONG)iov[i].len;
    if (v[i].len != iov[i].len) {
      n = i + 1;
      break;
    }
  }
  int r = WSASend(sock_of(h), v, (DWORD)n, &sent, 0, NULL, NULL);
  return try_result(r, sent);
}

int64_t mp_os_trysendto(mp_handle_t h, const void *buf, size_t len,
                        const struct mp_addr *to) {
  if (len > 0x7fffffff) return MP_EMSGSIZE;
  int r = sendto(sock_of(h), buf, (int)len, 0, to ? csa_of(to) : NULL,
                 to ? (int)to->len : 0);
  /* no address and no peer: Linux's code for it */
  if (r < 0 && !to && (WSAGetLastError() == WSAENOTCONN ||
                       WSAGetLastError() == WSAEINVAL))
    return MP_EDESTADDRREQ;
  return try_result(r < 0 ? r : 0, r < 0 ? 0 : (DWORD)r);
}
