/* lfwrite.c: writing files (mp.fs): write, pwrite, flush.
 *
 * Writes to a regular file collect in the handle's pending write (up to
 * 64 KiB, as stdio's), so a loop of small writes costs no op and no
 * suspension; a write that would overflow it goes out together with it in
 * one op, continued while the kernel writes short (lhandle.c). Every
 * other method flushes first through lmp_handle_flush_then. Pipes and
 * devices are written at once. */
#include <stdio.h>
#include <string.h>

#include "lfwrite.h"

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

/* file:write and file:flush done: the position moves past the bytes. */
static int write_done(lua_State *L, int64_t n, int64_t off) {
  struct lfile *f = lfile_to(L);
  if (n < 0) return lfile_fail(L, f, (int)n);
  lfile_wrote(f, n, off);
  lua_settop(L, 1);
  return 1;
}

/* file:pwrite done: the position stays. */
static int pwrite_done(lua_State *L, int64_t n, int64_t off) {
  (void)off;
  if (n < 0) return lfile_fail(L, lfile_to(L), (int)n);
  lua_settop(L, 1);
  return 1;
}

/* Writes the pending bytes followed by arguments [first, top] at off, in
 * one block the write owns; the pending write is emptied. */
static int start_write(lua_State *L, struct lfile *f, int first,
                       int64_t off, lmp_wrote k) {
  struct lmp_handle *h = f->h;
  size_t n = measure(L, first);
  char *buf = lmp_handle_wbuf(h, h->wlen + n);
  if (!buf) return luaL_error(L, "not enough memory");
  if (h->wlen) memcpy(buf, h->wbuf, h->wlen);
  copy_args(L, first, buf + h->wlen);
  n += h->wlen;
  h->wlen = 0;
  lua_settop(L, 1);
  return lmp_handle_write(L, h, buf, n, off, k, "write");
}

int lfile_write(lua_State *L) {
  struct lfile *f = lfile_check(L);
  struct lmp_handle *h = f->h;
  size_t n = measure(L, 2);
  /* not opened for writing: fail here, as io does, not at a later flush
   * (writing nothing succeeds, as fwrite of 0 bytes) */
  if (!(f->mode & F_WRITE) && n > 0) return lfile_fail(L, f, MP_EBADF);
  if (n == 0) { /* touches nothing: not even the position (append) */
    lua_settop(L, 1);
    return 1;
  }
  f->size = -1;
  if (!f->stream && h->wlen + n <= LMP_WBUF_MAX) {
    /* buffer it: no op, no suspension */
    int64_t off = h->wlen ? h->woff
                : (f->mode & F_APPEND) ? -1 : lfile_pos(f);
    char *p = lmp_handle_wspace(h, n, off);
    if (!p) return luaL_error(L, "not enough memory");
    if (h->wlen == n) { /* the first bytes: the read buffer is stale */
      f->end = off < 0 ? 0 : off;
      lmp_rbuf_reset(&f->rb);
    }
    copy_args(L, 2, p);
    lua_settop(L, 1);
    return 1;
  }
  int64_t off = -1;
  if (h->wlen) off = h->woff; /* pending bytes go first, then these */
  else if (!(f->mode & F_APPEND) && !f->stream) off = lfile_pos(f);
  /* the buffered bytes are stale once we write; resume at the position
   * (a pipe's reads and writes are separate directions: keep them) */
  if (!f->stream && !h->wlen) {
    f->end = off < 0 ? lfile_pos(f) : off;
    lmp_rbuf_reset(&f->rb);
  }
  return start_write(L, f, 2, off, write_done);
}

/* file:flush(): writes what write() buffered. */
int lfile_flush(lua_State *L) {
  struct lfile *f = lfile_check(L);
  lua_settop(L, 1);
  if (f->h->wlen) return lmp_handle_flush(L, f->h, write_done);
  return 1;
}

int lfile_pwrite(lua_State *L) {
  struct lfile *f = lfile_check(L);
  if (f->h->wlen)
    return lmp_handle_flush_then(L, f->h, lfile_flushed, lfile_pwrite);
  f->size = -1;
  luaL_checkstring(L, 2);
  lua_Integer off = luaL_checkinteger(L, 3);
  luaL_argcheck(L, off >= 0, 3, "non-negative offset expected");
  lua_settop(L, 2);
  if (f->stream) return lfile_fail(L, f, MP_ESPIPE);
  if (!(f->mode & F_WRITE) && lua_rawlen(L, 2) > 0)
    return lfile_fail(L, f, MP_EBADF);
  return start_write(L, f, 2, off, pwrite_done);
}
