/* lfwrite.c: writing files (mp.fs): write, pwrite, flush.
 *
 * Writes to a regular file collect in the handle's pending write (up to
 * 64 KiB, as stdio's), so a loop of small writes costs no op and no
 * suspension; a write that would overflow it goes out together with it in
 * one op, continued while the kernel writes short (lhandle.c). Every
 * other method flushes first through lmp_handle_flush_then. Pipes and
 * devices are written at once, but for mp.stdout.
 *
 * mp.stdout puts what fits into C stdio's buffer of stdout when that is
 * fully buffered (not a terminal): print and io.write write there too,
 * so one buffer keeps all of them in order, and exit() (os.exit, an
 * error, the end) flushes it, as for io.write. A line filter then costs
 * a write(2) per buffer, as with io, not an op per line. The buffer is
 * written out without ever blocking the loop: when a write does not fit,
 * when the loop is about to wait (lmp_step's before_wait hook: a reader
 * on the other end may be waiting for these bytes), and by flush; only
 * once stdout is writable (it then takes the buffer's PIPE_BUF bytes at
 * once), waiting for that through the loop. print still flushes it
 * synchronously, as it always does. What does not go there (a bigger
 * write, mp.stderr, a terminal) is first written straight from the
 * strings as far as the stream takes it at once (mp_os_trywrite). But a
 * write to a pipe or device while another is in flight or waiting waits
 * its turn (lhandle.c) and then goes out in an op: output keeps the order
 * it was written in. C's buffer is checked and filled under stdout's
 * lock: other threads print into it too. */
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

/* Copies the measured arguments [first, top] to dst, but for their
 * first skip bytes. */
static void copy_args(lua_State *L, int first, char *dst, size_t skip) {
  int top = lua_gettop(L);
  size_t n = 0;
  for (int i = first; i <= top; i++) {
    size_t l;
    const char *s = lua_tolstring(L, i, &l);
    size_t k = skip < l ? skip : l;
    skip -= k;
    memcpy(dst + n, s + k, l - k);
    n += l - k;
  }
}

/* Writes what the standard stream takes now, straight from the argument
 * strings [first, top] (no copy, no op): the count written, MP_EAGAIN,
 * or an MP_E* code. */
