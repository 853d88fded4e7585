/* lbuf.h: a read buffer and the io.read format engine shared by every
 * readable object (files, streams).
 *
 * struct lmp_rbuf is a growable byte buffer: bytes p[off, len) are data
 * not yet handed to Lua. lmp_rbuf_read implements the formats of Lua's
 * io.read over it ("a", "l", "L", "n", byte counts, several per call, as
 * liolib's g_read: the first format that fails yields nil and stops). When
 * it needs more bytes it starts ONE op through the object's vtable,
 * suspends with lmp_await, and resumes parsing in the continuation.
 *
 * Memory the kernel writes: the op reads into scratch memory it owns
 * (op->owned, from lmp_rbuf_opbuf), and the continuation copies the bytes
 * into the rbuf. So the kernel never writes into the rbuf, which may be
 * freed (object closed or collected) while the op is in flight; the copy
 * (64 KiB at a time) costs little next to the syscall. When the buffer is
 * empty, there is no copy at all: the scratch memory becomes the buffer
 * and the old buffer the next scratch. A count (>= 64 KiB) that is the last
 * format reads LMP_RBUF_AHEAD bytes at once into an empty buffer and goes
 * straight into the Lua string (one copy, like liolib); the rest stays
 * buffered for the next reads.
 *
 * Cancellation: a call consumes the buffer only when it returns. Results
 * are parsed against a tentative offset (tpos) committed at the end, so a
 * task cancelled (or timed out) mid-call loses nothing and duplicates
 * nothing: every byte received stays buffered for the next read.
 *
 * Line limit: "l" and "L" never buffer more than rb->maxline bytes looking
 * for the end of a line (LMP_RBUF_MAXLINE, 1 MiB, by default); a longer
 * line (found or not) fails the call with nil, "<what>: line longer than N
 * bytes", "ELINETOOLONG" and the data stays buffered (read it with counts).
 *
 * EOF: with flags 0 (files) a format that finds no data at all returns nil,
 * as liolib ("a" returns "", a partial last line or count is returned).
 * With LMP_RBUF_STREAM the same failure returns the results so far then
 * nil, msg, "EOF" (vt->fail(L, MP_EOF)), and a count is a failure unless
 * all its bytes arrived (the partial bytes stay buffered: "a" returns
 * them); a partial last line is still returned, as io does. "n" over
 * bytes that are not a numeral is no EOF: it returns nil in both modes,
 * as liolib (the bytes it scanned are consumed, the rest stays).
 * LMP_RBUF_RAISE turns every failure with a message into a raised error
 * (lines iterators). An IO error drops
 * the results of the call: nil, msg, code, nothing consumed.
 *
 * How a new object type plugs in:
 *   1. embed a struct lmp_rbuf in the object; lmp_rbuf_init it at creation,
 *      lmp_rbuf_free it at close/__gc (it detaches a read in flight);
 *   2. fill a static const struct lmp_rbuf_vt: check (object at index 1
 *      -> its rbuf, raising if closed), start (prepare one op that reads
 *      into lmp_rbuf_opbuf(rb, op, want): any kind, READ or RECV; the
 *      engine does not look at op->u), done (turn the completed op into
 *      bytes / EOF / error / retry; it runs before anything else in the
 *      continuation, so it is where "closed" is noticed), fail (push nil,
 *      msg, code with the object's path or address, via lmp_rbuf_fail);
 *   3. its read method checks the object and calls
 *      `return lmp_rbuf_read(L, &vt, flags);` with the object at index 1
 *      and the formats at 2..top (the function must have the lmp_state as
 *      upvalue 1, as lmp_await requires);
 *   4. on close or __gc with a read in flight, call lmp_rbuf_detach: it
 *      cuts the op's link to the rbuf and cancels the op (its callback then
 *      releases it, orphaned or not).
 * Only one read may run on an rbuf at a time; a second concurrent read
 * raises "<fname>: another task is already reading". */
#ifndef LBUF_H
#define LBUF_H

#include <stddef.h>
#include <stdint.h>

#include "lcore.h"

#define LMP_RBUF_CHUNK (64 * 1024)         /* default read size */
#define LMP_RBUF_MAXLINE (1024 * 1024)     /* default line limit */
#define LMP_RBUF_MAXREAD (4 * 1024 * 1024) /* largest single read op */
#define LMP_RBUF_AHEAD (256 * 1024)        /* read size for big counts */

/* Not an MP_E* code: "ELINETOOLONG" (see lmp_rbuf_fail). */
#define LMP_ELINETOOLONG (-5000)
/* Returned by vt->done: discard this op's bytes and read again. */
#define LMP_RBUF_RETRY (-5001)

struct opbuf;

struct lmp_rbuf {
  char *p;        /* the data: inside blk, after its header */
  struct opbuf *blk;
  size_t off;     /* consumed up to here (committed) */
  size_t tpos;    /* tentative consumption during a call */
  size_t len;     /* bytes in p */
  size_t cap;
  size_t scanned; /* bytes after tpos known to hold no '\n' */
  size_t maxline;
  int eof;        /* the last fill of this call hit EOF */
  struct mp_op *pending; /* the read op in flight, or NULL */
  struct opbuf *spare;   /* scratch memory kept between fills */
  /* Optional, set by the owner (NULL: every fill is an op). Before an
   * op is started, reads up to want bytes now if that needs no wait,
   * appending them with lmp_rbuf_space: the count (> 0), 0 at EOF, or
   * MP_EAGAIN (then the op is started); may set eof, as vt->done does
   * for a short read. */
  int64_t (*trynow)(struct lmp_rbuf *rb, size_t want);
};

