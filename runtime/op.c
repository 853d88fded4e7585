/* op.c: struct mp_op: allocate, prepare, submit, cancel, release. */
#include <stdio.h>
#include <string.h>

#include "mp_internal.h"

enum { BLOCK_OPS = 128 };

struct mp_op *mp_op_new(struct mp_loop *loop, mp_op_cb cb, void *data) {
  struct mp_op *op = loop->free_ops;
  if (!op) {
    /* One block of records; the first slot links the block list. */
    struct mp_op *block = malloc(BLOCK_OPS * sizeof *block);
    if (!block) return NULL;
    block[0].next = loop->blocks;
    loop->blocks = block;
    for (int i = BLOCK_OPS - 1; i >= 1; i--) {
      block[i].next = loop->free_ops;
      loop->free_ops = &block[i];
    }
    op = loop->free_ops;
  }
  loop->free_ops = op->next;
  memset(op, 0, sizeof *op);
  op->cb = cb;
  op->data = data;
  op->loop = loop;
  op->fd = -1;
  op->state = MP__IDLE;
  return op;
}

void mp_op_init(struct mp_op *op, mp_op_cb cb, void *data) {
  memset(op, 0, sizeof *op);
  op->cb = cb;
  op->data = data;
  op->fd = -1;
  op->kind = MP_OP_POST;
  op->state = MP__IDLE;
  op->flags = MP__F_EXTERNAL;
}

void mp_op_release(struct mp_op *op) {
  if (op->state != MP__IDLE) {
    /* Freeing an op the kernel may still write to is never recoverable. */
    fprintf(stderr, "moonport: mp_op_release of an op in flight (kind %d)\n",
            op->kind);
    abort();
  }
  free(op->owned);
  op->owned = NULL;
  if (op->flags & MP__F_EXTERNAL) return;
  struct mp_loop *loop = op->loop;
  op->state = MP__FREE;
  op->next = loop->free_ops;
  loop->free_ops = op;
}

static void inflight_add(struct mp_loop *loop, struct mp_op *op) {
  op->prev = NULL;
  op->next = loop->inflight;
  if (loop->inflight) loop->inflight->prev = op;
  loop->inflight = op;
  loop->ninflight++;
  op->state = MP__INFLIGHT;
}

static void inflight_unlink(struct mp_loop *loop, struct mp_op *op) {
  if (op->prev) op->prev->next = op->next; else loop->inflight = op->next;
  if (op->next) op->next->prev = op->prev;
  op->next = op->prev = NULL;
}

int mp_op_submit(struct mp_op *op) {
  struct mp_loop *loop = op->loop;
  int r = 0;
  if (op->state != MP__IDLE || op->kind == MP_OP_POST) return MP_EINVAL;
  op->flags &= (uint8_t)~(MP__F_CANCEL | MP__F_BACKEND);
  op->result = 0;
  inflight_add(loop, op);
  switch (op->kind) {
    case MP_OP_NOP:
      mp__op_complete(loop, op, 0);
      break;
    case MP_OP_TIMER:
      op->u.timer.due += loop->now; /* prep stored the relative timeout */
      r = mp__timer_start(loop, op);
      break;
    case MP_OP_WORK:
      r = mp__pool_submit(loop, op);
      break;
    default:
      op->flags |= MP__F_BACKEND;
      r = loop->backend->submit(loop, op);
      break;
  }
  if (r < 0) {
    inflight_unlink(loop, op);
    loop->ninflight--;
    op->state = MP__IDLE;
  }
  return r;
}

void mp_op_cancel(struct mp_op *op) {
  struct mp_loop *loop = op->loop;
  if (op->state != MP__INFLIGHT || (op->flags & MP__F_CANCEL)) return;
  op->flags |= MP__F_CANCEL;
  switch (op->kind) {
    case MP_OP_TIMER:
      if (mp__timer_stop(loop, op)) mp__op_complete(loop, op, MP_ECANCELED);
      break;
    case MP_OP_WORK:
      mp__pool_cancel(loop, op);
      break;
    case MP_OP_NOP:
      break; /* already complete */
    default:
      loop->backend->cancel(loop, op);
      break;
  }
}

