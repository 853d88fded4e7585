/* os_unix.c: clocks, threads, wake descriptors and the blocking bodies
 * of ops, for Linux. No loop code. */
#include "mp_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h> /* renameat */
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t mp__hrtime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mp__cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int mp__mutex_init(mp__mutex *m) {
  return mp_err_from_errno(pthread_mutex_init(m, NULL));
}

int mp__cond_init(mp__cond *c) {
  pthread_condattr_t a;
  int r = pthread_condattr_init(&a);
  if (r) return mp_err_from_errno(r);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  r = pthread_cond_init(c, &a);
  pthread_condattr_destroy(&a);
  return mp_err_from_errno(r);
}

int mp__thread_create(mp__thread *t, void *(*fn)(void *), void *arg) {
  /* Workers must never take the host's signals (SIGINT for the REPL,
   * SIGCHLD for processes): block everything while creating them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int r = pthread_create(t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return mp_err_from_errno(r);
}

void mp__thread_join(mp__thread t) { pthread_join(t, NULL); }

int mp__wakefd_open(void) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return fd < 0 ? mp_err_from_errno(errno) : fd;
}

void mp__wakefd_signal(int fd) {
  uint64_t one = 1;
  ssize_t r;
  do r = write(fd, &one, sizeof one); while (r < 0 && errno == EINTR);
  /* EAGAIN means the counter is saturated: the loop is awake anyway. */
}

void mp__wakefd_drain(int fd) {
  uint64_t n;
  ssize_t r;
  do r = read(fd, &n, sizeof n); while (r < 0 && errno == EINTR);
}

int mp__wakefd_wait(int fd, int64_t timeout_ns) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  struct timespec ts = {(time_t)(timeout_ns / 1000000000),
                        (long)(timeout_ns % 1000000000)};
  return ppoll(&p, 1, timeout_ns < 0 ? NULL : &ts, NULL) > 0;
}

void mp__close_fd(int fd) {
  if (fd >= 0) close(fd);
}

/* The blocking body of a file or path op sent to the threadpool (by the
 * epoll backend, or by io_uring for opcodes the kernel lacks). */
void mp__os_blocking(struct mp_op *op) {
  ssize_t r;
  if (op->kind >= MP_OP_OPEN && op->kind <= MP_OP_WRITEFILE) {
    mp__fs_blocking(op); /* fs_unix.c */
    return;
  }
  do {
    switch (op->kind) {
      case MP_OP_READ:
        r = op->u.rw.off >= 0
                ? pread(op->handle, op->u.rw.buf, op->u.rw.len, op->u.rw.off)
                : read(op->handle, op->u.rw.buf, op->u.rw.len);
        break;
      case MP_OP_WRITE:
        r = op->u.rw.off >= 0
                ? pwrite(op->handle, op->u.rw.buf, op->u.rw.len, op->u.rw.off)
                : write(op->handle, op->u.rw.buf, op->u.rw.len);
        break;
      case MP_OP_CLOSE:
        r = close(op->handle);
        if (r < 0 && errno == EINTR) r = 0; /* the fd is gone on Linux */
        break;
      default:
        r = -1;
        errno = EINVAL;
    }
  } while (r < 0 && errno == EINTR);
  op->result = r < 0 ? mp_err_from_errno(errno) : r;
}
