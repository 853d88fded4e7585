/* loop.c: loop setup and teardown, backend choice, run, dispatch, posts. */
#include <stdio.h>
#include <string.h>
#ifndef _WIN32
#include <sys/socket.h> /* struct msghdr: SENDTO/RECVFROM's u.rw.buf */
#endif

#include "mp_internal.h"

static const struct mp_backend *find_backend(const char *name) {
#ifdef _WIN32
  if (strcmp(name, "iocp") == 0) return &mp__backend_iocp;
#else
#ifdef MP_WITH_URING
  if (strcmp(name, "io_uring") == 0) return &mp__backend_uring;
#endif
  if (strcmp(name, "epoll") == 0) return &mp__backend_epoll;
#endif
  return NULL;
}

#ifdef MP_WITH_URING
static int debug_enabled(void) {
  const char *d = getenv("MOONPORT_DEBUG");
  return d && *d && strcmp(d, "0") != 0;
}
#endif

/* Poison and quarantine released op buffers (see mp_internal.h): on with
 * MOONPORT_DEBUG_BUFFERS=1, and by default in MP_DEBUG builds. */
static int debug_buffers(void) {
  const char *d = getenv("MOONPORT_DEBUG_BUFFERS");
#ifdef MP_DEBUG
  if (!d || !*d) return 1;
#endif
  return d && *d && strcmp(d, "0") != 0;
}

/* Picks the backend. A name (argument or MOONPORT_BACKEND) forces it and
 * fails if it cannot start; otherwise io_uring is tried first and refusal
 * (ENOSYS, EPERM from seccomp, ENOMEM from memlock) falls back to epoll,
 * which is a normal path, reported only with MOONPORT_DEBUG=1. */
static int choose_backend(struct mp_loop *loop, const char *name) {
  if (!name || !*name) name = getenv("MOONPORT_BACKEND");
  if (name && *name) {
    loop->backend = find_backend(name);
    if (!loop->backend) return MP_EINVAL;
    return loop->backend->init(loop);
  }
#ifdef _WIN32
  loop->backend = &mp__backend_iocp; /* the one Windows backend */
#else
#ifdef MP_WITH_URING
  int r = mp__backend_uring.init(loop);
  if (r == 0) {
    loop->backend = &mp__backend_uring;
    return 0;
  }
  loop->fallback_reason = mp_errname(r);
  if (debug_enabled())
    fprintf(stderr, "moonport: io_uring unavailable (%s), using epoll\n",
            mp_errname(r));
#else
  loop->fallback_reason = "built without liburing";
#endif
  loop->backend = &mp__backend_epoll;
#endif
  return loop->backend->init(loop);
}

int mp_loop_new(struct mp_loop **loopp, const char *backend) {
  struct mp_loop *loop = calloc(1, sizeof *loop);
  int r;
  *loopp = NULL;
  if (!loop) return MP_ENOMEM;
  r = mp__mutex_init(&loop->post_lock);
  if (r == 0) {
    loop->now = mp__hrtime();
    r = choose_backend(loop, backend);
    if (r < 0) mp__mutex_destroy(&loop->post_lock);
  }
  if (r == 0 && debug_buffers() &&
      !(loop->quarantine = calloc(1, sizeof *loop->quarantine))) {
    loop->backend->close(loop);
    mp__mutex_destroy(&loop->post_lock);
    r = MP_ENOMEM;
  }
  if (r < 0) {
    free(loop);
    return r;
  }
  *loopp = loop;
  return 0;
}

int mp_loop_close(struct mp_loop *loop) {
  if (loop->ninflight > 0) return MP_EBUSY;
  mp__pool_close(loop);
  loop->backend->close(loop);
  mp__mutex_destroy(&loop->post_lock);
  free(loop->heap);
  if (loop->quarantine) {
    mp__quarantine_flush(loop);
    free(loop->quarantine);
  }
  while (loop->blocks) {
    struct mp_op *block = loop->blocks;
    loop->blocks = block[0].next;
    free(block);
  }
  free(loop);
  return 0;
}

void mp_loop_drain(struct mp_loop *loop) {
  for (struct mp_op *op = loop->inflight, *next; op; op = next) {
    next = op->next; /* a cancel may complete (and unlink) op at once */
    if (!(op->flags & MP__F_PROTECT)) mp_op_cancel(op);
  }
  while (loop->ninflight > 0) mp_loop_run(loop, MP_RUN_ONCE);
}

