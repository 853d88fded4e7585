/* test-timer.c: the timer heap and the backend wait deadline. */
#include "task.h"

static int order[64], norder;

static void order_cb(struct mp_op *op) {
  order[norder++] = (int)(intptr_t)op->data;
  mp_op_release(op);
}

TEST_IMPL(timer_order) {
  struct mp_loop *loop = test_loop();
  /* Same deadline fires in start order; shorter deadlines first. */
  int64_t due[] = {3, 1, 2, 2, 1, 3, 0, 2};
  norder = 0;
  for (int i = 0; i < 8; i++) {
    struct mp_op *op = mp_op_new(loop, order_cb, (void *)(intptr_t)i);
    mp_op_prep_timer(op, due[i] * 1000000);
    ASSERT_EQ(mp_op_submit(op), 0);
  }
  mp_loop_run(loop, MP_RUN_DEFAULT);
  int want[] = {6, 1, 4, 2, 3, 7, 0, 5};
  ASSERT_EQ(norder, 8);
  for (int i = 0; i < 8; i++) ASSERT_EQ(order[i], want[i]);
  CLOSE_LOOP(loop);
  return 0;
}

static int64_t results[16];
static int nresults;

static void result_cb(struct mp_op *op) {
  results[nresults++] = op->result;
  mp_op_release(op);
}

TEST_IMPL(timer_cancel) {
  struct mp_loop *loop = test_loop();
  struct mp_op *ops[6];
  nresults = 0;
  for (int i = 0; i < 6; i++) {
    ops[i] = mp_op_new(loop, result_cb, NULL);
    mp_op_prep_timer(ops[i], (int64_t)(i + 1) * 5000000);
    ASSERT_EQ(mp_op_submit(ops[i]), 0);
  }
  /* Cancel from the middle and the top of the heap, twice (no-op). */
  mp_op_cancel(ops[3]);
  mp_op_cancel(ops[0]);
  mp_op_cancel(ops[0]);
  int64_t t0 = mp_loop_now(loop);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_GE(mp_loop_now(loop) - t0, 30000000 - 1000000);
  ASSERT_EQ(nresults, 6);
  ASSERT_EQ(results[0], MP_ECANCELED);
  ASSERT_EQ(results[1], MP_ECANCELED);
  for (int i = 2; i < 6; i++) ASSERT_EQ(results[i], 0);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(timer_zero_and_huge) {
  struct mp_loop *loop = test_loop();
  struct mp_op *zero = mp_op_new(loop, result_cb, NULL);
  struct mp_op *huge = mp_op_new(loop, result_cb, NULL);
  nresults = 0;
  mp_op_prep_timer(zero, 0);
  mp_op_prep_timer(huge, INT64_C(1) << 62); /* must not wrap to "now" */
  ASSERT_EQ(mp_op_submit(zero), 0);
  ASSERT_EQ(mp_op_submit(huge), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(nresults, 1);
  mp_op_cancel(huge);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nresults, 2);
  ASSERT_EQ(results[1], MP_ECANCELED);
  CLOSE_LOOP(loop);
  return 0;
}

static int64_t last_due;
static int nfired, out_of_order;

static void many_cb(struct mp_op *op) {
  int64_t due = (int64_t)(intptr_t)op->data;
  if (due < last_due) out_of_order++;
  last_due = due;
  nfired++;
  mp_op_release(op);
}

TEST_IMPL(timer_many) {
  struct mp_loop *loop = test_loop();
  enum { N = 100000 };
  unsigned seed = 12345;
  struct mp_op **ops = malloc(N * sizeof *ops);
  nfired = out_of_order = 0;
  last_due = 0;
  for (int i = 0; i < N; i++) {
    seed = seed * 1103515245 + 12345;
    int64_t due = (int64_t)(seed % 50) * 1000000;
    ops[i] = mp_op_new(loop, many_cb, (void *)(intptr_t)due);
    mp_op_prep_timer(ops[i], due);
    ASSERT_EQ(mp_op_submit(ops[i]), 0);
  }
  /* Cancel every third: the heap stays consistent under removals. */
  int ncancel = 0;
  for (int i = 0; i < N; i += 3) {
    ops[i]->data = (void *)(intptr_t)INT64_C(0);
    mp_op_cancel(ops[i]);
    ncancel++;
  }
  last_due = 0;
  nfired = 0;
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nfired, N);
  ASSERT_EQ(out_of_order, 0);
  free(ops);
  CLOSE_LOOP(loop);
  return 0;
}

/* The backend's wait must wake for the earliest deadline, not block. */
TEST_IMPL(timer_wait_uses_deadline) {
  struct mp_loop *loop = test_loop();
  struct mp_op *op = mp_op_new(loop, result_cb, NULL);
  nresults = 0;
  mp_op_prep_timer(op, 20000000);
  ASSERT_EQ(mp_op_submit(op), 0);
  int64_t t0 = mp_loop_now(loop);
  while (nresults == 0) mp_loop_run(loop, MP_RUN_ONCE);
  int64_t dt = mp_loop_now(loop) - t0;
  ASSERT_GE(dt, 19000000);
  ASSERT_LE(dt, 500000000);
  CLOSE_LOOP(loop);
  return 0;
}
