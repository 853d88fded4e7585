/* timer.c: the timer min-heap, backend-agnostic.
 *
 * Ordered by (due, seq) so timers with the same deadline fire in the order
 * they were started. The keys live in the heap array itself, so sifting
 * compares without touching the op records (with 100,000 sleeping tasks
 * those are cache misses); each op remembers its slot for O(log n) stop. */
#include "mp_internal.h"

struct mp__timer_slot {
  int64_t due;
  uint64_t seq;
  struct mp_op *op;
};

static int before(const struct mp__timer_slot *a,
                  const struct mp__timer_slot *b) {
  if (a->due != b->due) return a->due < b->due;
  return a->seq < b->seq;
}

static void place(struct mp_loop *loop, size_t i, struct mp__timer_slot s) {
  loop->heap[i] = s;
  s.op->u.timer.slot = i;
}

static void sift_up(struct mp_loop *loop, size_t i) {
  struct mp__timer_slot s = loop->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(&s, &loop->heap[parent])) break;
    place(loop, i, loop->heap[parent]);
    i = parent;
  }
  place(loop, i, s);
}

static void sift_down(struct mp_loop *loop, size_t i) {
  struct mp__timer_slot s = loop->heap[i];
  size_t n = loop->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && before(&loop->heap[c + 1], &loop->heap[c])) c++;
    if (!before(&loop->heap[c], &s)) break;
    place(loop, i, loop->heap[c]);
    i = c;
  }
  place(loop, i, s);
}

int mp__timer_start(struct mp_loop *loop, struct mp_op *op) {
  if (loop->nheap == loop->capheap) {
    size_t cap = loop->capheap ? loop->capheap * 2 : 64;
    struct mp__timer_slot *h =
        mp_loop_realloc(loop, loop->heap, cap * sizeof *h);
    if (!h) return MP_ENOMEM;
    loop->heap = h;
    loop->capheap = cap;
  }
  op->u.timer.seq = loop->timer_seq++;
  loop->heap[loop->nheap] = (struct mp__timer_slot){
      op->u.timer.due, op->u.timer.seq, op};
  op->u.timer.slot = loop->nheap++;
  sift_up(loop, op->u.timer.slot);
  return 0;
}

/* Removes op from the heap; returns 1 if it was there. */
int mp__timer_stop(struct mp_loop *loop, struct mp_op *op) {
  size_t i = op->u.timer.slot;
  if (i >= loop->nheap || loop->heap[i].op != op) return 0;
  struct mp__timer_slot last = loop->heap[--loop->nheap];
  if (last.op != op) {
    place(loop, i, last);
    if (i > 0 && before(&last, &loop->heap[(i - 1) / 2])) sift_up(loop, i);
    else sift_down(loop, i);
  }
  op->u.timer.slot = (size_t)-1;
  return 1;
}

void mp__timer_run(struct mp_loop *loop) {
  while (loop->nheap > 0 && loop->heap[0].due <= loop->now) {
    struct mp_op *op = loop->heap[0].op;
    mp__timer_stop(loop, op);
    mp__op_complete(loop, op, 0);
  }
}

int64_t mp__timer_next(struct mp_loop *loop) {
  if (loop->nheap == 0) return -1;
  int64_t d = loop->heap[0].due - loop->now;
  return d > 0 ? d : 0;
}