void mp__drain_posted(struct mp_loop *loop) {
  struct mp__queue q;
  /* Reset the wake object, then the flag: a post after the flag signals
   * it again, one before it is in the queue taken below, so mp_loop_fd is
   * not left readable with nothing to do and no post is left behind
   * unsignalled. */
  if (loop->backend->unwake) loop->backend->unwake(loop);
  atomic_store(&loop->wake_pending, 0);
  mp__mutex_lock(&loop->post_lock);
  q = loop->posted;
  loop->posted.head = loop->posted.tail = NULL;
  mp__mutex_unlock(&loop->post_lock);
  struct mp_op *op;
  while ((op = mp__queue_pop(&q))) {
    if (op->kind == MP_OP_POST) {
      op->state = MP__DONE; /* not counted before: posters own these */
      loop->ninflight++;
      mp__queue_push(&loop->done, op);
    } else {
      mp__op_complete(loop, op, op->result); /* threadpool result */
    }
  }
}

int mp_loop_post(struct mp_loop *loop, struct mp_op *op) {
  if (op->state != MP__IDLE) return MP_EINVAL;
  op->kind = MP_OP_POST;
  op->flags |= MP__F_EXTERNAL;
  op->loop = loop;
  mp__mutex_lock(&loop->post_lock);
  mp__queue_push(&loop->posted, op);
  mp__mutex_unlock(&loop->post_lock);
  mp_loop_wake(loop);
  return 0;
}

void mp_loop_wake(struct mp_loop *loop) {
  if (!atomic_exchange(&loop->wake_pending, 1)) loop->backend->wake(loop);
}

/* Runs the callbacks of the completions queued so far (not those their
 * callbacks queue, so a callback that resubmits a NOP cannot starve IO). */
static void dispatch(struct mp_loop *loop) {
  struct mp__queue q = loop->done;
  loop->done.head = loop->done.tail = NULL;
  struct mp_op *op;
  while ((op = mp__queue_pop(&q))) {
    op->state = MP__IDLE;
    loop->ninflight--;
    op->cb(op);
  }
}

int mp_loop_run(struct mp_loop *loop, enum mp_run_mode mode) {
  loop->stop = 0;
  for (;;) {
    /* A wake taken here ends the turn without sleeping, as one taken in
     * wait() does: the host that sent it (after setting a flag, say) may
     * be waiting for this run to return. */
    int woke = 0;
    if (atomic_load_explicit(&loop->wake_pending, memory_order_relaxed)) {
      mp__drain_posted(loop);
      woke = 1;
    }
    mp_loop_update_time(loop);
    mp__timer_run(loop);
    dispatch(loop);
    if (loop->stop || (loop->ninflight == 0 && mode != MP_RUN_ONCE)) break;
    int64_t timeout = -1;
    if (mode == MP_RUN_NOWAIT || woke || loop->done.head ||
        loop->ninflight == 0 || atomic_load(&loop->wake_pending))
      timeout = 0;
    else
      timeout = mp__timer_next(loop);
    loop->backend->wait(loop, timeout);
    if (atomic_load_explicit(&loop->wake_pending, memory_order_relaxed))
      mp__drain_posted(loop); /* what woke the wait runs in this turn */
    mp_loop_update_time(loop);
    mp__timer_run(loop);
    dispatch(loop);
    if (mode != MP_RUN_DEFAULT || loop->stop) break;
  }
  if (loop->backend->flush) loop->backend->flush(loop);
  return (int)loop->ninflight;
}

void mp_loop_stop(struct mp_loop *loop) { loop->stop = 1; }
int64_t mp_loop_now(struct mp_loop *loop) { return loop->now; }
void mp_loop_update_time(struct mp_loop *loop) { loop->now = mp__hrtime(); }
size_t mp_loop_inflight(struct mp_loop *loop) { return loop->ninflight; }
void mp_loop_set_data(struct mp_loop *loop, void *data) { loop->data = data; }
void *mp_loop_data(struct mp_loop *loop) { return loop->data; }
const char *mp_loop_backend(struct mp_loop *loop) {
  return loop->backend->name;
}
const char *mp_loop_fallback_reason(struct mp_loop *loop) {
  return loop->fallback_reason;
}
mp_handle_t mp_loop_fd(struct mp_loop *loop) {
  return loop->backend->fd ? loop->backend->fd(loop) : MP_INVALID_HANDLE;
}

