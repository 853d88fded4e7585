/* test-net.c: the socket seam: struct mp_addr, SENDTO / RECVFROM over
 * 127.0.0.1, GETADDRINFO, and the mp_os_* socket calls. No DNS: only
 * "localhost" (the hosts file) and names refused before any lookup. */
#include <string.h>

#include "mp_os.h"
#include "task.h"

static int64_t res[8];
static int nres;

static void res_cb(struct mp_op *op) {
  res[nres++] = op->result;
}

/* Formats a, checks the family, host and port. */
static void check_addr(const struct mp_addr *a, int family, const char *host,
                       int port) {
  char got[128];
  int p = -2;
  ASSERT_EQ(mp_addr_family(a), family);
  ASSERT_EQ(mp_addr_format(a, got, sizeof got, &p), family);
  if (strcmp(got, host) != 0) {
    fprintf(stderr, "host %s, expected %s\n", got, host);
    abort();
  }
  ASSERT_EQ(p, port);
}

/* A copy made of the bytes alone (as the bindings store them) reads the
 * same. */
static void check_copy(const struct mp_addr *a, int family, const char *host,
                       int port) {
  struct mp_addr b;
  memset(&b, 0xa5, sizeof b);
  memcpy(b.sa.b, a->sa.b, a->len);
  b.len = a->len;
  check_addr(&b, family, host, port);
}

TEST_IMPL(addr_parse_format) {
  struct mp_addr a;
  char host[128];
  int port;
  ASSERT_EQ(mp_addr_ip(&a, "127.0.0.1", 8080), 0);
  check_addr(&a, MP_AF_INET, "127.0.0.1", 8080);
  check_copy(&a, MP_AF_INET, "127.0.0.1", 8080);
  ASSERT_EQ(mp_addr_ip(&a, "0.0.0.0", 0), 0);
  check_addr(&a, MP_AF_INET, "0.0.0.0", 0);
  ASSERT_EQ(mp_addr_ip(&a, "::1", 65535), 0);
  check_addr(&a, MP_AF_INET6, "::1", 65535);
  check_copy(&a, MP_AF_INET6, "::1", 65535);
  ASSERT_EQ(mp_addr_ip(&a, "2001:DB8:0:0::1", 443), 0);
  check_addr(&a, MP_AF_INET6, "2001:db8::1", 443); /* canonical text */
  ASSERT_EQ(mp_addr_ip(&a, "::ffff:10.0.0.1", 1), 0);
  check_addr(&a, MP_AF_INET6, "::ffff:10.0.0.1", 1);
  ASSERT_EQ(mp_addr_unix(&a, "/tmp/mp.sock", 12), 0);
  check_addr(&a, MP_AF_UNIX, "/tmp/mp.sock", -1);
  check_copy(&a, MP_AF_UNIX, "/tmp/mp.sock", -1);
  ASSERT_EQ(mp_addr_unix(&a, "rel/x", 3), 0); /* len bytes, not the rest */
  check_addr(&a, MP_AF_UNIX, "rel", -1);
  /* Bad input: names, bad literals, ports out of range. */
  static const char *const bad[] = {
    "", "localhost", "no such host", "1.2.3", "256.1.1.1", "1.2.3.4.5",
    "127.0.0.1 ", " ::1", "::1::2", "[::1]", "1.2.3.4:80", "12345"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&a, 0xa5, sizeof a);
    ASSERT_EQ(mp_addr_ip(&a, bad[i], 80), MP_EINVAL);
    ASSERT_EQ(mp_addr_family(&a), MP_EINVAL);
    ASSERT_EQ(mp_addr_format(&a, host, sizeof host, &port), MP_EINVAL);
    ASSERT_EQ(host[0], '\0');
  }
  ASSERT_EQ(mp_addr_ip(&a, "127.0.0.1", -1), MP_EINVAL);
  ASSERT_EQ(mp_addr_ip(&a, "127.0.0.1", 65536), MP_EINVAL);
  ASSERT_EQ(mp_addr_unix(&a, "", 0), MP_EINVAL);
  ASSERT_EQ(mp_addr_unix(&a, "a\0b", 3), MP_EINVAL);
  char longp[300];
  memset(longp, 'p', sizeof longp);
  ASSERT_EQ(mp_addr_unix(&a, longp, sizeof longp), MP_ENAMETOOLONG);
  ASSERT_EQ(mp_addr_family(&a), MP_EINVAL);
  /* Bytes that are no address: cut, padded, empty, oversized. */
  ASSERT_EQ(mp_addr_ip(&a, "127.0.0.1", 1), 0);
  a.len--;
  ASSERT_EQ(mp_addr_family(&a), MP_EINVAL);
  a.len += 2;
  ASSERT_EQ(mp_addr_family(&a), MP_EINVAL);
  a.len = 0;
  ASSERT_EQ(mp_addr_family(&a), MP_EINVAL);
  a.len = sizeof a.sa.b + 1;
  ASSERT_EQ(mp_addr_family(&a), MP_EINVAL);
  memset(&a, 0, sizeof a);
  a.len = 16; /* family 0 */
  ASSERT_EQ(mp_addr_family(&a), MP_EINVAL);
  /* A small buffer truncates, never overflows. */
  ASSERT_EQ(mp_addr_ip(&a, "::1", 7), 0);
  char tiny[3] = {'x', 'x', 'x'};
  ASSERT_EQ(mp_addr_format(&a, tiny, 2, &port), MP_AF_INET6);
  ASSERT(tiny[0] == ':' && tiny[1] == '\0' && tiny[2] == 'x');
  return 0;
}

