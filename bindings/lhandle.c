/* lhandle.c: the handle-lifetime object (see lhandle.h). */
#include <stdlib.h>
#include <string.h>

#include "lhandle.h"
#include "mp_os.h"

struct lmp_handle *lmp_handle_new(struct mp_loop *loop, mp_handle_t handle) {
  struct lmp_handle *h = mp_loop_calloc(loop, 1, sizeof *h);
  if (!h) return NULL;
  h->handle = handle;
  h->loop = loop;
  h->refs = 1;
  h->ops = h->inl;
  h->capops = 2;
  return h;
}

static void release_cb(struct mp_op *op) { mp_op_release(op); }

static void close_work(struct mp_op *op) {
  op->result = mp_os_close((mp_handle_t)(intptr_t)op->u.work.arg);
}

/* Closes the handle through the loop (close may block on some
 * filesystems, and with SO_LINGER), protected so that a drained loop
 * still closes it; here, blocking, when no op can be had. */
static void close_handle(struct lmp_handle *h) {
  mp_handle_t fd = h->handle;
  if (fd == MP_INVALID_HANDLE) return;
  h->handle = MP_INVALID_HANDLE;
  struct mp_op *op = mp_op_new(h->loop, release_cb, NULL);
  if (op) {
    if (h->blocking_close)
      mp_op_prep_work(op, close_work, (void *)(intptr_t)fd);
    else
      mp_op_prep_close(op, fd);
    mp_op_protect(op);
    if (mp_op_submit(op) == 0) return;
    mp_op_release(op);
  }
  mp_os_close(fd);
}

static void drop_ref(struct lmp_handle *h) {
  if (--h->refs > 0) return;
  close_handle(h); /* nothing names it any more */
  if (h->ops != h->inl) free(h->ops);
  free(h->wbuf);
  free(h->wwait);
  free(h);
}

int lmp_handle_track(struct lmp_handle *h, struct mp_op *op) {
  if (h->nops == h->capops) {
    int cap = h->capops * 2;
    struct mp_op **old = h->ops == h->inl ? NULL : h->ops;
    struct mp_op **ops = mp_loop_realloc(h->loop, old,
                                         (size_t)cap * sizeof *ops);
    if (!ops) return MP_ENOMEM;
    if (!old) memcpy(ops, h->inl, sizeof h->inl);
    h->ops = ops;
    h->capops = cap;
  }
  h->ops[h->nops++] = op;
  h->refs++;
  op->ref = h;
  return 0;
}

void lmp_handle_untrack(struct mp_op *op) {
  struct lmp_handle *h = op->ref;
  if (!h) return;
  op->ref = NULL;
  for (int i = 0; i < h->nops; i++) {
    if (h->ops[i] != op) continue;
    h->ops[i] = h->ops[--h->nops];
    break;
  }
  if (h->closing && h->nops == 0) close_handle(h);
  drop_ref(h);
}

void lmp_handle_op_cb(struct mp_op *op) {
  lmp_handle_untrack(op);
  lmp_task_op_cb(op);
}

struct mp_op *lmp_handle_op(struct lmp_handle *h, int *err) {
  struct mp_op *op = mp_op_new(h->loop, lmp_handle_op_cb, NULL);
  if (!op) {
    *err = MP_ENOMEM;
    return NULL;
  }
  if ((*err = lmp_handle_track(h, op)) < 0) {
    mp_op_release(op);
    return NULL;
  }
  return op;
}

static void bounded_cb(struct mp_op *op);

int lmp_handle_retrack(struct lmp_handle *h, struct mp_op *op) {
  if (lmp_handle_closed(h)) return MP_ECLOSED;
  int err = lmp_handle_track(h, op);
  if (err == 0 && op->cb != bounded_cb) op->cb = lmp_handle_op_cb;
  return err;
}

static void start_close(struct lmp_handle *h) {
  h->closing = 1;
  free(h->wbuf);
  h->wbuf = NULL;
  h->wlen = 0;
  /* a regular file's write in flight (protected) still completes */
  for (int i = 0; i < h->nops; i++)
    if (!mp_op_protected(h->ops[i])) mp_op_cancel(h->ops[i]);
}

void lmp_handle_close(struct lmp_handle *h) {
  if (h->closing) return;
  start_close(h);
  if (h->nops == 0) close_handle(h);
}

mp_handle_t lmp_handle_take(struct lmp_handle *h) {
  mp_handle_t fd = MP_INVALID_HANDLE;
  if (h->closing) return fd;
  start_close(h);
  if (h->nops == 0) {
    fd = h->handle;
    h->handle = MP_INVALID_HANDLE;
  }
  return fd;
}

mp_handle_t lmp_handle_take_now(struct lmp_handle *h) {
  mp_handle_t fd = h->handle;
  if (h->closing) return MP_INVALID_HANDLE;
  start_close(h);
  h->handle = MP_INVALID_HANDLE; /* (the last op closes nothing then) */
  return fd;
}

void lmp_handle_unref(struct lmp_handle *h) {
  if (!h) return;
  lmp_handle_close(h);
  drop_ref(h);
}