int mp_loop_timeout(struct mp_loop *loop) {
  if (loop->backend->arm) loop->backend->arm(loop);
  if (loop->done.head || atomic_load(&loop->wake_pending)) return 0;
  mp_loop_update_time(loop);
  int64_t ns = mp__timer_next(loop);
  if (ns < 0) return -1;
  int64_t ms = (ns + 999999) / 1000000; /* never wake before it is due */
  return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int mp_loop_wait(struct mp_loop *loop, int timeout_ms) {
  int t = mp_loop_timeout(loop); /* resets the handle, then looks */
  if (t == 0) return 1;
  /* a timer due first ends the sleep as "woken": it is work */
  int timer = t > 0 && (timeout_ms < 0 || t <= timeout_ms);
  int64_t ms = timer ? t : timeout_ms;
  if (!loop->backend->fd) {
    /* nothing to poll: wait() only queues, and may return early (a wake
     * whose posts a turn already took) */
    int64_t end = mp__hrtime() + ms * 1000000;
    for (;;) {
      int64_t left = ms < 0 ? -1 : end - mp__hrtime();
      loop->backend->wait(loop, left < 0 && ms >= 0 ? 0 : left);
      if (loop->done.head || atomic_load(&loop->wake_pending)) return 1;
      if (ms >= 0 && mp__hrtime() >= end) return timer;
    }
  }
  if (mp__wakefd_wait(mp_loop_fd(loop), ms < 0 ? -1 : ms * 1000000))
    return 1;
  return timer;
}

void mp_loop_stats(struct mp_loop *loop, struct mp_loop_stats *st) {
  memset(st, 0, sizeof *st);
  st->ops_inflight = loop->ninflight;
  st->ops_live = loop->nlive;
  st->timers = loop->nheap;
  mp__pool_stats(loop, st);
}

void mp_loop_set_alloc_fail(struct mp_loop *loop, mp_alloc_fail_fn fail,
                            void *ud) {
  loop->alloc_fail = fail;
  loop->alloc_ud = ud;
}

#define REFUSED(loop, n) ((loop)->alloc_fail && \
                          (loop)->alloc_fail((loop)->alloc_ud, (n)))

void *mp_loop_malloc(struct mp_loop *loop, size_t size) {
  return REFUSED(loop, size) ? NULL : malloc(size);
}

void *mp_loop_calloc(struct mp_loop *loop, size_t n, size_t size) {
  return REFUSED(loop, n * size) ? NULL : calloc(n, size);
}

void *mp_loop_realloc(struct mp_loop *loop, void *p, size_t size) {
  return REFUSED(loop, size) ? NULL : realloc(p, size);
}

static int overlaps(const char *a, const char *b, const void *x, size_t n) {
  return x && a < (const char *)x + n && (const char *)x < b;
}

int mp_loop_buffer_inflight(struct mp_loop *loop, const void *p, size_t len) {
  const char *a = p, *b = a + len;
  for (struct mp_op *op = loop->inflight; op; op = op->next) {
    switch (op->kind) {
      case MP_OP_READ: case MP_OP_WRITE: case MP_OP_RECV: case MP_OP_SEND:
        if (overlaps(a, b, op->u.rw.buf, op->u.rw.len)) return 1;
        break;
#ifdef _WIN32 /* net_win.c keeps the data in u.rw, the address in priv */
      case MP_OP_SENDTO: case MP_OP_RECVFROM:
        if (overlaps(a, b, op->u.rw.buf, op->u.rw.len) ||
            overlaps(a, b, op->priv, sizeof(struct mp__dgram)))
          return 1;
        break;
#else
      case MP_OP_SENDTO: case MP_OP_RECVFROM: {
        const struct msghdr *m = op->u.rw.buf;
        if (overlaps(a, b, m, sizeof *m) ||
            overlaps(a, b, m->msg_name, m->msg_namelen) ||
            overlaps(a, b, m->msg_control, m->msg_controllen) ||
            overlaps(a, b, m->msg_iov, m->msg_iovlen * sizeof *m->msg_iov))
          return 1;
        for (size_t i = 0; i < m->msg_iovlen; i++)
          if (overlaps(a, b, m->msg_iov[i].iov_base, m->msg_iov[i].iov_len))
            return 1;
        break;
      }
#endif
      case MP_OP_CONNECT:
        if (overlaps(a, b, op->u.sa.addr, op->u.sa.addrlen)) return 1;
        break;
      case MP_OP_STAT:
        if (overlaps(a, b, op->u.fs.buf, MP__STAT_HEAD)) return 1;
        break;
      case MP_OP_READFILE: { /* in a ring's chain (a pool job's is its own) */
        const struct mp__rf *rf = op->u.fs.buf;
        if (rf->slot >= 0 && overlaps(a, b, rf->buf, rf->cap)) return 1;
        break;
      }
      case MP_OP_GETADDRINFO: /* the pool writes the addresses */
        if (overlaps(a, b, op->priv, sizeof(struct mp__gai_job))) return 1;
        break;
      default:
        break;
    }
  }
  return 0;
}
