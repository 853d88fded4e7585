/* task.h: the C test harness (after libuv's test/task.h). Each test is a
 * function registered with TEST_IMPL; the runner starts each in its own
 * process with a timeout. Exit 77 means skipped. */
#ifndef MP_TEST_TASK_H
#define MP_TEST_TASK_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"

#ifdef _WIN32
/* POSIX's environment calls, for the tests that set variables. */
static inline int setenv(const char *name, const char *value, int over) {
  (void)over;
  return _putenv_s(name, value);
}
static inline int unsetenv(const char *name) { return _putenv_s(name, ""); }
#endif

#define TEST_IMPL(name) \
  int test_##name(void);  \
  int test_##name(void)
#define TEST_SKIP 77

#define ASSERT_BASE(a, op, b, type, fmt)                                    \
  do {                                                                      \
    type a_ = (type)(a), b_ = (type)(b);                                    \
    if (!(a_ op b_)) {                                                      \
      fprintf(stderr, "%s:%d: assertion failed: %s %s %s (" fmt " vs " fmt \
              ")\n", __FILE__, __LINE__, #a, #op, #b, a_, b_);              \
      abort();                                                              \
    }                                                                       \
  } while (0)

#define ASSERT(x) ASSERT_BASE(!!(x), ==, 1, int, "%d")
#define ASSERT_EQ(a, b) ASSERT_BASE(a, ==, b, long long, "%lld")
#define ASSERT_NE(a, b) ASSERT_BASE(a, !=, b, long long, "%lld")
#define ASSERT_GE(a, b) ASSERT_BASE(a, >=, b, long long, "%lld")
#define ASSERT_LE(a, b) ASSERT_BASE(a, <=, b, long long, "%lld")
#define ASSERT_GT(a, b) ASSERT_BASE(a, >, b, long long, "%lld")
#define ASSERT_LT(a, b) ASSERT_BASE(a, <, b, long long, "%lld")
#define ASSERT_PTR_EQ(a, b) ASSERT_BASE(a, ==, b, void *, "%p")

/* Every test ends with this: the loop must close with nothing in flight
 * and every op record released, so a leaked op fails the test and says
 * what leaked (libuv's MAKE_VALGRIND_HAPPY). After the test the runner
 * checks descriptors and threads (runner.c). */
#define CLOSE_LOOP(loop) test_close_loop(loop, __FILE__, __LINE__)
void test_close_loop(struct mp_loop *loop, const char *file, int line);

/* A loop on the backend the runner was asked for. */
struct mp_loop *test_loop(void);

#endif
