/* test-post.c: cross-thread posts and the threadpool. */
#include <stdatomic.h>
#include <unistd.h>

#include "task.h"

enum { PRODUCERS = 4, PER_PRODUCER = 20000 };

struct post_rec {
  struct mp_op op; /* caller-owned, as with PostQueuedCompletionStatus */
  int producer, seq;
};

struct post_ctx {
  struct mp_loop *loop;
  int producer;
  struct post_rec *recs;
};

static int next_seq[PRODUCERS], received, misordered;

static void post_cb(struct mp_op *op) {
  struct post_rec *r = (struct post_rec *)op;
  if (r->seq != next_seq[r->producer]) misordered++;
  next_seq[r->producer] = r->seq + 1;
  received++;
  mp_op_release(op); /* external memory: only marks it idle */
}

static void *producer(void *arg) {
  struct post_ctx *c = arg;
  for (int i = 0; i < PER_PRODUCER; i++) {
    struct post_rec *r = &c->recs[i];
    mp_op_init(&r->op, post_cb, NULL);
    r->producer = c->producer;
    r->seq = i;
    if (mp_loop_post(c->loop, &r->op) != 0) abort();
  }
  return NULL;
}

TEST_IMPL(post_cross_thread) {
  struct mp_loop *loop = test_loop();
  struct post_ctx ctx[PRODUCERS];
  pthread_t th[PRODUCERS];
  received = misordered = 0;
  for (int p = 0; p < PRODUCERS; p++) {
    ctx[p].loop = loop;
    ctx[p].producer = p;
    ctx[p].recs = calloc(PER_PRODUCER, sizeof(struct post_rec));
    next_seq[p] = 0;
    pthread_create(&th[p], NULL, producer, &ctx[p]);
  }
  /* Posts do not keep the loop alive: wait with a timer until all came. */
  int64_t deadline = mp_loop_now(loop) + 10000000000LL;
  while (received < PRODUCERS * PER_PRODUCER && mp_loop_now(loop) < deadline) {
    struct mp_op *t = mp_op_new(loop, NULL, NULL);
    t->cb = (mp_op_cb)mp_op_release;
    mp_op_prep_timer(t, 1000000);
    mp_op_submit(t);
    mp_loop_run(loop, MP_RUN_ONCE);
    mp_loop_run(loop, MP_RUN_DEFAULT);
  }
  for (int p = 0; p < PRODUCERS; p++) pthread_join(th[p], NULL);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(received, PRODUCERS * PER_PRODUCER); /* each exactly once */
  ASSERT_EQ(misordered, 0);                      /* FIFO per producer */
  for (int p = 0; p < PRODUCERS; p++) free(ctx[p].recs);
  CLOSE_LOOP(loop);
  return 0;
}

static struct mp_op wake_op;
static int woke;

static void wake_cb(struct mp_op *op) {
  woke = 1;
  mp_op_release(op);
}

static void *late_poster(void *arg) {
  usleep(30000);
  mp_loop_post(arg, &wake_op);
  return NULL;
}

static void noop_cb(struct mp_op *op) { mp_op_release(op); }

/* A loop blocked in the backend (a 10 s timer pending) wakes for a post. */
TEST_IMPL(post_wakes_waiting_loop) {
  struct mp_loop *loop = test_loop();
  struct mp_op *t = mp_op_new(loop, noop_cb, NULL);
  pthread_t th;
  woke = 0;
  mp_op_init(&wake_op, wake_cb, NULL);
  mp_op_prep_timer(t, 10000000000LL);
  mp_op_submit(t);
  pthread_create(&th, NULL, late_poster, loop);
  int64_t t0 = mp_loop_now(loop);
  while (!woke) mp_loop_run(loop, MP_RUN_ONCE);
  ASSERT_LT(mp_loop_now(loop) - t0, 5000000000LL);
  pthread_join(th, NULL);
  mp_op_cancel(t);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  CLOSE_LOOP(loop);
  return 0;
}

/* A wake that arrives before a turn starts ends that turn: a host that
 * checks a flag and then runs one turn must not sleep through the wake
 * another thread sent after setting the flag (the drain at the top of
 * the turn used to take it and sleep until the next event). */
TEST_IMPL(wake_before_turn_ends_it) {
  struct mp_loop *loop = test_loop();
  struct mp_op *t = mp_op_new(loop, noop_cb, NULL);
  mp_op_prep_timer(t, 10000000000LL);
  ASSERT_EQ(mp_op_submit(t), 0);
  mp_loop_wake(loop);
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_ONCE), 1); /* returns, timer pending */
  mp_loop_wake(loop);
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_ONCE), 1);
  mp_op_cancel(t);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  CLOSE_LOOP(loop);
  return 0;
}

static void square(struct mp_op *op) {
  intptr_t x = (intptr_t)op->u.work.arg;
  op->result = x * x;
}

static int64_t work_sum;
static int work_done;

static void work_cb(struct mp_op *op) {
  work_sum += op->result;
  work_done++;
  mp_op_release(op);
}

TEST_IMPL(pool_work) {
  struct mp_loop *loop = test_loop();
  work_sum = work_done = 0;
  for (intptr_t i = 1; i <= 1000; i++) {
    struct mp_op *op = mp_op_new(loop, work_cb, NULL);
    mp_op_prep_work(op, square, (void *)i);
    ASSERT_EQ(mp_op_submit(op), 0);
  }
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(work_done, 1000);
  ASSERT_EQ(work_sum, 333833500); /* sum of squares 1..1000 */
  CLOSE_LOOP(loop);
  return 0;
}

static atomic_int sleepy_started;

static void sleepy(struct mp_op *op) {
  atomic_fetch_add(&sleepy_started, 1);
  usleep(50000);
  op->result = 1;
}

static int ncancelled, nran;

static void cancel_cb(struct mp_op *op) {
  if (op->result == MP_ECANCELED) ncancelled++;
  else if (op->result == 1) nran++;
  mp_op_release(op);
}

TEST_IMPL(pool_cancel_queued) {
  struct mp_loop *loop;
  setenv("MOONPORT_THREADPOOL_SIZE", "1", 1);
  loop = test_loop();
  struct mp_op *ops[5];
  ncancelled = nran = 0;
  atomic_store(&sleepy_started, 0);
  for (int i = 0; i < 5; i++) {
    ops[i] = mp_op_new(loop, cancel_cb, NULL);
    mp_op_prep_work(ops[i], sleepy, NULL);
    ASSERT_EQ(mp_op_submit(ops[i]), 0);
  }
  /* until the single worker has taken the first job (a fixed sleep was
   * too short on a loaded machine) */
  for (int ms = 0; atomic_load(&sleepy_started) == 0 && ms < 10000; ms++)
    usleep(1000);
  ASSERT_EQ(atomic_load(&sleepy_started), 1);
  for (int i = 0; i < 5; i++) mp_op_cancel(ops[i]);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nran, 1);       /* a running job cannot be cancelled */
  ASSERT_EQ(ncancelled, 4); /* queued ones complete as cancelled */
  ASSERT_EQ(mp_loop_pool_size(loop), 1);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(pool_size_env) {
  setenv("MOONPORT_THREADPOOL_SIZE", "3", 1);
  struct mp_loop *loop = test_loop();
  ASSERT_EQ(mp_loop_pool_size(loop), 3);
  CLOSE_LOOP(loop);
  unsetenv("MOONPORT_THREADPOOL_SIZE");
  loop = test_loop();
  ASSERT_GE(mp_loop_pool_size(loop), 1);
  CLOSE_LOOP(loop);
  return 0;
}
