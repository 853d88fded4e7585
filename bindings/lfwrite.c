/* lfwrite.c: writing files (mp.fs): write, pwrite, flush.
 *
 * Writes to a regular file collect in the object's buffer (up to 64 KiB,
 * as stdio's), so a loop of small writes costs no op and no suspension;
 * a write that would overflow it goes out together with it in one op,
 * continued while the kernel writes short. Every other method flushes
 * first through lfile_after_flush, which writes the buffer and then runs
 * the method itself from the continuation, on the stack it was called
 * with. Pipes and devices are written at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lfile.h"

static int write_k(lua_State *L, struct mp_op *op);

/* Submits the rest of a write: owned bytes [done, total) at off. */
static int write_more(lua_State *L, struct mp_op *op, int64_t off) {
  struct lfile *f = lfile_to(L);
  size_t total = (size_t)lua_tointeger(L, -2), done =
      (size_t)lua_tointeger(L, -1);
  int nret = lfile_retrack(L, f, op);
  if (nret) return nret;
  mp_op_prep_write(op, f->d->fd, (char *)op->owned + done, total - done,
                   off < 0 ? -1 : off + (int64_t)done);
  return lmp_await(L, op, write_k, "write");
}

/* Stack: file, ..., offset (-1: append, else where the write starts),
 * ret (1: the file, 2: true), total, done. */
static int write_k(lua_State *L, struct mp_op *op) {
  int64_t r = lfile_result(L, op), off = lua_tointeger(L, -4);
  struct lfile *f = lfile_to(L);
  if (r < 0) {
    mp_op_release(op);
    if (lua_tointeger(L, -3) == 3 && f->d &&
        lua_tocfunction(L, -5) == lfile_close) {
      /* close reports the failed flush, and closes all the same */
      lua_settop(L, 1);
      lfile_close(L);
      lua_settop(L, 1);
    }
    return lfile_fail(L, f, (int)r);
  }
  size_t total = (size_t)lua_tointeger(L, -2);
  size_t done = (size_t)lua_tointeger(L, -1) + (size_t)r;
  int positional = lua_toboolean(L, -3) == 0 ? 0 : (int)lua_tointeger(L, -3);
  if (r == 0 && done < total) {
    mp_op_release(op);
    return lfile_fail(L, f, MP_EIO); /* no progress: give up */
  }
  if (done < total) {
    lua_pop(L, 1);
    lua_pushinteger(L, (lua_Integer)done);
    return write_more(L, op, off);
  }
  mp_op_release(op);
  if (positional != 2 && !f->stream) {
    /* file:write: the position moves past the bytes (or to the new end
     * of file when appending); the read buffer was dropped at the start */
    if (off < 0) {
      off_t p = lseek(f->d->fd, 0, SEEK_CUR);
      f->end = p < 0 ? 0 : (int64_t)p;
    } else {
      f->end = off + (int64_t)total;
    }
    lmp_rbuf_reset(&f->rb);
  }
  if (positional == 3) { /* a flush: now run the method that asked for it */
    lua_pop(L, 4);
    lua_CFunction fn = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    return fn(L);
  }
  lua_settop(L, 1);
  return 1;
}

/* Measures arguments [first, top] as io.write takes them (strings and
 * numbers; numbers become strings in place). */
static size_t measure(lua_State *L, int first) {
  int top = lua_gettop(L);
  size_t n = 0;
  for (int i = first; i <= top; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      char b[64];
      int len = lua_isinteger(L, i)
          ? snprintf(b, sizeof b, LUA_INTEGER_FMT, lua_tointeger(L, i))
          : snprintf(b, sizeof b, LUA_NUMBER_FMT, lua_tonumber(L, i));
      lua_pushlstring(L, b, (size_t)len);
      lua_replace(L, i);
    }
    size_t l;
    luaL_checklstring(L, i, &l);
    n += l;
  }
  return n;
}

/* Copies the measured arguments [first, top] to dst. */
static void copy_args(lua_State *L, int first, char *dst) {
  int top = lua_gettop(L);
  size_t n = 0;
  for (int i = first; i <= top; i++) {
    size_t l;
    const char *s = lua_tolstring(L, i, &l);
    memcpy(dst + n, s, l);
    n += l;
  }
}

/* The buffered bytes followed by arguments [first, top], in one block the
 * write op will own; the buffer is emptied. */
static char *gather(lua_State *L, struct lfile *f, int first, size_t *total) {
  size_t n = measure(L, first);
  char *buf = mp_loop_malloc(lmp_state(L)->loop, f->wlen + n ? f->wlen + n : 1);
  if (!buf) return NULL;
  if (f->wlen) memcpy(buf, f->wbuf, f->wlen);
  copy_args(L, first, buf + f->wlen);
  *total = f->wlen + n;
  f->wlen = 0;
  return buf;
}

