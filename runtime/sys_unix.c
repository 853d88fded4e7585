/* sys_unix.c: mp_os.h's memory, handle and thread calls for Linux: the
 * regions of moonport's Lua allocator, and what mp.debug and the leak
 * check at state close list (descriptors from /proc/self/fd, threads from
 * /proc/self/task). */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mp_os.h"

void *mp_os_map(size_t size, size_t align) {
  size_t extra = align > 1 ? align : 0;
  /* Map align more to cut out an aligned range. */
  char *p = mmap(NULL, size + extra, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  char *start = p;
  if (extra) {
    uintptr_t mask = (uintptr_t)align - 1;
    start = (char *)(((uintptr_t)p + mask) & ~mask);
    if (start > p) munmap(p, (size_t)(start - p));
    if (start + size < p + size + extra)
      munmap(start + size, (size_t)(p + size + extra - (start + size)));
  }
#ifdef MADV_HUGEPAGE
  madvise(start, size, MADV_HUGEPAGE);
#endif
  return start;
}

void mp_os_unmap(void *p, size_t size) {
  if (p) munmap(p, size);
}

/* What descriptor fd is ("socket:[1234]", "/tmp/x", "pipe:[55]"). */
static const char *fd_name(int fd, char *buf, size_t n) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t r = readlink(path, buf, n - 1);
  if (r < 0) return "?";
  buf[r] = 0;
  return buf;
}

/* Every open descriptor but the one listing them. */
int mp_os_list_handles(void (*fn)(void *ud, mp_handle_t h, const char *what),
                       void *ud) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return mp_err_from_errno(errno);
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    char buf[256];
    if (fd != dirfd(d)) fn(ud, fd, fd_name(fd, buf, sizeof buf));
  }
  closedir(d);
  return 0;
}

/* Whether thread tid is one of io_uring's kernel workers (iou-wrk-*),
 * which the kernel starts for blocking requests and ends when idle. */
static int is_uring_worker(const char *tid) {
  char path[300], comm[32] = "";
  snprintf(path, sizeof path, "/proc/self/task/%s/comm", tid);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  int r = fgets(comm, sizeof comm, f) && strncmp(comm, "iou-", 4) == 0;
  fclose(f);
  return r;
}

int mp_os_thread_count(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  if (!d) return mp_err_from_errno(errno);
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.' && !is_uring_worker(e->d_name)) n++;
  closedir(d);
  return n;
}

void mp_os_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* ---- Workers ---- */

int mp_os_cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

struct mp_os_mutex {
  pthread_mutex_t m;
};

int mp_os_mutex_new(struct mp_os_mutex **m) {
  struct mp_os_mutex *x = malloc(sizeof *x);
  if (!x) return MP_ENOMEM;
  int r = pthread_mutex_init(&x->m, NULL);
  if (r) {
    free(x);
    return mp_err_from_errno(r);
  }
  *m = x;
  return 0;
}

void mp_os_mutex_lock(struct mp_os_mutex *m) { pthread_mutex_lock(&m->m); }
void mp_os_mutex_unlock(struct mp_os_mutex *m) {
  pthread_mutex_unlock(&m->m);
}

void mp_os_mutex_free(struct mp_os_mutex *m) {
  if (!m) return;
  pthread_mutex_destroy(&m->m);
  free(m);
}

struct mp_os_thread {
  pthread_t t;
  void (*fn)(void *);
  void *arg;
};

static void *thread_main(void *p) {
  struct mp_os_thread *t = p;
  t->fn(t->arg);
  return NULL;
}

int mp_os_thread_start(struct mp_os_thread **tp, void (*fn)(void *),
                       void *arg) {
  struct mp_os_thread *t = malloc(sizeof *t);
  if (!t) return MP_ENOMEM;
  t->fn = fn;
  t->arg = arg;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int r = pthread_create(&t->t, NULL, thread_main, t);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r) {
    free(t);
    return mp_err_from_errno(r);
  }
  *tp = t;
  return 0;
}

void mp_os_thread_join(struct mp_os_thread *t) {
  pthread_join(t->t, NULL);
  free(t);
}