/* Flags for lmp_rbuf_read. */
enum {
  LMP_RBUF_STREAM = 1, /* EOF before any byte of a format: nil, msg, "EOF"
                          (files: plain nil, as liolib) */
  LMP_RBUF_RAISE = 2,  /* errors raise (for lines iterators) */
  /* lmp_rbuf_read_on, the caller found one "l" (or no format;
   * lmp_rbuf_line_kind 1), with LMP_RBUF_KEEPNL one "L" (kind 2): when
   * nothing is buffered the fill starts at once and its continuation
   * takes the line, without the format engine (a keep-alive server
   * waiting for its next request); only for a vt whose start does not
   * look past the object (index 1) */
  LMP_RBUF_WAITLINE = 4,
  LMP_RBUF_KEEPNL = 8
};

struct lmp_rbuf_vt {
  const char *fname; /* "read": error messages name it */
  /* The rbuf of the object at stack index 1; raises if it is closed or not
   * the right type. Called once per call (not by lmp_rbuf_read_on), and
   * after a suspension unless the fill op's rbuf is still attached (close
   * and __gc detach it: the object may have been closed meanwhile). */
  struct lmp_rbuf *(*check)(lua_State *L);
  /* Prepares ONE op reading exactly want bytes (or fewer) into
   * lmp_rbuf_opbuf(rb, op, n). Returns it, not submitted, or NULL with *err
   * set to an MP_E* code. The op's cb may be NULL, or the type's own
   * callback, which must chain to lmp_task_op_cb (the engine installs its
   * callback and calls the type's after it). */
  struct mp_op *(*start)(lua_State *L, size_t want, int *err);
  /* Turns the completed op into: n > 0 bytes at lmp_rbuf_opdata(op), 0 at
   * EOF, LMP_RBUF_RETRY, or an MP_E* code (MP_ECLOSED when closed). The
   * object may still have been closed meanwhile: check that here. */
  int64_t (*done)(lua_State *L, struct mp_op *op);
  /* Pushes nil, message, code for err (MP_E*, MP_EOF or LMP_ELINETOOLONG)
   * naming the object; returns 3. */
  int (*fail)(lua_State *L, int err);
};

void lmp_rbuf_init(struct lmp_rbuf *rb);
void lmp_rbuf_free(struct lmp_rbuf *rb);
/* Drops the buffered bytes (after a seek or a write). */
void lmp_rbuf_reset(struct lmp_rbuf *rb);
/* Buffered bytes not yet consumed. */
static inline size_t lmp_rbuf_avail(const struct lmp_rbuf *rb) {
  return rb->len - rb->off;
}
/* Room for n more bytes at the end of the data (the caller writes them
 * there and adds them to rb->len); NULL when out of memory. */
char *lmp_rbuf_space(struct lmp_rbuf *rb, size_t n);
/* Unlinks and cancels the read in flight (close, __gc). */
void lmp_rbuf_detach(struct lmp_rbuf *rb);

/* Scratch memory owned by op (freed with it, unless the engine takes it
 * back into rb for the next fill), n bytes; NULL when out of memory. */
void *lmp_rbuf_opbuf(struct lmp_rbuf *rb, struct mp_op *op, size_t n);
void *lmp_rbuf_opdata(struct mp_op *op);
/* A spare field in the op's scratch header for the object type (files keep
 * the buffer epoch there). */
int64_t *lmp_rbuf_optag(struct mp_op *op);

/* Raises (luaL_argerror) for a bad format at [first, top]. */
void lmp_rbuf_check_formats(lua_State *L, int first);
/* obj:lines(...) for a method whose object is at 1 (checked) and formats
 * follow: returns iter as a closure with upvalues (the caller's upvalue
 * 1, the object, the count of formats, the formats). */
int lmp_rbuf_lines(lua_State *L, lua_CFunction iter);

/* A lines iterator's fast path (its upvalues as lmp_rbuf_lines made
 * them): when its format is one "l" or "L" (or none), no read is in
 * flight on rb and a whole line is buffered, pushes the line, consumed,
 * and returns 1; else 0 (go through lmp_rbuf_read). */
int lmp_rbuf_line(lua_State *L, struct lmp_rbuf *rb);
/* A read method's formats (2..top): 1 one "l" (or none), 2 one "L",
 * else 0. */
int lmp_rbuf_line_kind(lua_State *L);
/* The same fast path for a read method whose formats are of kind (1 or
 * 2, from lmp_rbuf_line_kind). The caller has checked the object (at 1)
 * and that it may read. */
int lmp_rbuf_read_line(lua_State *L, struct lmp_rbuf *rb, int kind);

/* The engine. Object at 1, formats at 2..top ("l" when none). Returns the
 * number of results, through lmp_await continuations. */
int lmp_rbuf_read(lua_State *L, const struct lmp_rbuf_vt *vt, int flags);
/* The same for a caller that has just checked the object (as vt->check
 * would) and passes its rbuf: the engine does not check it again. */
int lmp_rbuf_read_on(lua_State *L, const struct lmp_rbuf_vt *vt,
                     struct lmp_rbuf *rb, int flags);

/* Pushes nil, "what: message", code; knows LMP_ELINETOOLONG. */
int lmp_rbuf_fail(lua_State *L, int err, const char *what, size_t maxline);

#endif