static int start_write(lua_State *L, struct lfile *f, int first,
                       int64_t off, int positional) {
  struct lmp_state *S = lmp_state(L);
  size_t total;
  int err;
  char *buf = gather(L, f, first, &total);
  if (!buf) return luaL_error(L, "not enough memory");
  lua_settop(L, 1);
  lua_pushinteger(L, off);
  lua_pushinteger(L, positional);
  lua_pushinteger(L, (lua_Integer)total);
  lua_pushinteger(L, 0);
  struct mp_op *op = mp_op_new(S->loop, NULL, NULL);
  if (!op) {
    free(buf);
    return luaL_error(L, "not enough memory");
  }
  op->owned = buf;
  if (total == 0) { /* nothing to do, but still a valid call */
    mp_op_release(op);
    if (positional == 1 && off >= 0) lmp_rbuf_reset(&f->rb);
    lua_settop(L, 1);
    return 1;
  }
  (void)err;
  return write_more(L, op, off);
}

int lfile_write(lua_State *L) {
  struct lfile *f = lfile_check(L);
  size_t n = measure(L, 2);
  /* not opened for writing: fail here, as io does, not at a later flush
   * (writing nothing succeeds, as fwrite of 0 bytes) */
  if (!(f->mode & F_WRITE) && n > 0) return lfile_fail(L, f, MP_EBADF);
  f->size = -1;
  if (!f->stream) {
    if (f->wlen + n <= WBUF_MAX) { /* buffer it: no op, no suspension */
      if (!f->wbuf && !(f->wbuf = mp_loop_malloc(lmp_state(L)->loop, WBUF_MAX)))
        return luaL_error(L, "not enough memory");
      if (f->wlen == 0) {
        f->woff = (f->mode & F_APPEND) ? -1 : lfile_pos(f);
        f->end = f->woff < 0 ? 0 : f->woff; /* read buffer is stale */
        lmp_rbuf_reset(&f->rb);
      }
      copy_args(L, 2, f->wbuf + f->wlen);
      f->wlen += n;
      lua_settop(L, 1);
      return 1;
    }
  }
  int64_t off = -1;
  if (f->wlen) off = f->woff; /* buffered bytes go first, then these */
  else if (!(f->mode & F_APPEND) && !f->stream) off = lfile_pos(f);
  /* the buffered bytes are stale once we write; resume at the position
   * (a pipe's reads and writes are separate directions: keep them) */
  if (!f->stream && !f->wlen) {
    f->end = off < 0 ? lfile_pos(f) : off;
    lmp_rbuf_reset(&f->rb);
  }
  return start_write(L, f, 2, off, 1);
}

/* Runs fn(L), the method called, once the buffered writes are written;
 * fn sees the stack the method saw. A failed flush is the method's
 * failure (nil, msg, code), as a late write error is in io. */
int lfile_after_flush(lua_State *L, struct lfile *f, lua_CFunction fn) {
  if (!f->d || f->wlen == 0) return fn(L);
  struct mp_op *op = mp_op_new(lmp_state(L)->loop, NULL, NULL);
  if (!op) return luaL_error(L, "not enough memory");
  size_t total = f->wlen;
  char *buf = mp_loop_malloc(op->loop, total);
  if (!buf) {
    mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  memcpy(buf, f->wbuf, total);
  op->owned = buf;
  int64_t off = f->woff;
  f->wlen = 0;
  luaL_checkstack(L, 6, "flush");
  lua_pushcfunction(L, fn);
  lua_pushinteger(L, off);
  lua_pushinteger(L, 3);
  lua_pushinteger(L, (lua_Integer)total);
  lua_pushinteger(L, 0);
  return write_more(L, op, off);
}

/* __close and __gc cannot suspend (a to-be-closed variable is also
 * closed while an error unwinds, and a finalizer never can), yet the
 * bytes must be in the file when they return, as io's fclose in __gc
 * guarantees: at most 64 KiB go to the page cache with a plain blocking
 * write, the price stdio pays too. Errors are lost, as in io; close()
 * reports them. */
int lfile_flush_now(struct lfile *f) {
  size_t done = 0;
  int err = 0;
  while (done < f->wlen) {
    ssize_t r = f->woff < 0
        ? write(f->d->fd, f->wbuf + done, f->wlen - done)
        : pwrite(f->d->fd, f->wbuf + done, f->wlen - done,
                 (off_t)(f->woff + (int64_t)done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      err = r < 0 ? -errno : MP_EIO;
      break;
    }
    done += (size_t)r;
  }
  f->wlen = 0;
  return err;
}

/* file:flush(): writes what write() buffered. */
int lfile_flush(lua_State *L) {
  struct lfile *f = lfile_check(L);
  if (f->wlen) return lfile_after_flush(L, f, lfile_flush);
  lua_settop(L, 1);
  return 1;
}

int lfile_pwrite(lua_State *L) {
  struct lfile *f = lfile_check(L);
  if (f->wlen) return lfile_after_flush(L, f, lfile_pwrite);
  f->size = -1;
  luaL_checkstring(L, 2);
  lua_Integer off = luaL_checkinteger(L, 3);
  luaL_argcheck(L, off >= 0, 3, "non-negative offset expected");
  lua_settop(L, 2);
  if (f->stream) return lfile_fail(L, f, MP_ESPIPE);
  if (!(f->mode & F_WRITE) && lua_rawlen(L, 2) > 0)
    return lfile_fail(L, f, MP_EBADF);
  return start_write(L, f, 2, off, 2);
}

