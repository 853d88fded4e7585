/* test-loop.c: the loop, op records, backend choice and draining. */
#ifndef _WIN32 /* Windows runs the tests without pipes (test-list-win.h) */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "task.h"

static int ncalls;

static void count_cb(struct mp_op *op) {
  ncalls++;
  mp_op_release(op);
}

TEST_IMPL(loop_empty_run) {
  struct mp_loop *loop = test_loop();
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_DEFAULT), 0);
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_ONCE), 0); /* nothing to wait for */
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_NOWAIT), 0);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(loop_backend_choice) {
  struct mp_loop *loop;
  const char *want = getenv("MOONPORT_BACKEND");
  ASSERT_EQ(mp_loop_new(&loop, "no-such-backend"), MP_EINVAL);
  loop = test_loop();
  if (want && *want) {
    ASSERT_EQ(strcmp(mp_loop_backend(loop), want), 0);
  } else {
    /* Default: io_uring unless refused, and then a reason is recorded. */
    if (strcmp(mp_loop_backend(loop), "epoll") == 0)
      ASSERT(mp_loop_fallback_reason(loop) != NULL);
    else
      ASSERT(mp_loop_fallback_reason(loop) == NULL);
  }
  const char *expect = getenv("MP_EXPECT_BACKEND");
  if (expect && strcmp(expect, "seccomp") == 0) {
    ASSERT_EQ(strcmp(mp_loop_backend(loop), "epoll"), 0);
    ASSERT_EQ(strcmp(mp_loop_fallback_reason(loop), "EPERM"), 0);
  }
  ASSERT_GE(mp_loop_fd(loop), 0);
  CLOSE_LOOP(loop);
  return 0;
}

/* The user's pointer: NULL at first, kept, and reached from an op's
 * callback through mp_op_loop (what moonport's tasks use). */
static void data_cb(struct mp_op *op) {
  *(int *)mp_loop_data(mp_op_loop(op)) += 1;
  mp_op_release(op);
}

TEST_IMPL(loop_user_data) {
  struct mp_loop *loop = test_loop();
  int seen = 0;
  ASSERT(mp_loop_data(loop) == NULL);
  mp_loop_set_data(loop, &seen);
  ASSERT(mp_loop_data(loop) == &seen);
  struct mp_op *op = mp_op_new(loop, data_cb, NULL);
  ASSERT(mp_op_loop(op) == loop);
  mp_op_prep_nop(op);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(seen, 1);
  mp_loop_set_data(loop, NULL);
  ASSERT(mp_loop_data(loop) == NULL);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(loop_close_busy) {
  struct mp_loop *loop = test_loop();
  struct mp_op *op = mp_op_new(loop, count_cb, NULL);
  ncalls = 0;
  mp_op_prep_timer(op, 1000000);
  ASSERT_EQ(mp_op_submit(op), 0);
  ASSERT_EQ(mp_loop_close(loop), MP_EBUSY);
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_DEFAULT), 0);
  ASSERT_EQ(ncalls, 1);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(nop_completes_next_turn) {
  struct mp_loop *loop = test_loop();
  struct mp_op *op = mp_op_new(loop, count_cb, NULL);
  ncalls = 0;
  mp_op_prep_nop(op);
  ASSERT_EQ(mp_op_submit(op), 0);
  ASSERT_EQ(ncalls, 0); /* never from inside submit */
  ASSERT(mp_op_inflight(op));
  ASSERT_EQ(mp_loop_inflight(loop), 1);
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_NOWAIT), 0);
  ASSERT_EQ(ncalls, 1);
  /* A submitted op cannot be submitted again until it comes back. */
  op = mp_op_new(loop, count_cb, NULL);
  mp_op_prep_nop(op);
  ASSERT_EQ(mp_op_submit(op), 0);
  ASSERT_EQ(mp_op_submit(op), MP_EINVAL);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(ncalls, 2);
  CLOSE_LOOP(loop);
  return 0;
}

