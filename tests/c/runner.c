/* runner.c: runs each C test in its own process with a timeout, then
 * checks that it leaked nothing: every descriptor it opened is closed and
 * every thread it started has ended (CLOSE_LOOP checks the loop itself:
 * no op in flight, every op record released). A leak fails the test and
 * names what leaked.
 *
 *   mp_tests            run every test, print "N passed, N failed"
 *   mp_tests NAME       run one test in this process (for gdb)
 *
 * The backend comes from MOONPORT_BACKEND (ctest runs the suite once per
 * backend). planted_* tests leak on purpose; they run only by name, to
 * show that the checks fail (tests/e2e/leakcheck.sh). */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "task.h"
#include "test-list.h"

#define DECLARE(name) int test_##name(void);
TEST_LIST(DECLARE)

static int planted_fd_leak(void);
static int planted_op_leak(void);
static int planted_thread_leak(void);

static const struct {
  const char *name;
  int (*fn)(void);
} tests[] = {
#define ENTRY(name) {#name, test_##name},
  TEST_LIST(ENTRY)
  {"planted_fd_leak", planted_fd_leak},
  {"planted_op_leak", planted_op_leak},
  {"planted_thread_leak", planted_thread_leak},
};

enum { NTESTS = sizeof tests / sizeof tests[0], NPLANTED = 3,
       TIMEOUT_S = 30 };

/* The process's descriptors and threads, from /proc (Linux). */
struct snapshot {
  int nfds, threads;
  int fds[1024];
};

/* io_uring's kernel workers (iou-wrk-*) show up as threads of the
 * process; the kernel starts them for blocking requests and ends them
 * when idle, so they do not count. */
static int is_uring_worker(const char *tid) {
  char path[300], comm[32] = "";
  snprintf(path, sizeof path, "/proc/self/task/%s/comm", tid);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  int r = fgets(comm, sizeof comm, f) && strncmp(comm, "iou-", 4) == 0;
  fclose(f);
  return r;
}

static int count_threads(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.' && !is_uring_worker(e->d_name);
  closedir(d);
  return n;
}

static void snap(struct snapshot *s) {
  DIR *d = opendir("/proc/self/fd");
  s->nfds = 0;
  s->threads = count_threads();
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] != '.' && fd != dirfd(d) && s->nfds < 1024)
      s->fds[s->nfds++] = fd;
  }
  closedir(d);
}

static int has_fd(const struct snapshot *s, int fd) {
  for (int i = 0; i < s->nfds; i++)
    if (s->fds[i] == fd) return 1;
  return 0;
}

/* Compares the process with the snapshot taken before the test; prints
 * what leaked ("leaked 1 descriptor: 5=socket:[1234]"). Threads may take
 * a moment to leave /proc after their join, so that count is awaited. */
static int check_leaks(const char *name, const struct snapshot *before) {
  struct snapshot after;
  int bad = 0;
  snap(&after);
  int n = 0;
  char list[512] = "";
  for (int i = 0; i < after.nfds; i++) {
    int fd = after.fds[i];
    if (has_fd(before, fd)) continue;
    char path[64], target[128];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t r = readlink(path, target, sizeof target - 1);
    target[r < 0 ? 0 : r] = 0;
    size_t used = strlen(list);
    snprintf(list + used, sizeof list - used, "%s%d=%s", n ? ", " : "", fd,
             target);
    n++;
  }
  if (n) {
    fprintf(stderr, "%s: leaked %d descriptor%s: %s\n", name, n,
            n == 1 ? "" : "s", list);
    bad = 1;
  }
#ifndef __SANITIZE_THREAD__ /* TSan starts a thread of its own */
  for (int i = 0; i < 100 && after.threads > before->threads; i++) {
    usleep(10000);
    after.threads = count_threads();
  }
  if (after.threads > before->threads) {
    fprintf(stderr, "%s: %d thread%s still running\n", name,
            after.threads - before->threads,
            after.threads - before->threads == 1 ? "" : "s");
    bad = 1;
  }
#endif
  return bad;
}

static int run_checked(int i) {
  struct snapshot before;
  snap(&before);
  int r = tests[i].fn();
  if (r == 0 && check_leaks(tests[i].name, &before)) r = 1;
  return r;
}

void test_close_loop(struct mp_loop *loop, const char *file, int line) {
  struct mp_loop_stats st;
  mp_loop_stats(loop, &st);
  if (st.ops_inflight)
    fprintf(stderr, "%s:%d: %zu op%s still in flight\n", file, line,
            st.ops_inflight, st.ops_inflight == 1 ? "" : "s");
  if (st.ops_live)
    fprintf(stderr, "%s:%d: %zu op record%s never released\n", file, line,
            st.ops_live, st.ops_live == 1 ? "" : "s");
  if (st.ops_inflight || st.ops_live) abort();
  int r = mp_loop_close(loop);
  if (r != 0) {
    fprintf(stderr, "%s:%d: mp_loop_close: %s\n", file, line,
            mp_errname(r));
    abort();
  }
}

/* Planted leaks: each must fail its check. */
static int planted_fd_leak(void) {
  struct mp_loop *loop = test_loop();
  CLOSE_LOOP(loop);
  return open("/dev/null", O_RDONLY | O_CLOEXEC) < 0; /* never closed */
}

static int planted_op_leak(void) {
  struct mp_loop *loop = test_loop();
  struct mp_op *op = mp_op_new(loop, NULL, NULL); /* never released */
  (void)op;
  CLOSE_LOOP(loop);
  return 0;
}

static void *sleeper(void *arg) {
  (void)arg;
  sleep(5);
  return NULL;
}

static int planted_thread_leak(void) {
  pthread_t th;
  pthread_create(&th, NULL, sleeper, NULL); /* never joined */
  return 0;
}

struct mp_loop *test_loop(void) {
  struct mp_loop *loop;
  int r = mp_loop_new(&loop, NULL);
  if (r < 0) {
    fprintf(stderr, "mp_loop_new: %s\n", mp_strerror(r));
    abort();
  }
  return loop;
}

static int run_child(int i) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(TIMEOUT_S);
    exit(run_checked(i));
  }
  int status;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "  killed by signal %d%s\n", WTERMSIG(status),
            WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
  }
  return 1;
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0, skipped = 0;
  if (argc > 1) {
    for (int i = 0; i < NTESTS; i++)
      if (strcmp(argv[1], tests[i].name) == 0) return run_checked(i);
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
  }
  struct mp_loop *probe = test_loop();
  printf("# backend %s\n", mp_loop_backend(probe));
  mp_loop_close(probe);
  for (int i = 0; i < NTESTS - NPLANTED; i++) {
    fflush(stdout);
    int r = run_child(i);
    if (r == 0) passed++;
    else if (r == TEST_SKIP) skipped++;
    else failed++;
    printf("%s %d - %s%s\n", r == 0 || r == TEST_SKIP ? "ok" : "not ok", i + 1,
           tests[i].name, r == TEST_SKIP ? " # skip" : "");
  }
  printf("%d passed, %d failed (%d skipped)\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
