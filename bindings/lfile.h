/* lfile.h: the file object, shared by lfile.c (opening, reading, seeking,
 * closing) and lfwrite.c (buffered writing). Not a public header. */
#ifndef LFILE_H
#define LFILE_H

#include <stdint.h>

#include "lbuf.h"

#define LMP_FILE "moonport.file"

enum { F_READ = 1, F_WRITE = 2, F_APPEND = 4 };

struct lfd {
  int fd;
  int refs;             /* the object (until closed) + ops in flight */
  struct mp_loop *loop;
  struct mp_op **ops;   /* ops in flight, to cancel at close */
  int nops, capops;
};

struct lfile {
  struct lfd *d;        /* NULL once closed */
  int mode;
  int stream;           /* a pipe, FIFO or character device: no offsets */
  int64_t size;         /* size seen at open, -1 once stale: caps reads */
  int64_t end;          /* file offset of the end of the buffered bytes */
  struct lmp_rbuf rb;
  /* Writes to a regular file are buffered like stdio's (an op per write
   * costs as much as the write itself, and io_uring punts most buffered
   * file writes to a worker): wbuf holds wlen bytes due at woff (-1: at
   * the end, for append modes). Every other operation flushes first. */
  char *wbuf;
  size_t wlen;
  int64_t woff;
  char path[];
};

enum { WBUF_MAX = 64 * 1024 };

/* The logical position: what the user has consumed or written. */
int64_t lfile_pos(struct lfile *f);
/* Tracks op as in flight on the descriptor (closing cancels it). */
int lfile_track(struct lfd *d, struct mp_op *op);
void lfile_untrack(struct mp_op *op);
/* Callback of every op on a file: untracks, then the usual wake-up. */
void lfile_op_cb(struct mp_op *op);
struct lfile *lfile_to(lua_State *L);    /* arg 1, open or closed */
struct lfile *lfile_check(lua_State *L); /* arg 1, raises if closed */
/* A new op on f's descriptor, tracked; NULL with *err set. */
struct mp_op *lfile_op(struct lmp_state *S, struct lfile *f, int *err);
int lfile_fail(lua_State *L, struct lfile *f, int err); /* nil, msg, code */
/* Relinks an op about to be submitted again (the rest of a short read or
 * write); if the file closed meanwhile, releases it and pushes the
 * failure, returning the number of values pushed (else 0). */
int lfile_retrack(lua_State *L, struct lfile *f, struct mp_op *op);
/* The op's result, or MP_ECLOSED if the file closed meanwhile. */
int64_t lfile_result(lua_State *L, struct mp_op *op);

/* Methods (lfwrite.c). */
int lfile_write(lua_State *L);
int lfile_pwrite(lua_State *L);
int lfile_flush(lua_State *L);
/* Writes the buffer now, blocking (for __close and __gc, which cannot
 * suspend); returns 0 or an MP_E* code. */
int lfile_flush_now(struct lfile *f);
/* Runs fn(L), the method called, once the buffered writes are written. */
int lfile_after_flush(lua_State *L, struct lfile *f, lua_CFunction fn);
int lfile_close(lua_State *L); /* lfile.c */
void lmp_open_file(lua_State *L, struct lmp_state *S); /* core.fs.open */

#endif
