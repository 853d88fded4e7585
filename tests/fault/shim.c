/* shim.c: an LD_PRELOAD library that injects seeded faults into the
 * syscalls moonport's epoll backend, threadpool and bindings make.
 *
 *   MP_FAULT_SEED=N MP_FAULT_RATE=0.1 LD_PRELOAD=libmp_fault.so cmd ...
 *
 * Only calls made from moonport's own code are touched (the caller's
 * object file is named moonport*: the module or the command), and only on
 * sockets, pipes/FIFOs and regular files above stderr, so the harness's
 * own IO (busted's output, /proc, loading scripts) runs clean. Each fault
 * is one the real call may return at that point:
 *   - short counts: reads of stream sockets and pipes (never regular files,
 *     which read short only at their end, nor datagrams); writes of stream
 *     sockets, pipes and files; sendmsg on stream sockets;
 *   - EAGAIN: only on non-blocking descriptors (O_NONBLOCK, MSG_DONTWAIT),
 *     and the call is not made;
 *   - EINTR: only on blocking sockets and pipes (a call that may sleep),
 *     and on the blocking open of a FIFO; the call is not made;
 *   - EMFILE/ENFILE/ENOBUFS/ENOMEM from accept4 (the connection stays in
 *     the backlog, as when the process really is out of descriptors).
 * With MP_FAULT_HARD=1 also errors the caller must report rather than
 * absorb: ENOMEM from reads/writes, EMFILE from socket/openat, EAGAIN from
 * a Unix-domain connect.
 *
 * MP_FAULT_STATS=FILE appends "seed rate calls faults" per process at exit.
 * Not part of moonport: a test tool (global state is fine here). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static uint64_t seed;
static uint32_t rate; /* per 2^32; 0: off */
static int hard;
static const char *obj = "moonport";
static atomic_uint_fast64_t ncalls, nfaults;

__attribute__((constructor)) static void fault_init(void) {
  const char *s = getenv("MP_FAULT_SEED"), *r = getenv("MP_FAULT_RATE");
  const char *h = getenv("MP_FAULT_HARD"), *o = getenv("MP_FAULT_OBJ");
  double p = r ? atof(r) : 0;
  if (!s || !*s || p <= 0) return;
  seed = strtoull(s, NULL, 0);
  rate = p >= 1 ? UINT32_MAX : (uint32_t)(p * 4294967296.0);
  hard = h && *h == '1';
  if (o && *o) obj = o;
}

__attribute__((destructor)) static void fault_fini(void) {
  const char *path = getenv("MP_FAULT_STATS");
  if (!rate || !path || !*path || !atomic_load(&ncalls)) return;
  FILE *f = fopen(path, "a");
  if (!f) return;
  fprintf(f, "%llu %g %llu %llu\n", (unsigned long long)seed,
          rate / 4294967296.0, (unsigned long long)atomic_load(&ncalls),
          (unsigned long long)atomic_load(&nfaults));
  fclose(f);
}

/* splitmix64 of (seed, call number): deterministic for one thread. */
static uint32_t rnd(void) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (atomic_fetch_add(&ncalls, 1)
                                               + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static int from_moonport(void *ra) {
  Dl_info info;
  if (!dladdr(ra, &info) || !info.dli_fname) return 0;
  const char *b = strrchr(info.dli_fname, '/');
  b = b ? b + 1 : info.dli_fname;
  return strncmp(b, obj, strlen(obj)) == 0;
}

enum { K_SOCK = 1, K_PIPE = 2, K_REG = 4, K_NB = 8, K_STREAM = 16,
       K_UNIX = 32 };

static int fd_kind(int fd) {
  struct stat st;
  int k, t = 0;
  socklen_t len = sizeof t;
  if (fd <= 2 || fstat(fd, &st) < 0) return 0;
  if (S_ISSOCK(st.st_mode)) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    k = K_SOCK;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &len) == 0 &&
        t == SOCK_STREAM)
      k |= K_STREAM;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        ss.ss_family == AF_UNIX)
      k |= K_UNIX;
  } else if (S_ISFIFO(st.st_mode)) {
    k = K_PIPE | K_STREAM;
  } else if (S_ISREG(st.st_mode)) {
    k = K_REG;
  } else {
    return 0;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK)) k |= K_NB;
  return k;
}

enum { RD, WR, ACC, CONN };

/* Decides the fault for one call: 0 (none; *len may be shortened, 0
 * means the call cannot be short) or a negative errno to fail with. */
static int roll(void *ra, int fd, int what, int dontwait, size_t *len) {
  if (!rate || rnd() > rate || !from_moonport(ra)) return 0;
  int k = fd_kind(fd), err = 0;
  if (!k) return 0;
  int nb = (k & K_NB) || dontwait, sp = k & (K_SOCK | K_PIPE);
  switch (rnd() % 4) {
    case 0:
      if (what == ACC) err = -(int[]){EMFILE, ENFILE, ENOBUFS, ENOMEM}
                                     [rnd() % 4];
      else if (len && *len > 1 &&
               ((what == RD && (k & K_STREAM)) ||
                (what == WR && (k & (K_STREAM | K_REG)))))
        *len = 1 + rnd() % (*len - 1);
      break;
    case 1:
      if (sp && nb && what != CONN) err = -EAGAIN;
      break;
    case 2:
      if (sp && !nb && what != CONN) err = -EINTR;
      break;
    default:
      if (!hard) break;
      if (what == RD || what == WR) err = -ENOMEM;
      else if (what == CONN && (k & K_UNIX)) err = -EAGAIN;
      break;
  }
  if (err) atomic_fetch_add(&nfaults, 1);
  return err;
}

#define REAL(name) \
  static __typeof__(name) *real_##name; \
  if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