/* A bound UDP socket on 127.0.0.1 and its address. */
static mp_handle_t udp_socket(struct mp_addr *a) {
  mp_handle_t h;
  ASSERT_EQ(mp_os_socket(MP_AF_INET, MP_SOCK_DGRAM, &h), 0);
  ASSERT_EQ(mp_addr_ip(a, "127.0.0.1", 0), 0);
  ASSERT_EQ(mp_os_bind(h, a), 0);
  ASSERT_EQ(mp_os_sockname(h, a, 0), 0);
  return h;
}

TEST_IMPL(udp_sendto_recvfrom) {
  struct mp_loop *loop = test_loop();
  struct mp_addr aa, ba;
  char host[64];
  int aport, bport;
  mp_handle_t a = udp_socket(&aa), b = udp_socket(&ba);
  mp_addr_format(&aa, host, sizeof host, &aport);
  mp_addr_format(&ba, host, sizeof host, &bport);
  ASSERT(aport > 0 && bport > 0 && aport != bport);
  nres = 0;
  /* recvfrom first: it waits; its buffer and header are in flight */
  char *buf = calloc(1, 64);
  struct mp_op *rf = mp_op_new(loop, res_cb, NULL);
  mp_op_own(rf, buf, NULL);
  ASSERT_EQ(mp_op_prep_recvfrom(rf, a, buf, 64), 0);
  ASSERT_EQ(mp_op_submit(rf), 0);
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_NOWAIT), 1);
  ASSERT_EQ(nres, 0);
  ASSERT(mp_loop_buffer_inflight(loop, buf + 63, 1));
  ASSERT(mp_loop_buffer_inflight(loop, rf->priv, 1));
  ASSERT(!mp_loop_buffer_inflight(loop, buf + 64, 1));
  /* the payload is the sender's; its address a copy */
  static const char msg[] = "datagram";
  struct mp_op *st = mp_op_new(loop, res_cb, NULL);
  struct mp_addr to = aa;
  ASSERT_EQ(mp_op_prep_sendto(st, b, msg, 8, &to), 0);
  memset(&to, 0, sizeof to);
  ASSERT_EQ(mp_op_submit(st), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 2);
  ASSERT(res[0] == 8 && res[1] == 8);
  ASSERT_EQ(memcmp(buf, "datagram", 8), 0);
  check_addr(mp_op_from(rf), MP_AF_INET, "127.0.0.1", bport);
  mp_op_release(st);
  /* the same op again, now with the datagram already queued (the
   * immediate path), from the non-blocking mp_os_trysendto */
  nres = 0;
  ASSERT_EQ(mp_os_trysendto(a, "back", 4, &ba), 4);
  struct mp_op *rb = mp_op_new(loop, res_cb, NULL);
  char got[16];
  ASSERT_EQ(mp_op_prep_recvfrom(rb, b, got, sizeof got), 0);
  ASSERT_EQ(mp_op_submit(rb), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], 4);
  ASSERT_EQ(memcmp(got, "back", 4), 0);
  check_addr(mp_op_from(rb), MP_AF_INET, "127.0.0.1", aport);
  /* a datagram larger than the buffer is cut to it */
  nres = 0;
  ASSERT_EQ(mp_os_trysendto(b, "0123456789", 10, &aa), 10);
  ASSERT_EQ(mp_op_prep_recvfrom(rf, a, buf, 4), 0);
  ASSERT_EQ(mp_op_submit(rf), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], 4);
  ASSERT_EQ(memcmp(buf, "0123", 4), 0);
  /* no address on an unconnected socket: an error, not a crash */
  nres = 0;
  ASSERT_EQ(mp_op_prep_sendto(rb, b, "x", 1, NULL), 0);
  ASSERT_EQ(mp_op_submit(rb), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], MP_EDESTADDRREQ);
  ASSERT_EQ(mp_os_trysendto(b, "x", 1, NULL), MP_EDESTADDRREQ);
  /* cancel a waiting recvfrom: it completes, cancelled */
  nres = 0;
  ASSERT_EQ(mp_op_prep_recvfrom(rb, b, got, sizeof got), 0);
  ASSERT_EQ(mp_op_submit(rb), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  mp_op_cancel(rb);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], MP_ECANCELED);
  mp_op_release(rb);
  mp_op_release(rf);
  ASSERT_EQ(mp_os_close(a), 0);
  ASSERT_EQ(mp_os_close(b), 0);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(getaddrinfo_op) {
  struct mp_loop *loop = test_loop();
  nres = 0;
  struct mp_op *op = mp_op_new(loop, res_cb, NULL);
  ASSERT_EQ(mp_op_prep_getaddrinfo(op, "localhost", 8080, MP_AF_INET, 0),
            0);
  ASSERT_EQ(mp_op_submit(op), 0);
  /* the pool writes the addresses: in flight until the callback */
  ASSERT(mp_loop_buffer_inflight(loop, mp_op_addrs(op) + 1, 1));
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 1);
  ASSERT(!mp_loop_buffer_inflight(loop, mp_op_addrs(op) + 1, 1));
  ASSERT_GE(res[0], 1);
  ASSERT_LE(res[0], MP_ADDRS_MAX);
  const struct mp_addr *addrs = mp_op_addrs(op);
  for (int i = 0; i < res[0]; i++) {
    char host[64];
    int port;
    ASSERT_EQ(mp_addr_format(&addrs[i], host, sizeof host, &port),
              MP_AF_INET);
    ASSERT_EQ(port, 8080);
    ASSERT_EQ(strncmp(host, "127.", 4), 0); /* the loopback net */
    for (int k = 0; k < i; k++) /* distinct */
      ASSERT(addrs[k].len != addrs[i].len ||
             memcmp(addrs[k].sa.b, addrs[i].sa.b, addrs[i].len) != 0);
  }
  /* The wildcard, numeric: never blocks, both families (or one). */
  struct mp_addr w[MP_ADDRS_MAX];
  int n = mp_os_getaddrinfo(NULL, 0, MP_AF_UNSPEC,
                            MP_AI_PASSIVE | MP_AI_NUMERICHOST, w,
                            MP_ADDRS_MAX);
  ASSERT_GE(n, 1);
  for (int i = 0; i < n; i++) {
    char host[64];
    int port, f = mp_addr_format(&w[i], host, sizeof host, &port);
    ASSERT(f == MP_AF_INET ? !strcmp(host, "0.0.0.0")
                           : f == MP_AF_INET6 && !strcmp(host, "::"));
  }
  ASSERT_EQ(mp_os_getaddrinfo("::1", 7, MP_AF_UNSPEC, MP_AI_NUMERICHOST, w,
                              1), 1);
  check_addr(&w[0], MP_AF_INET6, "::1", 7);
  /* Names that are no names fail before any lookup, as MP_EAI_NONAME, in
   * prep (the op stays unsubmitted) and in the blocking call. */
  static const char *const bad[] = {
    "no such host", "a..b", ".x", "x/y", "1.2.3.4.5", "999",
    "\xc3\xa9t\xc3\xa9"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_EQ(mp_op_prep_getaddrinfo(op, bad[i], 80, MP_AF_UNSPEC, 0),
              MP_EAI_NONAME);
    ASSERT_EQ(mp_os_getaddrinfo(bad[i], 80, MP_AF_UNSPEC, 0, w, 4),
              MP_EAI_NONAME);
  }
  char longname[300];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  ASSERT_EQ(mp_op_prep_getaddrinfo(op, longname, 80, MP_AF_UNSPEC, 0),
            MP_EAI_NONAME);
  /* A bad literal asked numerically: the resolver's own EAI code. */
  ASSERT_EQ(mp_os_getaddrinfo("1.2.3", 80, MP_AF_INET6, MP_AI_NUMERICHOST,
                              w, 4) < 0, 1);
  ASSERT_EQ(mp_os_getaddrinfo("localhost", 70000, MP_AF_UNSPEC, 0, w, 4),
            MP_EINVAL);
  ASSERT(strcmp(mp_errname(MP_EAI_NONAME), "EAI_NONAME") == 0);
  mp_op_release(op);
  CLOSE_LOOP(loop);
  return 0;
}