/* --- the pending write -------------------------------------------------- */

char *lmp_handle_wspace(struct lmp_handle *h, size_t len, int64_t off) {
  if (!h->wbuf && !(h->wbuf = mp_loop_malloc(h->loop, LMP_WBUF_MAX)))
    return NULL;
  if (h->wlen == 0) h->woff = off;
  char *p = h->wbuf + h->wlen;
  h->wlen += len;
  return p;
}

/* A write in flight: the op owns this record, its bytes follow. */
struct wreq {
  lmp_wrote k;
  lua_CFunction then;     /* flush_then: the method to run next */
  struct lmp_handle *h;
  const char *fname;
  size_t total, done;
  int64_t off;
  _Alignas(16) char data[];
};

static struct wreq *wreq_of(char *data) {
  return (struct wreq *)(data - offsetof(struct wreq, data));
}

char *lmp_handle_wbuf(struct lmp_handle *h, size_t len) {
  struct wreq *w = mp_loop_malloc(h->loop, sizeof *w + (len ? len : 1));
  return w ? w->data : NULL;
}

static int write_k(lua_State *L, struct mp_op *op);

/* Submits the rest of the write: [done, total). */
static int write_more(lua_State *L, struct mp_op *op) {
  struct wreq *w = op->owned;
  int err = lmp_handle_retrack(w->h, op);
  if (err < 0) {
    lmp_wrote k = w->k;
    int64_t off = w->off;
    mp_op_release(op);
    return k(L, err, off); /* a failure: then is not run */
  }
  mp_op_prep_write(op, w->h->handle, w->data + w->done, w->total - w->done,
                   w->off < 0 ? -1 : w->off + (int64_t)w->done);
  return lmp_await(L, op, write_k, w->fname);
}

static int write_k(lua_State *L, struct mp_op *op) {
  struct wreq *w = op->owned;
  /* The owner is on the stack, so the record is alive: closed meanwhile? */
  int64_t r = lmp_handle_closed(w->h) ? MP_ECLOSED : op->result;
  if (r == 0 && w->done < w->total) r = MP_EIO; /* no progress: give up */
  if (r > 0) w->done += (size_t)r;
  if (r > 0 && w->done < w->total) return write_more(L, op);
  lmp_wrote k = w->k;
  lua_CFunction then = w->then;
  int64_t off = w->off, n = r < 0 ? r : (int64_t)w->total;
  mp_op_release(op);
  int nret = k(L, n, off);
  return nret || !then ? nret : then(L);
}

/* A write to a regular file (bounded_writes) is not interrupted: bytes
 * write() accepted into the pending buffer travel in it, and a task
 * cancelled, timed out or abandoned while it is in flight must not drop
 * them. The op is protected (its task waits for it before raising the
 * interruption; a closing handle and a drained loop wait for it too), and
 * orphaned, it still finishes, short writes included. Its record holds a
 * reference on the handle record. Pipes and devices may block forever:
 * their writes stay interruptible. */
static void wreq_free(void *p) {
  struct wreq *w = p;
  struct lmp_handle *h = w->h;
  free(w);
  drop_ref(h);
}

static void bounded_cb(struct mp_op *op) {
  if (op->data) { /* the task waits: it takes the result (write_k) */
    lmp_handle_op_cb(op);
    return;
  }
  struct wreq *w = op->owned;
  int64_t r = op->result;
  lmp_handle_untrack(op);
  if (r > 0 && w->done + (size_t)r < w->total &&
      lmp_handle_retrack(w->h, op) == 0) {
    w->done += (size_t)r;
    mp_op_prep_write(op, w->h->handle, w->data + w->done,
                     w->total - w->done,
                     w->off < 0 ? -1 : w->off + (int64_t)w->done);
    if (mp_op_submit(op) == 0) return;
    lmp_handle_untrack(op);
  }
  mp_op_release(op); /* frees w, drops its reference */
}

/* --- the turn of writes to a pipe or device ---------------------------- */

/* The write holding the turn is done: hands it to the first waiter (its
 * gate op ends: lmp_handle_turn), or frees it. */
static void turn_pass(struct lmp_handle *h) {
  if (h->nwait == 0) {
    h->wbusy = 0;
    return;
  }
  struct mp_op *op = h->wwait[0];
  h->nwait--;
  memmove(h->wwait, h->wwait + 1, (size_t)h->nwait * sizeof *h->wwait);
  h->wturn = op;
  mp_op_cancel(op); /* a no-op if it ended already (a close) */
}

static void unwait(struct lmp_handle *h, struct mp_op *op) {
  for (int i = 0; i < h->nwait; i++)
    if (h->wwait[i] == op) {
      h->nwait--;
      memmove(h->wwait + i, h->wwait + i + 1,
              (size_t)(h->nwait - i) * sizeof *h->wwait);
      return;
    }
}

void lmp_handle_turn_drop(struct lmp_handle *h) {
  if (!h->wheld) return;
  h->wheld = 0;
  turn_pass(h);
}

