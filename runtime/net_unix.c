/* net_unix.c: sockets and names on Unix: struct mp_addr around the
 * sockaddr types, the datagram, connect and getaddrinfo ops' memory (the
 * msghdr the backends hand to the kernel lives in op->priv), and the
 * synchronous socket calls of mp_os.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "mp_internal.h"
#include "mp_os.h"

_Static_assert(sizeof(struct sockaddr_storage) <= sizeof(struct mp_addr){0}.sa,
               "struct mp_addr holds any sockaddr");
_Static_assert(sizeof(struct sockaddr_un) <= sizeof(struct mp_addr){0}.sa,
               "struct mp_addr holds a sockaddr_un");

static struct sockaddr *sa_of(struct mp_addr *a) {
  return (struct sockaddr *)a->sa.b;
}

static const struct sockaddr *csa_of(const struct mp_addr *a) {
  return (const struct sockaddr *)a->sa.b;
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

/* op->priv of SENDTO / RECVFROM: what sendmsg(2) / recvmsg(2) take. The
 * backends find the header in u.rw.buf. */
struct dgram {
  struct msghdr mh;
  struct iovec iov;
  struct mp_addr addr; /* to / from */
};

static int prep_dgram(struct mp_op *op, int kind, mp_handle_t h, void *buf,
                      size_t len, const struct mp_addr *to) {
  struct dgram *d = mp__op_priv(op, sizeof *d);
  if (!d) return MP_ENOMEM;
  memset(d, 0, sizeof *d);
  d->iov.iov_base = buf;
  d->iov.iov_len = len;
  d->mh.msg_iov = &d->iov;
  d->mh.msg_iovlen = 1;
  if (kind == MP_OP_RECVFROM) {
    d->mh.msg_name = d->addr.sa.b;
    d->mh.msg_namelen = sizeof d->addr.sa.b;
  } else if (to) {
    d->addr = *to;
    d->mh.msg_name = d->addr.sa.b;
    d->mh.msg_namelen = to->len;
  }
  op->kind = (uint8_t)kind;
  op->handle = h;
  op->u.rw.buf = &d->mh;
  op->u.rw.len = 0;
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
  struct dgram *d = op->priv;
  d->addr.len = d->mh.msg_namelen;
  return &d->addr;
}