/* The synchronous socket calls: a TCP pair through listen, the connect op
 * and accept, names on both ends, options, shutdown and trysend. */
TEST_IMPL(os_socket_calls) {
  struct mp_loop *loop = test_loop();
  struct mp_addr la, ca, peer;
  mp_handle_t l, c;
  char host[64];
  int lport, port;
  ASSERT_EQ(mp_os_socket(MP_AF_INET, MP_SOCK_STREAM, &l), 0);
  ASSERT_EQ(mp_os_setsockopt(l, MP_SO_REUSEADDR, 1), 0);
  ASSERT_EQ(mp_addr_ip(&la, "127.0.0.1", 0), 0);
  ASSERT_EQ(mp_os_bind(l, &la), 0);
  ASSERT_EQ(mp_os_listen(l, 8), 0);
  ASSERT_EQ(mp_os_sockname(l, &la, 0), 0);
  ASSERT_EQ(mp_addr_format(&la, host, sizeof host, &lport), MP_AF_INET);
  ASSERT_GT(lport, 0);
  ASSERT_EQ(mp_os_sockname(l, &peer, 1), MP_ENOTCONN);
  ASSERT_EQ(mp_os_socket(MP_AF_INET, MP_SOCK_STREAM, &c), 0);
  ASSERT_EQ(mp_os_setsockopt(c, MP_TCP_NODELAY, 1), 0);
  ASSERT_EQ(mp_os_setsockopt(c, MP_SO_KEEPALIVE, 1), 0);
  ASSERT_EQ(mp_os_setsockopt(c, MP_SO_SNDBUF, 65536), 0);
  ASSERT_EQ(mp_os_setsockopt(c, MP_SO_LINGER, -1), 0);
  ASSERT_EQ(mp_os_setsockopt(c, 99, 1), MP_EINVAL);
  ASSERT_EQ(mp_os_setsockopt(c, MP_IPV6_V6ONLY, 1) < 0, 1); /* not v6 */
  nres = 0;
  struct mp_op *acc = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_accept(acc, l);
  ASSERT_EQ(mp_op_submit(acc), 0);
  struct mp_op *con = mp_op_new(loop, res_cb, NULL);
  ASSERT_EQ(mp_op_prep_connect(con, c, &la), 0);
  memset(&la, 0, sizeof la); /* the op has its own copy */
  ASSERT_EQ(mp_op_submit(con), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 2);
  ASSERT_GE(acc->result, 0);
  ASSERT_EQ(con->result, 0);
  mp_handle_t s = (mp_handle_t)acc->result;
  ASSERT_EQ(mp_os_sockname(c, &peer, 1), 0);
  ASSERT_EQ(mp_addr_format(&peer, host, sizeof host, &port), MP_AF_INET);
  ASSERT_EQ(port, lport);
  ASSERT_EQ(mp_os_sockname(c, &ca, 0), 0);
  ASSERT_EQ(mp_os_sockname(s, &peer, 1), 0);
  ASSERT_EQ(peer.len, ca.len);
  ASSERT_EQ(memcmp(peer.sa.b, ca.sa.b, ca.len), 0);
  /* trysend gathers the pieces */
  struct mp_iov iov[3] = {{"he", 2}, {"", 0}, {"llo", 3}};
  ASSERT_EQ(mp_os_trysend(c, iov, 3), 5);
  ASSERT_EQ(mp_os_shutdown(c), 0);
  nres = 0;
  char got[16] = {0};
  mp_op_prep_recv(acc, s, got, sizeof got);
  ASSERT_EQ(mp_op_submit(acc), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], 5);
  ASSERT_EQ(memcmp(got, "hello", 5), 0);
  nres = 0;
  ASSERT_EQ(mp_op_submit(acc), 0); /* then end of stream */
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], 0);
  /* after shutdown the writer side refuses, without SIGPIPE */
  ASSERT_EQ(mp_os_trysend(c, iov, 1), MP_EPIPE);
  /* a full send buffer says MP_EAGAIN */
  ASSERT_EQ(mp_os_setsockopt(s, MP_SO_SNDBUF, 4096), 0);
  static char big[65536];
  struct mp_iov bigv = {big, sizeof big};
  int64_t r;
  while ((r = mp_os_trysend(s, &bigv, 1)) > 0) {}
  ASSERT_EQ(r, MP_EAGAIN);
  mp_op_release(acc);
  mp_op_release(con);
  ASSERT_EQ(mp_os_close(s), 0);
  ASSERT_EQ(mp_os_close(c), 0);
  ASSERT_EQ(mp_os_close(l), 0);
  /* bad handles and families */
  ASSERT_EQ(mp_os_shutdown(MP_INVALID_HANDLE), MP_EBADF);
  ASSERT_EQ(mp_os_sockname(MP_INVALID_HANDLE, &peer, 0), MP_EBADF);
  ASSERT_EQ(mp_os_socket(42, MP_SOCK_STREAM, &c) < 0, 1);
  CLOSE_LOOP(loop);
  return 0;
}