int mp_op_inflight(const struct mp_op *op) {
  return op->state == MP__INFLIGHT || op->state == MP__DONE;
}

/* Called by backends, timers and the pool: the op leaves the in-flight list
 * and waits for dispatch. It still counts in ninflight until its callback
 * has run, so the loop stays alive for it. */
void mp__op_complete(struct mp_loop *loop, struct mp_op *op, int64_t res) {
  inflight_unlink(loop, op);
  op->result = res;
  op->state = MP__DONE;
  mp__queue_push(&loop->done, op);
}

int mp__queue_remove(struct mp__queue *q, struct mp_op *op) {
  struct mp_op *prev = NULL;
  for (struct mp_op *it = q->head; it; prev = it, it = it->link) {
    if (it != op) continue;
    if (prev) prev->link = it->link; else q->head = it->link;
    if (q->tail == it) q->tail = prev;
    it->link = NULL;
    return 1;
  }
  return 0;
}

void mp_op_prep_nop(struct mp_op *op) { op->kind = MP_OP_NOP; }

void mp_op_prep_timer(struct mp_op *op, int64_t timeout_ns) {
  op->kind = MP_OP_TIMER;
  op->u.timer.due = timeout_ns < 0 ? 0 : timeout_ns;
}

void mp_op_prep_work(struct mp_op *op, mp_work_fn fn, void *arg) {
  op->kind = MP_OP_WORK;
  op->u.work.fn = fn;
  op->u.work.arg = arg;
}

static void prep_rw(struct mp_op *op, int kind, int fd, const void *buf,
                    size_t len, int64_t off) {
  op->kind = (uint8_t)kind;
  op->fd = fd;
  op->u.rw.buf = (void *)buf;
  op->u.rw.len = len;
  op->u.rw.off = off;
}

void mp_op_prep_read(struct mp_op *op, int fd, void *buf, size_t len,
                     int64_t off) {
  prep_rw(op, MP_OP_READ, fd, buf, len, off);
}

void mp_op_prep_write(struct mp_op *op, int fd, const void *buf, size_t len,
                      int64_t off) {
  prep_rw(op, MP_OP_WRITE, fd, buf, len, off);
}

void mp_op_prep_recv(struct mp_op *op, int fd, void *buf, size_t len) {
  prep_rw(op, MP_OP_RECV, fd, buf, len, -1);
}

void mp_op_prep_send(struct mp_op *op, int fd, const void *buf, size_t len) {
  prep_rw(op, MP_OP_SEND, fd, buf, len, -1);
}

void mp_op_prep_accept(struct mp_op *op, int fd) {
  op->kind = MP_OP_ACCEPT;
  op->fd = fd;
}

void mp_op_prep_sendmsg(struct mp_op *op, int fd, void *msg) {
  prep_rw(op, MP_OP_SENDMSG, fd, msg, 0, -1);
}

void mp_op_prep_recvmsg(struct mp_op *op, int fd, void *msg) {
  prep_rw(op, MP_OP_RECVMSG, fd, msg, 0, -1);
}

int mp_op_prep_connect(struct mp_op *op, int fd, const struct sockaddr *addr,
                       uint32_t addrlen) {
  void *copy = malloc(addrlen);
  if (!copy) return MP_ENOMEM;
  memcpy(copy, addr, addrlen);
  free(op->owned);
  op->owned = copy;
  op->kind = MP_OP_CONNECT;
  op->fd = fd;
  op->u.sa.addr = copy;
  op->u.sa.addrlen = addrlen;
  return 0;
}

void mp_op_prep_close(struct mp_op *op, int fd) {
  op->kind = MP_OP_CLOSE;
  op->fd = fd;
}
