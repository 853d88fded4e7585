/* lqueue.c: the task queues, which need no Lua (lqueue.h): the ready
 * queue, the unlinking of a task from a joiner list or wait queue (the
 * linking is the parking's, in lcore.c), and mp.sleep's heap of
 * sleepers. Below lcore.c: it calls nothing there (lcore.h draws the
 * layers). */
#include "lqueue.h"

/* t leaves the joiner list it is on (lmp_park_join): its links are
 * the ready queue's and the op's words again. */
static void join_unlink(struct lmp_task *t) {
  *t->jprev = t->next;
  if (t->next) t->next->jprev = t->jprev;
  t->next = NULL;
  t->op = NULL;
  t->joining = 0;
}

void lmp_wq_remove(struct lmp_task *t) {
  struct lmp_wq *q = t->wq;
  *t->jprev = t->next;
  if (t->next) t->next->jprev = t->jprev;
  else q->tailp = t->jprev;
  t->next = NULL;
  t->op = NULL;
  t->wq = NULL;
  t->queued = 0;
}

/* Off the joiner list or queue it is on. */
void lmp_unlink_wait(struct lmp_task *t) {
  if (t->joining) join_unlink(t);
  if (t->queued) lmp_wq_remove(t);
}

/* A joiner or a queued waiter readied for anything but its target's end
 * or a hand-over (a cancel, a deadline, its coroutine let go) leaves the
 * list first. */
void lmp_ready_push(struct lmp_state *S, struct lmp_task *t) {
  lmp_unlink_wait(t);
  if (t->status != LMP_NEW) t->status = LMP_READY;
  t->next = NULL;
  if (S->ready_tail) S->ready_tail->next = t; else S->ready_head = t;
  S->ready_tail = t;
  mp_loop_stop(S->loop); /* a waiting turn returns to run it */
}

void lmp_ready_remove(struct lmp_state *S, struct lmp_task *t) {
  struct lmp_task **p = &S->ready_head, *prev = NULL;
  while (*p && *p != t) prev = *p, p = &(*p)->next;
  if (!*p) return;
  *p = t->next;
  if (S->ready_tail == t) S->ready_tail = prev;
  t->next = NULL;
}

/* ---- mp.sleep ----
 * The sleeping tasks are a min-heap in the state; one loop timer is
 * armed for the earliest. When it fires, every task due by then is
 * readied, in order, and the timer is armed for the next. A sleep that
 * ends otherwise (cancel, timeout, its coroutine abandoned, the task
 * collected) takes its entry out; a timer armed for an entry gone just
 * fires for nothing. */
static int sleeper_before(const struct lmp_sleeper *a,
                          const struct lmp_sleeper *b) {
  /* ids wrap: the one started first is behind by less than 2^31 */
  return a->due < b->due ||
         (a->due == b->due && (int32_t)(a->t->wait - b->t->wait) < 0);
}

static void sleeper_place(struct lmp_state *S, size_t i,
                          struct lmp_sleeper s) {
  S->sleepers[i] = s;
  s.t->slot = i;
}