static int nfreed;
static void count_free(void *p) {
  nfreed++;
  free(p);
}

/* The socket preps copy what the kernel needs (address, message header,
 * name) into memory of their own: what the op owns stays the caller's
 * (the bindings keep their request record there), freed once, on
 * release; preps replacing each other leak nothing (ASan, valgrind). */
TEST_IMPL(socket_preps_keep_owned) {
  struct mp_loop *loop = test_loop();
  struct mp_op *op = mp_op_new(loop, res_cb, NULL);
  char *mine = malloc(32);
  struct mp_addr to;
  nfreed = 0;
  mp_op_own(op, mine, count_free);
  ASSERT_EQ(mp_addr_ip(&to, "127.0.0.1", 9), 0);
  ASSERT_EQ(mp_op_prep_connect(op, 0, &to), 0);
  ASSERT_EQ(mp_op_prep_sendto(op, 0, mine, 32, &to), 0);
  ASSERT_EQ(mp_op_prep_sendto(op, 0, mine, 32, NULL), 0);
  ASSERT_EQ(mp_op_prep_recvfrom(op, 0, mine, 32), 0);
  ASSERT_EQ(mp_op_prep_getaddrinfo(op, "localhost", 1, MP_AF_INET, 0), 0);
  ASSERT_EQ(mp_op_prep_connect(op, 0, &to), 0);
  ASSERT(op->owned == mine);
  ASSERT_EQ(nfreed, 0);
  mp_op_release(op);
  ASSERT_EQ(nfreed, 1);
  CLOSE_LOOP(loop);
  return 0;
}