int mp_os_getaddrinfo(const char *host, int port, int family, int flags,
                      struct mp_addr *out, int max) {
  struct addrinfo hints, *res = NULL;
  char serv[8];
  int n = 0, err = mp__check_name(host, flags);
  if (err < 0) return err;
  if (port < 0 || port > 65535) return MP_EINVAL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = to_af(family);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV |
                   (flags & MP_AI_PASSIVE ? AI_PASSIVE : 0) |
                   (flags & MP_AI_NUMERICHOST ? AI_NUMERICHOST : 0);
  snprintf(serv, sizeof serv, "%d", port);
  int gai = getaddrinfo(host && host[0] ? host : NULL, serv, &hints, &res);
  if (gai) return mp_err_from_eai(gai, errno);
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

static int fail(void) { return mp_err_from_errno(errno); }

int mp_os_socket(int family, int type, mp_handle_t *out) {
  int t = type == MP_SOCK_DGRAM ? SOCK_DGRAM : SOCK_STREAM;
  int fd = socket(to_af(family), t | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail();
  *out = fd;
  return 0;
}

int mp_os_bind(mp_handle_t h, const struct mp_addr *addr) {
  return bind(h, csa_of(addr), addr->len) < 0 ? fail() : 0;
}

int mp_os_listen(mp_handle_t h, int backlog) {
  return listen(h, backlog) < 0 ? fail() : 0;
}

int mp_os_setsockopt(mp_handle_t h, enum mp_sockopt opt, int value) {
  int level = SOL_SOCKET, name;
  struct linger lg = {value >= 0, value >= 0 ? value : 0};
  const void *val = &value;
  socklen_t len = sizeof value;
  switch (opt) {
    case MP_SO_REUSEADDR: name = SO_REUSEADDR; break;
    case MP_SO_REUSEPORT: name = SO_REUSEPORT; break;
    case MP_SO_KEEPALIVE: name = SO_KEEPALIVE; break;
    case MP_SO_BROADCAST: name = SO_BROADCAST; break;
    case MP_SO_RCVBUF: name = SO_RCVBUF; break;
    case MP_SO_SNDBUF: name = SO_SNDBUF; break;
    case MP_SO_LINGER:
      name = SO_LINGER;
      val = &lg;
      len = sizeof lg;
      break;
    case MP_TCP_NODELAY: level = IPPROTO_TCP; name = TCP_NODELAY; break;
    case MP_IPV6_V6ONLY: level = IPPROTO_IPV6; name = IPV6_V6ONLY; break;
    default: return MP_EINVAL;
  }
  return setsockopt(h, level, name, val, len) < 0 ? fail() : 0;
}

int mp_os_sockname(mp_handle_t h, struct mp_addr *addr, int peer) {
  socklen_t len = sizeof addr->sa.b;
  memset(addr, 0, sizeof *addr);
  int r = peer ? getpeername(h, sa_of(addr), &len)
               : getsockname(h, sa_of(addr), &len);
  if (r < 0) return fail();
  addr->len = len;
  return 0;
}

int mp_os_shutdown(mp_handle_t h) {
  return shutdown(h, SHUT_WR) < 0 ? fail() : 0;
}

enum { TRYSEND_IOV = 64 };

int64_t mp_os_trysend(mp_handle_t h, const struct mp_iov *iov, int n) {
  struct iovec v[TRYSEND_IOV];
  struct msghdr mh;
  ssize_t r;
  if (n == 1) { /* send: the kernel copies no msghdr and no iovec */
    do r = send(h, iov[0].base, iov[0].len, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r >= 0) return r;
    return errno == EWOULDBLOCK ? MP_EAGAIN : fail();
  }
  if (n > TRYSEND_IOV) n = TRYSEND_IOV; /* a partial send, as allowed */
  for (int i = 0; i < n; i++) {
    v[i].iov_base = (void *)iov[i].base;
    v[i].iov_len = iov[i].len;
  }
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = v;
  mh.msg_iovlen = (size_t)(n < 0 ? 0 : n);
  do r = sendmsg(h, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return r;
  return errno == EWOULDBLOCK ? MP_EAGAIN : fail();
}

int64_t mp_os_trysendto(mp_handle_t h, const void *buf, size_t len,
                        const struct mp_addr *to) {
  ssize_t r;
  do r = sendto(h, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                to ? csa_of(to) : NULL, to ? to->len : 0);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return r;
  return errno == EWOULDBLOCK ? MP_EAGAIN : fail();
}

/* Shared listeners (mp.h): Linux spreads connections with SO_REUSEPORT,
 * so nothing shares a listener here (share_win.c is Windows'): as no
 * mp_share_new succeeds, any other call is a caller's bug. */
int mp_share_new(mp_handle_t h, struct mp_share **out) {
  (void)h;
  (void)out;
  return MP_EOPNOTSUPP;
}
static void share_misuse(const char *fn) {
  fprintf(stderr, "moonport: %s: no shared listener exists here "
          "(mp_share_new fails with MP_EOPNOTSUPP)\n", fn);
  abort();
}
int mp_share_dup(struct mp_share *sh, mp_handle_t *out) {
  (void)sh;
  (void)out;
  share_misuse("mp_share_dup");
  return MP_EOPNOTSUPP;
}
void mp_share_close(struct mp_share *sh) {
  (void)sh;
  share_misuse("mp_share_close");
}
void mp_op_prep_accept_shared(struct mp_op *op, struct mp_share *sh) {
  (void)op;
  (void)sh;
  share_misuse("mp_op_prep_accept_shared");
}
void mp_share_stats(struct mp_share *sh, int *waiting, int *held) {
  (void)sh;
  (void)waiting;
  (void)held;
  share_misuse("mp_share_stats");
}