static int64_t try_write(lua_State *L, struct lfile *f, int first) {
  struct mp_iov iov[16];
  int n = 0, top = lua_gettop(L);
  for (int i = first; i <= top && n < 16; i++) {
    size_t l;
    iov[n].base = lua_tolstring(L, i, &l);
    iov[n].len = l;
    if (l) n++;
  }
  return mp_os_trywrite(f->h->handle, iov, n);
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

/* Writes the pending bytes followed by arguments [first, top] (but for
 * their first skip bytes, already written) at off, in one block the
 * write owns; the pending write is emptied. */
static int start_write(lua_State *L, struct lfile *f, int first,
                       int64_t off, lmp_wrote k, size_t skip) {
  struct lmp_handle *h = f->h;
  size_t n = measure(L, first) - skip;
  char *buf = lmp_handle_wbuf(h, h->wlen + n);
  if (!buf) {
    lmp_handle_turn_drop(h);
    return luaL_error(L, "not enough memory");
  }
  if (h->wlen) memcpy(buf, h->wbuf, h->wlen);
  copy_args(L, first, buf + h->wlen, skip);
  n += h->wlen;
  h->wlen = 0;
  lua_settop(L, 1);
  return lmp_handle_write(L, h, buf, n, off, k, "write");
}

/* ---- mp.stdout through C stdio's buffer ---- */

static void drain_bg(struct lmp_state *S);

static void drain_done(struct lmp_state *S, int r) {
  if (r == 0) return;
  if (r < 0) S->drain_err = r;
  S->before_wait = NULL;
}

/* The background drain's wait for writable ended (or was cancelled: the
 * state is closing). */
static void drain_cb(struct mp_op *op) {
  struct lmp_state *S = op->ref;
  int64_t r = op->result;
  S->drain_op = NULL;
  mp_op_release(op);
  if (r >= 0 && S->before_wait) drain_bg(S);
}

/* before_wait: writes the buffer out now if stdout is writable, else
 * once it is (an op not tied to any task). */
static void drain_bg(struct lmp_state *S) {
  if (S->drain_op) return;
  mp_handle_t h = mp_os_stdhandle(1);
  int r = mp_os_stdout_drain(h);
  if (r != 0) return drain_done(S, r);
  struct mp_op *op = mp_op_new(S->loop, drain_cb, NULL);
  if (!op) return; /* tried again before the next wait */
  mp_op_prep_poll_out(op, h);
  op->ref = S;
  if (mp_op_submit(op) < 0) {
    mp_op_release(op);
    return drain_done(S, MP_EIO);
  }
  S->drain_op = op;
}

/* A failure of the background drain, reported once. */
static int drain_failed(struct lmp_state *S) {
  int err = S->drain_err;
  S->drain_err = 0;
  return err;
}

/* After the wait for writable: 0, or the failure pushed. */
static int writable(lua_State *L, struct mp_op *op) {
  int64_t r = lfile_isopen(lfile_to(L)) ? op->result : MP_ECLOSED;
  mp_op_release(op);
  return r < 0 ? lfile_fail(L, lfile_to(L), (int)r) : 0;
}

/* Then the method again, with its arguments. */
static int write_again(lua_State *L, struct mp_op *op) {
  int nret = writable(L, op);
  return nret ? nret : lfile_write(L);
}

static int flush_again(lua_State *L, struct mp_op *op) {
  int nret = writable(L, op);
  return nret ? nret : lfile_flush(L);
}

/* Waits until mp.stdout is writable, then k. */
static int wait_writable(lua_State *L, struct lfile *f, lmp_done k) {
  int err;
  struct mp_op *op = lmp_handle_op(f->h, &err);
  if (!op) return lfile_fail(L, f, err);
  mp_op_prep_poll_out(op, f->h->handle);
  return lmp_await(L, op, k, "write");
}

/* mp.stdout:write of the n bytes of arguments [2, top] through C's
 * buffer: the results, or -1 when C's stdout is not fully buffered or
 * they do not fit even in an empty buffer (write them at once). */
/* Under stdout's lock: 1 written, 0 wait for writable, 2 not through the
 * buffer, or an MP_E* code; nothing here raises or yields. */
static int std_put(lua_State *L, struct lfile *f, size_t n) {
  size_t pending, size;
  if (mp_os_stdout_buffer(&pending, &size) < 0) return 2;
  if (n > size - pending) { /* write the buffer out first */
    if (pending) {
      int r = mp_os_stdout_drain(f->h->handle);
      if (r != 1) return r < 0 ? r : 0;
    }
    if (n > size) return 2;
  }
  int top = lua_gettop(L);
  for (int i = 2; i <= top; i++) {
    size_t l;
    const char *p = lua_tolstring(L, i, &l); /* strings already */
    if (fwrite(p, 1, l, stdout) != l) return MP_EIO;
  }
  return 1;
}

static int std_write(lua_State *L, struct lfile *f, size_t n) {
  struct lmp_state *S = lmp_state(L);
  int err = drain_failed(S);
  if (err < 0) return lfile_fail(L, f, err);
  mp_os_stdout_lock();
  int r = std_put(L, f, n);
  mp_os_stdout_unlock();
  if (r == 2) return -1;
  if (r < 0) return lfile_fail(L, f, r);
  if (r == 0) return wait_writable(L, f, write_again);
  S->before_wait = drain_bg;
  lua_settop(L, 1);
  return 1;
}

/* mp.stdout:flush(): C's buffer written out (waiting for writable). */
static int std_flush(lua_State *L, struct lfile *f) {
  struct lmp_state *S = lmp_state(L);
  int r = drain_failed(S);
  if (r == 0) r = mp_os_stdout_drain(f->h->handle);
  if (r < 0) return lfile_fail(L, f, r);
  if (r == 0) return wait_writable(L, f, flush_again);
  lua_settop(L, 1);
  return 1;
}

/* A write to a pipe or device whose turn came (the writes made before
 * it are out): straight to an op, as nothing can go ahead of it now. */
static int write_turn(lua_State *L, struct mp_op *op) {
  struct lfile *f = lfile_to(L);
  int err = lmp_handle_turn(f->h, op);
  if (err < 0) return lfile_fail(L, f, err);
  if (f->std) fflush(f->std == 1 ? stdout : stderr); /* print, io.write */
  return start_write(L, f, 2, -1, write_done, 0);
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
  /* A pipe or device with a write in flight or waiting: behind it, not
   * into C's buffer nor tried at once (output keeps its order). */
  if (f->stream && lmp_handle_wbusy(h))
    return lmp_handle_wait_turn(L, h, write_turn);
  if (f->std == 1) {
    int r = std_write(L, f, n);
    if (r >= 0) return r;
  }
  if (f->std) fflush(f->std == 1 ? stdout : stderr); /* print, io.write */
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
    copy_args(L, 2, p, 0);
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
  size_t done = 0;
  if (f->std) { /* what the stream takes now needs no op */
    int64_t r = try_write(L, f, 2);
    if (r < 0 && r != MP_EAGAIN) return lfile_fail(L, f, (int)r);
    if (r == (int64_t)n) {
      lua_settop(L, 1);
      return 1;
    }
    if (r > 0) done = (size_t)r;
  }
  return start_write(L, f, 2, off, write_done, done);
}

/* file:flush(): writes what write() buffered. */
int lfile_flush(lua_State *L) {
  struct lfile *f = lfile_check(L);
  lua_settop(L, 1);
  if (f->h->wlen) return lmp_handle_flush(L, f->h, write_done);
  if (f->std == 1) return std_flush(L, f);
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
  return start_write(L, f, 2, off, pwrite_done, 0);
}