#define FAIL(e) return (errno = -(e), -1)

/* Counts a shortened call as a fault. */
static size_t shorten(void *ra, int fd, int what, int dontwait, size_t n,
                      int *err) {
  size_t len = n;
  *err = roll(ra, fd, what, dontwait, &len);
  if (len != n) atomic_fetch_add(&nfaults, 1);
  return len;
}

ssize_t read(int fd, void *buf, size_t n) {
  REAL(read);
  int e;
  size_t len = shorten(__builtin_return_address(0), fd, RD, 0, n, &e);
  if (e) FAIL(e);
  return real_read(fd, buf, len);
}

ssize_t write(int fd, const void *buf, size_t n) {
  REAL(write);
  int e;
  size_t len = shorten(__builtin_return_address(0), fd, WR, 0, n, &e);
  if (e) FAIL(e);
  return real_write(fd, buf, len);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
  REAL(pread);
  int e;
  size_t len = shorten(__builtin_return_address(0), fd, RD, 0, n, &e);
  if (e) FAIL(e);
  return real_pread(fd, buf, len, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  REAL(pwrite);
  int e;
  size_t len = shorten(__builtin_return_address(0), fd, WR, 0, n, &e);
  if (e) FAIL(e);
  return real_pwrite(fd, buf, len, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) {
  REAL(pread64);
  int e;
  size_t len = shorten(__builtin_return_address(0), fd, RD, 0, n, &e);
  if (e) FAIL(e);
  return real_pread64(fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  REAL(pwrite64);
  int e;
  size_t len = shorten(__builtin_return_address(0), fd, WR, 0, n, &e);
  if (e) FAIL(e);
  return real_pwrite64(fd, buf, len, off);
}

ssize_t recv(int fd, void *buf, size_t n, int flags) {
  REAL(recv);
  int e;
  size_t len = shorten(__builtin_return_address(0), fd, RD,
                       flags & MSG_DONTWAIT, n, &e);
  if (e) FAIL(e);
  return real_recv(fd, buf, len, flags);
}

ssize_t send(int fd, const void *buf, size_t n, int flags) {
  REAL(send);
  int e;
  size_t len = shorten(__builtin_return_address(0), fd, WR,
                       flags & MSG_DONTWAIT, n, &e);
  if (e) FAIL(e);
  return real_send(fd, buf, len, flags);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags,
               const struct sockaddr *to, socklen_t tolen) {
  REAL(sendto);
  int e;
  size_t len = shorten(__builtin_return_address(0), fd, WR,
                       flags & MSG_DONTWAIT, n, &e);
  if (e) FAIL(e);
  return real_sendto(fd, buf, len, flags, to, tolen);
}

ssize_t recvmsg(int fd, struct msghdr *m, int flags) {
  REAL(recvmsg);
  /* Datagrams only in moonport: never short. */
  int e = roll(__builtin_return_address(0), fd, RD, flags & MSG_DONTWAIT,
               NULL);
  if (e) FAIL(e);
  return real_recvmsg(fd, m, flags);
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags) {
  REAL(sendmsg);
  size_t total = 0;
  for (size_t i = 0; i < m->msg_iovlen; i++) total += m->msg_iov[i].iov_len;
  int e, t = 0;
  socklen_t tl = sizeof t;
  size_t len = total;
  void *ra = __builtin_return_address(0);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &tl) == 0 && t == SOCK_STREAM)
    len = shorten(ra, fd, WR, flags & MSG_DONTWAIT, total, &e);
  else
    e = roll(ra, fd, WR, flags & MSG_DONTWAIT, NULL); /* datagrams */
  if (e) FAIL(e);
  if (len == total || m->msg_iovlen > 1024) return real_sendmsg(fd, m, flags);
  /* Short: the same message cut after len bytes. */
  struct iovec iov[1024];
  struct msghdr cut = *m;
  size_t n = 0, left = len;
  for (; n < m->msg_iovlen && left; n++) {
    iov[n] = m->msg_iov[n];
    if (iov[n].iov_len > left) iov[n].iov_len = left;
    left -= iov[n].iov_len;
  }
  cut.msg_iov = iov;
  cut.msg_iovlen = n;
  return real_sendmsg(fd, &cut, flags);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
  REAL(accept4);
  int e = roll(__builtin_return_address(0), fd, ACC, 0, NULL);
  if (e) FAIL(e);
  return real_accept4(fd, addr, len, flags);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  REAL(connect);
  int e = roll(__builtin_return_address(0), fd, CONN, 0, NULL);
  if (e) FAIL(e);
  return real_connect(fd, addr, len);
}

int socket(int domain, int type, int protocol) {
  REAL(socket);
  if (hard && rate && rnd() <= rate / 4 &&
      from_moonport(__builtin_return_address(0))) {
    atomic_fetch_add(&nfaults, 1);
    FAIL(-EMFILE);
  }
  return real_socket(domain, type, protocol);
}

int openat(int dirfd, const char *path, int flags, ...) {
  REAL(openat);
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  if (rate && rnd() <= rate && from_moonport(__builtin_return_address(0))) {
    struct stat st;
    if (hard && rnd() % 2) {
      atomic_fetch_add(&nfaults, 1);
      FAIL(-EMFILE);
    }
    /* A blocking FIFO open sleeps until the other end opens: a signal may
     * interrupt it. */
    if (!(flags & O_NONBLOCK) && fstatat(dirfd, path, &st, 0) == 0 &&
        S_ISFIFO(st.st_mode)) {
      atomic_fetch_add(&nfaults, 1);
      FAIL(-EINTR);
    }
  }
  return real_openat(dirfd, path, flags, mode);
}