#ifndef _WIN32
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether fn(h) aborts (its message expected: stderr closed). */
static int aborts(void (*fn)(mp_handle_t), mp_handle_t h) {
  pid_t pid = fork();
  if (pid == 0) {
    close(2);
    fn(h);
    _exit(0);
  }
  int status;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

/* (no mp_share_new succeeds here: a made-up record stands for a bug's) */
static struct mp_share *bogus(void) { return (struct mp_share *)&nres; }
static void share_dup(mp_handle_t h) {
  mp_share_dup(bogus(), &h);
}
static void share_close(mp_handle_t h) {
  (void)h;
  mp_share_close(bogus());
}
static void share_accept(mp_handle_t h) {
  struct mp_op op;
  (void)h;
  mp_op_prep_accept_shared(&op, bogus());
}
static void share_stats(mp_handle_t h) {
  int w, k;
  (void)h;
  mp_share_stats(bogus(), &w, &k);
}

/* Shared listeners are Windows' (SO_REUSEPORT here): mp_share_new says
 * so and leaves the socket the caller's; every other call, which only a
 * caller's bug can make, aborts instead of quietly doing nothing. */
TEST_IMPL(share_unsupported) {
  struct mp_share *sh = NULL;
  struct mp_addr a;
  mp_handle_t l;
  ASSERT_EQ(mp_os_socket(MP_AF_INET, MP_SOCK_STREAM, &l), 0);
  ASSERT_EQ(mp_share_new(l, &sh), MP_EOPNOTSUPP);
  ASSERT(sh == NULL);
  ASSERT_EQ(mp_os_sockname(l, &a, 0), 0); /* still open */
  ASSERT(aborts(share_dup, l));
  ASSERT(aborts(share_close, l));
  ASSERT(aborts(share_accept, l));
  ASSERT(aborts(share_stats, l));
  ASSERT_EQ(mp_os_close(l), 0);
  return 0;
}
#endif
