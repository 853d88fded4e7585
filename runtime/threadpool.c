/* threadpool.c: workers for blocking work; results posted to the loop.
 *
 * Each loop owns its pool (no process-wide state), created on the first
 * MP_OP_WORK. A worker runs op->u.work.fn(op), which stores op->result, and
 * hands the op back through the loop's post queue, so pool jobs complete
 * through the same path as every other op. Lock order: pool lock, then the
 * loop's post lock (taken inside mp_loop_wake's caller, never both held). */
#include <stdio.h>
#include <string.h>

#include "mp_internal.h"

struct mp_pool {
  mp__mutex lock;
  mp__cond cond;
  struct mp__queue queue; /* waiting jobs */
  int stop;
  int nthreads;
  int running; /* jobs taken by a worker, not yet posted back */
  mp__thread *threads;
  struct mp_loop *loop;
};

int mp__pool_default_size(void) {
  const char *s = getenv("MOONPORT_THREADPOOL_SIZE");
  int n = s ? atoi(s) : 0;
  if (n <= 0) n = mp__cpu_count();
  if (n > 256) n = 256;
  return n;
}

static void *worker(void *arg) {
  struct mp_pool *pool = arg;
  struct mp_loop *loop = pool->loop;
  for (;;) {
    mp__mutex_lock(&pool->lock);
    while (!pool->queue.head && !pool->stop)
      mp__cond_wait(&pool->cond, &pool->lock);
    struct mp_op *op = mp__queue_pop(&pool->queue);
    if (op) pool->running++;
    mp__mutex_unlock(&pool->lock);
    if (!op) return NULL; /* stopping and nothing left */
    if (op->kind == MP_OP_WORK) op->u.work.fn(op);
    else if (op->kind == MP_OP_GETADDRINFO) mp__getaddrinfo_run(op);
    else mp__os_blocking(op); /* a file op the backend sent here */
    mp__mutex_lock(&loop->post_lock);
    mp__queue_push(&loop->posted, op);
    mp__mutex_unlock(&loop->post_lock);
    mp__mutex_lock(&pool->lock);
    pool->running--;
    mp__mutex_unlock(&pool->lock);
    mp_loop_wake(loop);
  }
}

static int pool_start(struct mp_loop *loop) {
  struct mp_pool *pool = mp_loop_calloc(loop, 1, sizeof *pool);
  int n = mp__pool_default_size(), r;
  if (!pool) return MP_ENOMEM;
  pool->loop = loop;
  pool->threads = mp_loop_calloc(loop, (size_t)n, sizeof *pool->threads);
  if (!pool->threads) goto nomem;
  if ((r = mp__mutex_init(&pool->lock)) < 0) goto fail_free;
  if ((r = mp__cond_init(&pool->cond)) < 0) goto fail_mutex;
  for (int i = 0; i < n; i++) {
    if ((r = mp__thread_create(&pool->threads[i], worker, pool)) < 0) {
      if (i == 0) goto fail_cond;
      break; /* run with fewer workers rather than fail */
    }
    pool->nthreads++;
  }
  loop->pool = pool;
  return 0;
fail_cond:
  mp__cond_destroy(&pool->cond);
fail_mutex:
  mp__mutex_destroy(&pool->lock);
fail_free:
  free(pool->threads);
  free(pool);
  return r;
nomem:
  free(pool);
  return MP_ENOMEM;
}

int mp__pool_submit(struct mp_loop *loop, struct mp_op *op) {
  if (!loop->pool) {
    int r = pool_start(loop);
    if (r < 0) return r;
  }
  struct mp_pool *pool = loop->pool;
  mp__mutex_lock(&pool->lock);
  mp__queue_push(&pool->queue, op);
  mp__cond_signal(&pool->cond);
  mp__mutex_unlock(&pool->lock);
  return 0;
}

/* Cancels a job that has not started; a running job finishes normally,
 * but a COPYFILE, told through its u.fs.mode (unused by it otherwise,
 * read atomically between chunks), stops at its next chunk. */
int mp__pool_cancel(struct mp_loop *loop, struct mp_op *op) {
  struct mp_pool *pool = loop->pool;
  int removed;
  if (!pool) return 0;
  mp__mutex_lock(&pool->lock);
  removed = mp__queue_remove(&pool->queue, op);
  mp__mutex_unlock(&pool->lock);
  if (removed) mp__op_complete(loop, op, MP_ECANCELED);
  else if (op->kind == MP_OP_COPYFILE)
    __atomic_store_n(&op->u.fs.mode, 1, __ATOMIC_RELAXED);
  return removed;
}

void mp__pool_close(struct mp_loop *loop) {
  struct mp_pool *pool = loop->pool;
  if (!pool) return;
  mp__mutex_lock(&pool->lock);
  pool->stop = 1;
  mp__cond_broadcast(&pool->cond);
  mp__mutex_unlock(&pool->lock);
  for (int i = 0; i < pool->nthreads; i++) mp__thread_join(pool->threads[i]);
  mp__cond_destroy(&pool->cond);
  mp__mutex_destroy(&pool->lock);
  free(pool->threads);
  free(pool);
  loop->pool = NULL;
}

void mp__pool_stats(struct mp_loop *loop, struct mp_loop_stats *st) {
  struct mp_pool *pool = loop->pool;
  if (!pool) return;
  size_t n = 0;
  mp__mutex_lock(&pool->lock);
  for (struct mp_op *op = pool->queue.head; op; op = op->link) n++;
  st->pool_jobs = n + (size_t)pool->running;
  st->pool_threads = pool->nthreads;
  mp__mutex_unlock(&pool->lock);
}

int mp_loop_pool_size(struct mp_loop *loop) {
  return loop->pool ? loop->pool->nthreads : mp__pool_default_size();
}
