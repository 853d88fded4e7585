/* lfile.h: the file object, shared by lfile.c (the class: opening,
 * reading, seeking, closing) and lfwrite.c (writing). lfwrite.c includes
 * this header only; lfile.c includes lfwrite.h. Not a public header. */
#ifndef LFILE_H
#define LFILE_H

#include <stdint.h>

#include "lbuf.h"
#include "lhandle.h"
#include "mp_os.h"

#define LMP_FILE "moonport.file"

enum { F_READ = 1, F_WRITE = 2, F_APPEND = 4 };

/* The handle, the ops in flight on it and the pending write (writes to a
 * regular file are buffered like stdio's: an op per write costs as much
 * as the write itself, and io_uring punts most buffered file writes to a
 * worker) live in the lhandle; every method but write flushes first. */
struct lfile {
  struct lmp_handle *h; /* NULL until opened; closed: h->closing */
  int mode;
  int stream;           /* a pipe, FIFO or character device: no offsets */
  int std;              /* mp.stdout 1, mp.stderr 2: C stdio's buffer of
                           that stream is flushed before each write */
  int64_t size;         /* size seen at open, -1 once stale: caps reads */
  int64_t end;          /* file offset of the end of the buffered bytes */
  int64_t nowait;       /* bytes reads may take from the page cache before
                           one goes through the loop; < 0: never (lfile.c) */
  struct lmp_rbuf rb;
  char path[];
};

/* The file metatable's key in the registry: an address, so that telling
 * a file costs no string lookup (luaL_checkudata's, per call, showed in
 * a line filter's profile). */
extern const char lfile_mt_key;

static inline struct lfile *lfile_to(lua_State *L) {
  struct lfile *f = lua_touserdata(L, 1);
  if (f && lua_getmetatable(L, 1)) {
    int same = lua_rawgetp(L, LUA_REGISTRYINDEX, &lfile_mt_key) &&
               lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (same) return f;
  }
  return luaL_checkudata(L, 1, LMP_FILE); /* raises the usual error */
}

static inline int lfile_isopen(const struct lfile *f) {
  return !lmp_handle_closed(f->h);
}

/* Arg 1, raising if closed. */
static inline struct lfile *lfile_check(lua_State *L) {
  struct lfile *f = lfile_to(L);
  if (!lfile_isopen(f)) luaL_error(L, "attempt to use a closed file");
  return f;
}

/* The logical position: what the user has consumed or written. */
static inline int64_t lfile_pos(struct lfile *f) {
  struct lmp_handle *h = f->h;
  if (h && h->wlen && h->woff >= 0) return h->woff + (int64_t)h->wlen;
  return f->end - (int64_t)lmp_rbuf_avail(&f->rb);
}

/* nil, "path: message", code. */
static inline int lfile_fail(lua_State *L, struct lfile *f, int err) {
  return lmp_rbuf_fail(L, err, f->path, f->rb.maxline);
}

/* After n bytes were written at off (-1: the kernel's position) by a
 * write or a flush: the position moves past them (to the new end of file
 * when appending), and the read buffer is stale. A pipe's reads and
 * writes are separate directions: nothing moves. */
static inline void lfile_wrote(struct lfile *f, int64_t n, int64_t off) {
  if (f->stream) return;
  if (off < 0) {
    int64_t p = lfile_isopen(f) ? mp_os_seek(f->h->handle, 0, MP_SEEK_CUR)
                                : 0;
    f->end = p < 0 ? 0 : p;
  } else {
    f->end = off + n;
  }
  lmp_rbuf_reset(&f->rb);
}

/* The hook of a flush before a method (lmp_handle_flush_then): a failed
 * flush is the method's failure (nil, msg, code), as a late write error
 * is in io; else 0, and the method runs. */
static inline int lfile_flushed(lua_State *L, int64_t n, int64_t off) {
  struct lfile *f = lfile_to(L);
  if (n < 0) return lfile_fail(L, f, (int)n);
  lfile_wrote(f, n, off);
  return 0;
}

void lmp_open_file(lua_State *L, struct lmp_state *S); /* core.fs.open */

/* For the other ways to get a file (lfsx.c: tmpfile, fdopen). */
/* A mode string as io.open's (plus "x"): MP_O_* flags and F_* bits; 0
 * when invalid. */
int lfile_parse_mode(const char *m, int *flags, int *fmode);
/* Pushes a new file object, closed, named path (len bytes). */
struct lfile *lfile_push(lua_State *L, const char *path, size_t len);
/* Makes the closed file f own the open handle fd, with the F_* bits
 * fmode: one fs.open made (position 0), or (adopted) one the program
 * had (its position and status flags kept). Raises when out of memory,
 * fd then closed. */
void lfile_adopt(lua_State *L, struct lfile *f, mp_handle_t fd, int fmode,
                 int adopted);

#endif
