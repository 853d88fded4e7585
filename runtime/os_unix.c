/* os_unix.c: clocks, threads and wake descriptors for Linux. No loop code. */
#include "os.h"
#include "mp.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
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

int mp__mutex_init(mp__mutex *m) { return -pthread_mutex_init(m, NULL); }

int mp__cond_init(mp__cond *c) {
  pthread_condattr_t a;
  int r = pthread_condattr_init(&a);
  if (r) return -r;
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  r = pthread_cond_init(c, &a);
  pthread_condattr_destroy(&a);
  return -r;
}

int mp__thread_create(mp__thread *t, void *(*fn)(void *), void *arg) {
  /* Workers must never take the host's signals (SIGINT for the REPL,
   * SIGCHLD for processes): block everything while creating them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int r = pthread_create(t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return -r;
}

void mp__thread_join(mp__thread t) { pthread_join(t, NULL); }

int mp__wakefd_open(void) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return fd < 0 ? -errno : fd;
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

void mp__wakefd_wait(int fd, int64_t timeout_ns) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  struct timespec ts = {(time_t)(timeout_ns / 1000000000),
                        (long)(timeout_ns % 1000000000)};
  ppoll(&p, 1, timeout_ns < 0 ? NULL : &ts, NULL);
}

void mp__close_fd(int fd) {
  if (fd >= 0) close(fd);
}