#ifndef _WIN32
TEST_IMPL(op_release_in_flight_aborts) {
  pid_t pid = fork();
  if (pid == 0) {
    struct mp_loop *loop = test_loop();
    struct mp_op *op = mp_op_new(loop, count_cb, NULL);
    mp_op_prep_timer(op, 1000000000);
    mp_op_submit(op);
    close(2); /* the abort message is expected */
    mp_op_release(op); /* must abort, never free under the kernel */
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  ASSERT(WIFSIGNALED(status));
  ASSERT_EQ(WTERMSIG(status), SIGABRT);
  return 0;
}

/* Draining with ops of every kind in flight: each completes exactly once,
 * cancelled, and the loop closes clean. */
struct drain_ctx {
  int done, cancelled;
};

static void drain_cb(struct mp_op *op) {
  struct drain_ctx *c = op->data;
  c->done++;
  if (op->result == MP_ECANCELED) c->cancelled++;
  mp_op_release(op);
}

static int64_t protected_result = -1;

static void protected_cb(struct mp_op *op) {
  protected_result = op->result;
  mp_op_release(op);
}

static void slow_work(struct mp_op *op) {
  usleep(20000);
  op->result = 7;
}

TEST_IMPL(drain_cancels_everything) {
  struct mp_loop *loop = test_loop();
  struct drain_ctx c = {0, 0};
  int fds[2];
  char *buf = malloc(64);
  ASSERT_EQ(pipe(fds), 0);
  for (int i = 0; i < 100; i++) {
    struct mp_op *op = mp_op_new(loop, drain_cb, &c);
    mp_op_prep_timer(op, (int64_t)(i + 1) * 1000000000);
    ASSERT_EQ(mp_op_submit(op), 0);
  }
  struct mp_op *rd = mp_op_new(loop, drain_cb, &c);
  rd->owned = buf;
  mp_op_prep_read(rd, fds[0], buf, 64, -1);
  ASSERT_EQ(mp_op_submit(rd), 0);
  for (int i = 0; i < 4; i++) {
    struct mp_op *op = mp_op_new(loop, drain_cb, &c);
    mp_op_prep_work(op, slow_work, NULL);
    ASSERT_EQ(mp_op_submit(op), 0);
  }
  /* A protected op (a last write, a close) is waited for, not cancelled. */
  struct mp_op *keep = mp_op_new(loop, protected_cb, NULL);
  mp_op_prep_timer(keep, 20000000);
  mp_op_protect(keep);
  ASSERT_EQ(mp_op_submit(keep), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(mp_loop_close(loop), MP_EBUSY);
  mp_loop_drain(loop);
  ASSERT_EQ(c.done, 105);
  ASSERT_GE(c.cancelled, 101); /* work already running finishes normally */
  ASSERT_EQ(protected_result, 0);
  close(fds[0]);
  close(fds[1]);
  CLOSE_LOOP(loop);
  return 0;
}

/* Two loops in one process, each created and run by its own thread,
 * share nothing. */
struct two_ctx {
  struct mp_loop *loop;
  int fired;
};

static void two_cb(struct mp_op *op) {
  struct two_ctx *c = op->data;
  c->fired++;
  mp_op_release(op);
}

static void *two_thread(void *arg) {
  struct two_ctx *c = arg;
  int fds[2];
  char buf[4];
  c->loop = test_loop();
  if (pipe(fds)) abort();
  for (int i = 0; i < 50; i++) {
    struct mp_op *op = mp_op_new(c->loop, two_cb, c);
    mp_op_prep_timer(op, 1000000);
    mp_op_submit(op);
    op = mp_op_new(c->loop, two_cb, c); /* and IO through the ring */
    mp_op_prep_read(op, fds[0], buf, 1, -1);
    mp_op_submit(op);
    if (write(fds[1], "x", 1) != 1) abort();
    mp_loop_run(c->loop, MP_RUN_DEFAULT);
  }
  close(fds[0]);
  close(fds[1]);
  return NULL;
}

TEST_IMPL(two_loops) {
  struct two_ctx a = {NULL, 0}, b = {NULL, 0};
  pthread_t ta, tb;
  pthread_create(&ta, NULL, two_thread, &a);
  pthread_create(&tb, NULL, two_thread, &b);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  ASSERT_EQ(a.fired, 100);
  ASSERT_EQ(b.fired, 100);
  CLOSE_LOOP(a.loop);
  CLOSE_LOOP(b.loop);
  return 0;
}
#endif
