/* lhandle.h: the handle-lifetime object shared by files and sockets (and
 * later pipes). One layer above the core; objects embed a pointer to it.
 *
 * A struct lmp_handle owns an mp_handle_t and knows every op in flight on
 * it. Two lifetimes hang off it:
 *   - the handle (the descriptor) stays open until close was asked for AND
 *     the last tracked op has completed: an SQE still queued in a ring, or
 *     a pool job, names the descriptor by number, so closing it earlier
 *     could aim that op at a reused descriptor. The close itself goes
 *     through the loop as a protected op (a drained loop still performs
 *     it), on the pool when it may block (SO_LINGER);
 *   - the record lives while its owner object holds it (until __gc) or an
 *     op is tracked, so a continuation, which always has its object on the
 *     stack, can read h->closing to tell "closed" from a plain cancel, and
 *     ops outliving a collected object still close the handle at the end.
 *
 * The pending write (files buffer small writes like stdio) lives here too,
 * with its flush: a reader that must flush first calls down into lhandle,
 * never sideways into the writer.
 *
 * Use:
 *   h = lmp_handle_new(loop, fd)            owner's ref, at object creation
 *   op = lmp_handle_op(h, &err)             a new op, tracked; its cb
 *                                           untracks and wakes the task
 *   lmp_handle_track / lmp_handle_untrack   for ops made elsewhere (a
 *                                           socket request, a resubmit)
 *   lmp_handle_close(h)                     close(): cancels the ops, drops
 *                                           the pending write; the handle
 *                                           closes with the last op
 *   lmp_handle_take(h)                      close() that wants the close's
 *                                           result: the handle if nothing
 *                                           is in flight, else invalid
 *   lmp_handle_take_now(h)                  the same, ops in flight or not,
 *                                           when none names the handle
 *   lmp_handle_unref(h)                     __gc: closes, drops the owner's
 *                                           ref */
#ifndef LHANDLE_H
#define LHANDLE_H

#include <stddef.h>
#include <stdint.h>

#include "lcore.h"

struct lmp_handle {
  mp_handle_t handle;     /* MP_INVALID_HANDLE once closed (or taken) */
  struct mp_loop *loop;
  int refs;               /* the owner (until unref) + tracked ops */
  int nops, capops;
  struct mp_op **ops;     /* tracked ops, cancelled at close: inl until
                             more are in flight (a file has one or two:
                             no allocation per open, issue 16) */
  struct mp_op *inl[2];
  unsigned char closing;  /* close asked for: methods see a closed object */
  unsigned char blocking_close; /* close may block (SO_LINGER): pool */
  unsigned char bounded_writes; /* a regular file: writes are never
                                   interrupted (lhandle.c) */
  /* The pending write: wlen bytes due at woff (-1: at the kernel's
   * position, for append modes), in wbuf (WBUF_MAX bytes once used). */
  char *wbuf;
  size_t wlen;
  int64_t woff;
  /* Writes to a pipe or device go one at a time, in the order they were
   * made (lmp_handle_wait_turn): wbusy while one is in flight (its
   * continuations included) or its turn is handed on (wturn: the gate op
   * of the waiter it went to; wheld: taken, the write not yet started);
   * wwait: the gates of the writers waiting, first first. */
  unsigned char wbusy, wheld;
  struct mp_op *wturn;
  struct mp_op **wwait;
  int nwait, capwait;
};

enum { LMP_WBUF_MAX = 64 * 1024 };

/* A record owning handle, with the owner's reference; NULL when out of
 * memory (the handle is then not closed: the caller still owns it). */
struct lmp_handle *lmp_handle_new(struct mp_loop *loop, mp_handle_t handle);
/* Tracks op as in flight on h (op->ref = h; closing cancels it); MP_ENOMEM
 * when it cannot. */
int lmp_handle_track(struct lmp_handle *h, struct mp_op *op);
/* The op no longer uses the handle (completed, or never submitted). May
 * close the handle and free the record. Idempotent. */
void lmp_handle_untrack(struct mp_op *op);
/* Callback of a tracked op: untracks, then lmp_task_op_cb. */
void lmp_handle_op_cb(struct mp_op *op);
/* A new op (cb lmp_handle_op_cb), tracked; NULL with *err set. */
struct mp_op *lmp_handle_op(struct lmp_handle *h, int *err);
/* Re-tracks an op about to be submitted again (the rest of a short
 * transfer): 0, MP_ECLOSED if h was closed meanwhile, or MP_ENOMEM. */