static void sleeper_up(struct lmp_state *S, size_t i) {
  struct lmp_sleeper s = S->sleepers[i];
  while (i > 0 && sleeper_before(&s, &S->sleepers[(i - 1) / 2])) {
    sleeper_place(S, i, S->sleepers[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  sleeper_place(S, i, s);
}

static void sleeper_down(struct lmp_state *S, size_t i) {
  struct lmp_sleeper s = S->sleepers[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= S->nsleepers) break;
    if (c + 1 < S->nsleepers &&
        sleeper_before(&S->sleepers[c + 1], &S->sleepers[c]))
      c++;
    if (!sleeper_before(&S->sleepers[c], &s)) break;
    sleeper_place(S, i, S->sleepers[c]);
    i = c;
  }
  sleeper_place(S, i, s);
}

static void sleep_cb(struct mp_op *op);

/* Gives the armed timer up: released by sleep_cb when it completes. */
static void sleep_disarm(struct lmp_state *S) {
  S->sleep_op->data = NULL;
  mp_op_cancel(S->sleep_op);
  S->sleep_op = NULL;
}

#define NOT_QUEUED ((size_t)-1) /* sleeping, its entry gone (sleep_cb) */

/* The last sleeper gone, so is the timer: an op in flight for nothing
 * would hide a deadlock (and keep a drained state waiting). */
void lmp_sleeper_remove(struct lmp_state *S, struct lmp_task *t) {
  size_t i = t->slot;
  t->sleeping = 0;
  if (i == NOT_QUEUED) return;
  struct lmp_sleeper last = S->sleepers[--S->nsleepers];
  if (!S->nsleepers && S->sleep_op) sleep_disarm(S);
  if (i != S->nsleepers) {
    sleeper_place(S, i, last);
    sleeper_down(S, i);
    sleeper_up(S, last.t->slot);
  }
  /* a burst of sleepers gone: give the memory back (a failed shrink
   * keeps the larger heap) */
  if (S->capsleepers > 64 && S->nsleepers < S->capsleepers / 4) {
    struct lmp_sleeper *h = mp_loop_realloc(
        S->loop, S->sleepers, S->capsleepers / 2 * sizeof *h);
    if (h) {
      S->sleepers = h;
      S->capsleepers /= 2;
    }
  }
}

/* Submits op (idle) as the timer for the earliest sleeper. */
static int sleep_submit(struct lmp_state *S, struct mp_op *op) {
  int64_t due = S->sleepers[0].due, now = mp_loop_now(S->loop);
  mp_op_prep_timer(op, due > now ? due - now : 0);
  int r = mp_op_submit(op);
  if (r < 0) return r;
  S->sleep_op = op;
  S->sleep_due = due;
  return 0;
}

/* Arms the timer for the earliest sleeper, unless one fires by then; an
 * armed one due later is given up (orphaned) only once its successor is
 * in flight: out of memory leaves the other sleepers their timer. 0, or
 * an MP_E* code. */
static int sleep_arm(struct lmp_state *S) {
  if (!S->nsleepers) return 0;
  if (S->sleep_op && S->sleep_due <= S->sleepers[0].due) return 0;
  struct mp_op *old = S->sleep_op;
  struct mp_op *op = mp_op_new(S->loop, sleep_cb, S);
  if (!op) return MP_ENOMEM;
  int r = sleep_submit(S, op);
  if (r < 0) {
    mp_op_release(op);
    return r;
  }
  if (old) {
    old->data = NULL;
    mp_op_cancel(old);
  }
  return 0;
}

static void sleep_cb(struct mp_op *op) {
  struct lmp_state *S = op->data;
  if (!S || S->closing) { /* given up for an earlier one, or closing */
    if (S) S->sleep_op = NULL;
    mp_op_release(op);
    return;
  }
  S->sleep_op = NULL;
  int64_t now = mp_loop_now(S->loop);
  while (S->nsleepers && S->sleepers[0].due <= now) {
    struct lmp_task *t = S->sleepers[0].t;
    int parked = t->status == LMP_PARKED;
    lmp_sleeper_remove(S, t);
    if (parked) {
      lmp_ready_push(S, t);
    } else { /* a cancel or deadline readied it first: that wins, as it
              * would have cancelled an op (lcore.c sleep_k) */
      t->sleeping = 1;
      t->slot = NOT_QUEUED;
    }
  }
  /* The same record again for the next: nothing to allocate (its heap
   * slot is the one it just left). */
  if (!S->nsleepers || sleep_submit(S, op) < 0) mp_op_release(op);
  if (S->nsleepers && !S->sleep_op) sleep_arm(S);
}

int lmp_sleep_reserve(struct lmp_state *S) {
  if (S->nsleepers == S->capsleepers) {
    size_t cap = S->capsleepers ? S->capsleepers * 2 : 64;
    struct lmp_sleeper *h =
        mp_loop_realloc(S->loop, S->sleepers, cap * sizeof *h);
    if (!h) return MP_ENOMEM;
    S->sleepers = h;
    S->capsleepers = cap;
  }
  return 0;
}

int lmp_sleep_insert(struct lmp_state *S, struct lmp_task *t, int64_t due) {
  S->sleepers[S->nsleepers] = (struct lmp_sleeper){due, t};
  t->sleeping = 1;
  sleeper_up(S, S->nsleepers++);
  int r = sleep_arm(S);
  if (r < 0) lmp_sleeper_remove(S, t);
  return r;
}
