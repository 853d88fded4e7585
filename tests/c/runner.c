/* runner.c: runs each C test in its own process with a timeout.
 *
 *   mp_tests            run every test, print "N passed, N failed"
 *   mp_tests NAME       run one test in this process (for gdb)
 *
 * The backend comes from MOONPORT_BACKEND (ctest runs the suite once per
 * backend). */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "task.h"
#include "test-list.h"

#define DECLARE(name) int test_##name(void);
TEST_LIST(DECLARE)

static const struct {
  const char *name;
  int (*fn)(void);
} tests[] = {
#define ENTRY(name) {#name, test_##name},
  TEST_LIST(ENTRY)
};

enum { NTESTS = sizeof tests / sizeof tests[0], TIMEOUT_S = 30 };

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
    exit(tests[i].fn());
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
      if (strcmp(argv[1], tests[i].name) == 0) return tests[i].fn();
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
  }
  struct mp_loop *probe = test_loop();
  printf("# backend %s\n", mp_loop_backend(probe));
  mp_loop_close(probe);
  for (int i = 0; i < NTESTS; i++) {
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