int lmp_handle_retrack(struct lmp_handle *h, struct mp_op *op);
static inline int lmp_handle_closed(const struct lmp_handle *h) {
  return !h || h->closing;
}

/* Asks for the close: cancels every tracked op and drops the pending write
 * (flush it first); the handle closes when the last op completes, now if
 * none is in flight. Idempotent. */
void lmp_handle_close(struct lmp_handle *h);
/* As lmp_handle_close, but when nothing is in flight the handle is handed
 * to the caller (who closes it, say with a waited close op) instead of
 * being closed here; MP_INVALID_HANDLE otherwise. */
mp_handle_t lmp_handle_take(struct lmp_handle *h);
/* As lmp_handle_take, but the handle even with ops in flight (they are
 * cancelled), for an owner whose ops never name it: a shared server's
 * accepts name the listener's socket, so its own handle closes at once. */
mp_handle_t lmp_handle_take_now(struct lmp_handle *h);
/* The owner lets go (__gc): closes if not yet closed; the record is freed
 * with the last tracked op. NULL is fine. */
void lmp_handle_unref(struct lmp_handle *h);

/* --- the pending write -------------------------------------------------- */

/* Room for len more bytes in the pending write (the caller copies them
 * there), which must fit: wlen + len <= LMP_WBUF_MAX. off is where the
 * bytes go when the buffer was empty (-1: at the kernel's position). NULL
 * when out of memory. */
char *lmp_handle_wspace(struct lmp_handle *h, size_t len, int64_t off);
/* Continuation of a write through the handle: n is the count of bytes
 * written (all of them) or an MP_E* code (MP_ECLOSED: closed meanwhile);
 * off is where they started (-1: the kernel's position). The stack is as
 * the caller left it. */
typedef int (*lmp_wrote)(lua_State *L, int64_t n, int64_t off);
/* A block for len bytes to write (fill it, then lmp_handle_write); NULL
 * when out of memory. */
char *lmp_handle_wbuf(struct lmp_handle *h, size_t len);
/* Writes the len bytes of buf (from lmp_handle_wbuf, owned by the write
 * from now on, whatever happens) at off (-1: at the kernel's position),
 * continuing short writes, then returns k(L, n, off). fname names the Lua
 * function (for lmp_await). */
int lmp_handle_write(lua_State *L, struct lmp_handle *h, char *buf,
                     size_t len, int64_t off, lmp_wrote k,
                     const char *fname);
/* Whether a write to a pipe or device must wait its turn: a write is in
 * flight on h or waiting. */
static inline int lmp_handle_wbusy(const struct lmp_handle *h) {
  return h->wbusy;
}
/* Suspends the caller until the writes on h ahead of it are done, then
 * k(L, op); k calls lmp_handle_turn(h, op) first. */
int lmp_handle_wait_turn(lua_State *L, struct lmp_handle *h, lmp_done k);
/* In k: releases op; 0: the turn is the caller's, who starts its write
 * now (lmp_handle_write) or gives the turn up (lmp_handle_turn_drop);
 * else an MP_E* code (closed meanwhile). */
int lmp_handle_turn(struct lmp_handle *h, struct mp_op *op);
/* The turn taken is not used (a failure before the write started). */
void lmp_handle_turn_drop(struct lmp_handle *h);

/* Writes the pending bytes as lmp_handle_write, emptying the buffer;
 * raises when out of memory. */
int lmp_handle_flush(lua_State *L, struct lmp_handle *h, lmp_wrote k);
/* For a method that must see the pending bytes written first (a read, a
 * seek, a close): flushes, then returns k(L, n, off) if that is nonzero
 * (k pushed a failure), else fn(L), the method again, on the stack it was
 * called with. */
int lmp_handle_flush_then(lua_State *L, struct lmp_handle *h, lmp_wrote k,
                          lua_CFunction fn);
/* Writes the pending bytes now, blocking: for __close and __gc, which
 * cannot suspend (at most LMP_WBUF_MAX bytes, as stdio's fclose). Returns 0
 * or an MP_E* code; the buffer is empty afterwards either way. */
int lmp_handle_flush_now(struct lmp_handle *h);

#endif