/* A waiter's gate: a timer that never fires by itself; its record holds a
 * reference on the handle record. Freed unused (the task was cancelled,
 * timed out or abandoned): it leaves the queue, or passes on the turn it
 * was handed. */
struct gate {
  struct lmp_handle *h;
  struct mp_op *op;
};

static void gate_free(void *p) {
  struct gate *g = p;
  struct lmp_handle *h = g->h;
  if (h->wturn == g->op) {
    h->wturn = NULL;
    turn_pass(h);
  } else {
    unwait(h, g->op);
  }
  free(g);
  drop_ref(h);
}

int lmp_handle_wait_turn(lua_State *L, struct lmp_handle *h, lmp_done k) {
  if (h->nwait == h->capwait) {
    int cap = h->capwait ? h->capwait * 2 : 4;
    struct mp_op **w = mp_loop_realloc(h->loop, h->wwait,
                                       (size_t)cap * sizeof *w);
    if (!w) return luaL_error(L, "not enough memory");
    h->wwait = w;
    h->capwait = cap;
  }
  struct gate *g = mp_loop_malloc(h->loop, sizeof *g);
  if (!g) return luaL_error(L, "not enough memory");
  int err;
  struct mp_op *op = lmp_handle_op(h, &err);
  if (!op) {
    free(g);
    return luaL_error(L, "not enough memory");
  }
  g->h = h;
  g->op = op;
  h->refs++;
  h->wwait[h->nwait++] = op;
  mp_op_own(op, g, gate_free);
  mp_op_prep_timer(op, (int64_t)1 << 62); /* ended by turn_pass */
  return lmp_await(L, op, k, "write");
}

int lmp_handle_turn(struct lmp_handle *h, struct mp_op *op) {
  int mine = h->wturn == op;
  int64_t r = op->result;
  if (mine) {
    h->wturn = NULL;
    h->wheld = 1;
  }
  mp_op_release(op); /* not mine: gate_free takes it out of the queue */
  if (!mine) /* a close ended the wait, or the gate failed to start */
    return lmp_handle_closed(h) || r >= 0 ? MP_ECLOSED : (int)r;
  if (lmp_handle_closed(h)) {
    lmp_handle_turn_drop(h);
    return MP_ECLOSED;
  }
  return 0;
}

/* A write to a pipe or device holds the turn until its record goes. */
static void stream_wreq_free(void *p) {
  struct wreq *w = p;
  struct lmp_handle *h = w->h;
  free(w);
  turn_pass(h);
  drop_ref(h);
}

static int start(lua_State *L, struct lmp_handle *h, char *buf, size_t len,
                 int64_t off, lmp_wrote k, lua_CFunction then,
                 const char *fname) {
  struct wreq *w = wreq_of(buf);
  if (len == 0) { /* nothing to do, but still a valid call */
    free(w);
    lmp_handle_turn_drop(h);
    int nret = k(L, 0, off);
    return nret || !then ? nret : then(L);
  }
  int bounded = h->bounded_writes;
  struct mp_op *op = mp_op_new(h->loop, bounded ? bounded_cb : NULL, NULL);
  if (!op) {
    free(w);
    if (!bounded) lmp_handle_turn_drop(h);
    return luaL_error(L, "not enough memory");
  }
  w->k = k;
  w->then = then;
  w->fname = fname;
  w->h = h;
  w->total = len;
  w->done = 0;
  w->off = off;
  if (bounded) {
    h->refs++;
    mp_op_own(op, w, wreq_free);
    mp_op_protect(op);
  } else {
    h->refs++;
    h->wbusy = 1;
    h->wheld = 0; /* the write holds the turn now */
    mp_op_own(op, w, stream_wreq_free);
  }
  return write_more(L, op);
}

int lmp_handle_write(lua_State *L, struct lmp_handle *h, char *buf,
                     size_t len, int64_t off, lmp_wrote k,
                     const char *fname) {
  return start(L, h, buf, len, off, k, NULL, fname);
}

static int flush(lua_State *L, struct lmp_handle *h, lmp_wrote k,
                 lua_CFunction then) {
  size_t n = h->wlen;
  char *buf = lmp_handle_wbuf(h, n);
  if (!buf) return luaL_error(L, "not enough memory");
  memcpy(buf, h->wbuf, n);
  h->wlen = 0;
  return start(L, h, buf, n, h->woff, k, then, "write");
}

int lmp_handle_flush(lua_State *L, struct lmp_handle *h, lmp_wrote k) {
  return flush(L, h, k, NULL);
}

int lmp_handle_flush_then(lua_State *L, struct lmp_handle *h, lmp_wrote k,
                          lua_CFunction fn) {
  return flush(L, h, k, fn);
}

int lmp_handle_flush_now(struct lmp_handle *h) {
  size_t done = 0;
  int err = 0;
  while (done < h->wlen) {
    int64_t r = mp_os_pwrite(h->handle, h->wbuf + done, h->wlen - done,
                             h->woff < 0 ? -1 : h->woff + (int64_t)done);
    if (r <= 0) {
      err = r < 0 ? (int)r : MP_EIO;
      break;
    }
    done += (size_t)r;
  }
  h->wlen = 0;
  return err;
}
