/* lfile.c: mp.fs.open and file objects, with Lua io semantics.
 *
 * A file object keeps its own logical position and does all IO with
 * explicit offsets (pread/pwrite style): the OVERLAPPED model, identical on
 * io_uring and on the epoll backend's threadpool, and it lets buffered
 * reads, seeks and positional IO coexist. Reads go through the shared
 * buffer (lbuf.c): one op per 64 KiB, not per line. Writes to regular
 * files are buffered too (lfwrite.c; every method here flushes first),
 * pipes and devices are written at once. Files opened for append
 * ("a", "a+") write at offset -1 (the kernel's position) so O_APPEND
 * appends even with other writers.
 *
 * The handle lives in a struct lmp_handle (lhandle.c) shared by the
 * object and every op in flight on it: closing the object cancels the
 * ops, and the handle itself is closed only when the last op has
 * completed, so neither the kernel (a batched SQE names the fd) nor a pool
 * thread ever sees a descriptor number that was closed and reused under
 * it. The pending write lives there too: a method that must see it
 * written first flushes through lhandle and runs again (lfwrite.c is the
 * writer; this file only includes its header). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfs.h"
#include "lfwrite.h"

/* Bytes of a regular file read from the page cache without an op before
 * one read goes through the loop (rb_trynow). */
#define LFILE_NOWAIT (1024 * 1024)
/* Opens at once before one goes through the loop (fs_open). */
#define LFILE_OPEN_RUN 16

/* The op's result, or MP_ECLOSED if the file was closed while the op was
 * in flight (the file at index 1). */
static int64_t lfile_result(lua_State *L, struct mp_op *op) {
  return lfile_isopen(lfile_to(L)) ? op->result : MP_ECLOSED;
}

/* What a state does without waiting (upvalue 2 of fs.open and
 * fs.readfile, and in the registry for lfile_adopt). The epoll backend
 * opens and reads on the pool, a thread hand-off each way: a path the
 * kernel resolves from its caches alone is opened at once instead (as
 * io_uring opens inline), at most LFILE_OPEN_RUN in a row: then one goes
 * through the loop, so a task opening many files still lets the others
 * run; cached bytes are read at once too (rb_trynow). fs._nowait(false)
 * turns both off (for tests that need a file's read or open to
 * suspend). */
struct lfile_cfg {
  int run;    /* opens at once since the last through the loop; < 0: never */
  int nowait; /* rb_trynow for files opened from now on */
  int epoll;  /* the backend opens on the pool */
};
static const char lfile_cfg_key = 0;

/* --- reading: the lbuf vtable ------------------------------------------ */

static struct lmp_rbuf *rb_check(lua_State *L) { return &lfile_check(L)->rb; }

/* A small file read with a big count: ask for what the file holds, plus
 * one byte so a short read proves the end (no extra op to see EOF). */
static size_t read_size(const struct lfile *f, size_t want) {
  if (f->size >= 0 && f->end <= f->size &&
      (uint64_t)(f->size - f->end) < want)
    want = (size_t)(f->size - f->end) + 1;
  return want;
}

static struct mp_op *rb_start(lua_State *L, size_t want, int *err) {
  struct lfile *f = lfile_check(L);
  want = read_size(f, want);
  struct mp_op *op = lmp_handle_op(f->h, err);
  if (!op) return NULL;
  void *buf = lmp_rbuf_opbuf(&f->rb, op, want);
  if (!buf) {
    *err = MP_ENOMEM;
    lmp_handle_untrack(op);
    mp_op_release(op);
    return NULL;
  }
  mp_op_prep_read(op, f->h->handle, buf, want, f->stream ? -1 : f->end);
  return op;
}

static int64_t rb_done(lua_State *L, struct mp_op *op) {
  struct lfile *f = lfile_to(L);
  lmp_handle_untrack(op);
  if (!lfile_isopen(f)) return MP_ECLOSED;
  if (op->result < 0) return op->result;
  /* A seek or write while the read was in flight moved the buffer: these
   * bytes belong elsewhere. */
  if (!f->stream && op->u.rw.off != f->end) return LMP_RBUF_RETRY;
  f->end += op->result;
  if (f->nowait >= 0) f->nowait = LFILE_NOWAIT;
  /* A regular file reads short only at its end: take it as EOF for this
   * call (the next call tries again, so a growing file is still seen). */
  if (!f->stream && (size_t)op->result < op->u.rw.len) f->rb.eof = 1;
  else if (f->size >= 0 && f->end > f->size) f->size = -1; /* it grew */
  return op->result;
}

/* On epoll, where a read op is a pool job, what the page cache holds of
 * a regular file is read at once, with no op and no suspension (preadv2
 * RWF_NOWAIT: it never waits for the disk), at most LFILE_NOWAIT bytes in
 * a row: then a read goes through the loop, so a task reading a big
 * cached file still lets the others run. Errors and uncached bytes take
 * the op's way (rb_start), which reports them. io_uring keeps its READs:
 * a syscall per read measured no faster than the ring's batch. */
static int64_t rb_trynow(struct lmp_rbuf *rb, size_t want) {
  struct lfile *f = (struct lfile *)((char *)rb - offsetof(struct lfile, rb));
  if (f->stream || f->nowait <= 0) return MP_EAGAIN;
  want = read_size(f, want);
  char *dst = lmp_rbuf_space(rb, want);
  if (!dst) return MP_EAGAIN;
  int64_t n = mp_os_pread_nowait(f->h->handle, dst, want, f->end);
  if (n < 0) {
    if (n == MP_EOPNOTSUPP) f->nowait = -1; /* /proc, FUSE, ...: never */
    return MP_EAGAIN;
  }
  rb->len += (size_t)n;
  f->end += n;
  f->nowait -= n < 4096 ? 4096 : n; /* a syscall is a cost too */
  /* Short: the end of the file, or where the cached bytes end, which is
   * always a page boundary. Not at a boundary, or at the size fstat gave
   * at open, it is the end (as rb_done: for this call); else the next
   * fill asks again, and gets 0 at the end. */
  if (n > 0 && (size_t)n < want && (f->end % 4096 || f->end == f->size))
    rb->eof = 1;
  else if (f->size >= 0 && f->end > f->size)
    f->size = -1; /* it grew */
  return n;
}

static int rb_fail(lua_State *L, int err) {
  return lfile_fail(L, lfile_to(L), err);
}

static const struct lmp_rbuf_vt file_vt = {
  "read", rb_check, rb_start, rb_done, rb_fail,
};

static int file_read(lua_State *L) {
  struct lfile *f = lfile_check(L);
  if (f->h->wlen)
    return lmp_handle_flush_then(L, f->h, lfile_flushed, file_read);
  return lmp_rbuf_read(L, &file_vt, 0);
}

/* The iterator of file:lines(...): upvalues S, file, formats. */
static int lines_iter(lua_State *L) {
  /* upvalue 2 is a file: file_lines checked it */
  struct lfile *wf = lua_touserdata(L, lua_upvalueindex(2));
  int n = (int)lua_tointeger(L, lua_upvalueindex(3));
  /* a whole line buffered: no format engine, no stack shuffling */
  if (lfile_isopen(wf) && !wf->h->wlen && lmp_rbuf_line(L, &wf->rb))
    return 1;
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(2));
  if (lfile_isopen(wf) && wf->h->wlen) /* the file at 1, as flushes want */
    return lmp_handle_flush_then(L, wf->h, lfile_flushed, lines_iter);
  for (int i = 1; i <= n; i++) lua_pushvalue(L, lua_upvalueindex(3 + i));
  struct lfile *f = lfile_to(L);
  if (!lfile_isopen(f)) return luaL_error(L, "file is already closed");
  return lmp_rbuf_read(L, &file_vt, LMP_RBUF_RAISE);
}

static int file_lines(lua_State *L) {
  lfile_check(L);
  return lmp_rbuf_lines(L, lines_iter);
}

/* --- positional read ------------------------------------------------------ */

static int pread_k(lua_State *L, struct mp_op *op);

/* Stack: file, n, offset, luaL_Buffer-free accumulation in owned memory:
 * we read into op->owned (n bytes) at [got, n). */
static int pread_more(lua_State *L, struct mp_op *op, size_t got) {
  struct lfile *f = lfile_to(L);
  size_t n = (size_t)lua_tointeger(L, 2);
  int64_t off = lua_tointeger(L, 3);
  int err = lmp_handle_retrack(f->h, op);
  if (err < 0) {
    mp_op_release(op);
    return lfile_fail(L, f, err);
  }
  lua_settop(L, 3);
  lua_pushinteger(L, (lua_Integer)got);
  mp_op_prep_read(op, f->h->handle, (char *)op->owned + got, n - got,
                  off + (int64_t)got);
  return lmp_await(L, op, pread_k, "pread");
}

static int push_bytes(lua_State *L) {
  lua_pushlstring(L, lua_touserdata(L, 1), (size_t)lua_tointeger(L, 2));
  return 1;
}

static int pread_k(lua_State *L, struct mp_op *op) {
  int64_t r = lfile_result(L, op);
  size_t got = (size_t)lua_tointeger(L, 4), n = (size_t)lua_tointeger(L, 2);
  if (r < 0) {
    mp_op_release(op);
    return lfile_fail(L, lfile_to(L), (int)r);
  }
  got += (size_t)r;
  if (r > 0 && got < n) return pread_more(L, op, got);
  /* Release the op before pushing, which may run out of memory. */
  char *buf = op->owned;
  op->owned = NULL;
  mp_op_release(op);
  if (got == 0 && n > 0) { /* end of file, as read */
    free(buf);
    lua_pushnil(L);
    return 1;
  }
  lua_pushcfunction(L, push_bytes);
  lua_pushlightuserdata(L, buf);
  lua_pushinteger(L, (lua_Integer)got);
  int st = lua_pcall(L, 2, 1, 0);
  free(buf);
  return st == LUA_OK ? 1 : lua_error(L);
}

static int file_pread(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct lfile *f = lfile_check(L);
  if (f->h->wlen)
    return lmp_handle_flush_then(L, f->h, lfile_flushed, file_pread);
  lua_Integer n = luaL_checkinteger(L, 2);
  lua_Integer off = luaL_checkinteger(L, 3);
  luaL_argcheck(L, n >= 0, 2, "non-negative count expected");
  luaL_argcheck(L, off >= 0, 3, "non-negative offset expected");
  lua_settop(L, 3);
  if (f->stream) return lfile_fail(L, f, MP_ESPIPE);
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  /* pread(huge, off) must not allocate huge: a regular file holds at most
   * size - off bytes there (fstat: the in-memory inode, no disk IO). */
  struct mp_stat st;
  if (n > LMP_RBUF_MAXREAD && mp_os_fstat(f->h->handle, &st) == 0 &&
      st.type == MP_FT_FILE) {
    int64_t left = st.size - off;
    if (left < 0) left = 0;
    if (n > left + 1) n = left + 1;
    lua_pushinteger(L, n);
    lua_replace(L, 2);
  }
  struct mp_op *op = mp_op_new(S->loop, NULL, NULL);
  if (!op || !(op->owned = mp_loop_malloc(S->loop, (size_t)n))) {
    if (op) mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  return pread_more(L, op, 0);
}

/* --- seek, sync, stat, close ---------------------------------------------- */

static int file_seek(lua_State *L) {
  static const char *const names[] = {"set", "cur", "end", NULL};
  struct lfile *f = lfile_check(L);
  if (f->h->wlen)
    return lmp_handle_flush_then(L, f->h, lfile_flushed, file_seek);
  int op = luaL_checkoption(L, 2, "cur", names);
  lua_Integer off = luaL_optinteger(L, 3, 0);
  int64_t base = 0;
  if (f->stream) return lfile_fail(L, f, MP_ESPIPE);
  if (op == 1) {
    base = lfile_pos(f);
    if (off == 0) { /* a query: keep the buffer */
      lua_pushinteger(L, base);
      return 1;
    }
  } else if (op == 2) {
    /* fstat of an open descriptor reads the in-memory inode: no disk IO */
    struct mp_stat st;
    int err = mp_os_fstat(f->h->handle, &st);
    if (err < 0) return lfile_fail(L, f, err);
    base = st.size;
  }
  if ((off > 0 && base > INT64_MAX - off) || base + off < 0)
    return lfile_fail(L, f, MP_EINVAL);
  lmp_rbuf_reset(&f->rb);
  f->end = base + off;
  lua_pushinteger(L, f->end);
  return 1;
}

static int simple_k(lua_State *L, struct mp_op *op) {
  int64_t r = lfile_result(L, op);
  mp_op_release(op);
  if (r < 0) return lfile_fail(L, lfile_to(L), (int)r);
  lua_pushboolean(L, 1);
  return 1;
}

static int file_sync(lua_State *L) {
  struct lfile *f = lfile_check(L);
  if (f->h->wlen)
    return lmp_handle_flush_then(L, f->h, lfile_flushed, file_sync);
  int err;
  struct mp_op *op = lmp_handle_op(f->h, &err);
  if (!op) return lfile_fail(L, f, err);
  mp_op_prep_fsync(op, f->h->handle, 0);
  return lmp_await(L, op, simple_k, "sync");
}

static int fstat_k(lua_State *L, struct mp_op *op) {
  int64_t r = lfile_result(L, op);
  if (r < 0) {
    mp_op_release(op);
    return lfile_fail(L, lfile_to(L), (int)r);
  }
  struct mp_stat st = *mp_op_stat(op);
  mp_op_release(op); /* before pushing, which may run out of memory */
  lmp_push_stat(L, &st);
  return 1;
}

static int file_stat(lua_State *L) {
  struct lfile *f = lfile_check(L);
  if (f->h->wlen)
    return lmp_handle_flush_then(L, f->h, lfile_flushed, file_stat);
  int err;
  struct mp_op *op = lmp_handle_op(f->h, &err);
  if (!op) return lfile_fail(L, f, err);
  if ((err = mp_op_prep_fstat(op, f->h->handle)) < 0) {
    lmp_handle_untrack(op);
    mp_op_release(op);
    return lfile_fail(L, f, err);
  }
  return lmp_await(L, op, fstat_k, "stat");
}

static int close_k(lua_State *L, struct mp_op *op) {
  int64_t r = op->result;
  mp_op_release(op);
  if (r < 0) return lfile_fail(L, lfile_to(L), (int)r);
  lua_pushboolean(L, 1);
  return 1;
}

/* The close op's callback: if the op was discarded before it started (the
 * task was already cancelled), close the handle here, never leak it.
 * result is 1 only before submit (submit zeroes it). */
static void close_op_cb(struct mp_op *op) {
  if (!op->data && op->result == 1) mp_os_close(op->handle);
  lmp_task_op_cb(op);
}

/* close() reports a failed flush, and closes all the same. */
static int close_flushed(lua_State *L, int64_t n, int64_t off) {
  struct lfile *f = lfile_to(L);
  if (n >= 0) return lfile_flushed(L, n, off);
  lmp_rbuf_free(&f->rb);
  lmp_handle_close(f->h);
  return lfile_fail(L, f, (int)n);
}

static int lfile_close(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct lfile *f = lfile_check(L);
  if (f->h->wlen)
    return lmp_handle_flush_then(L, f->h, close_flushed, lfile_close);
  lmp_rbuf_free(&f->rb);
  if (!(f->mode & F_WRITE) && !f->stream) {
    /* Closing a file only read from has nothing to report: no waiting. */
    lmp_handle_close(f->h);
    lua_pushboolean(L, 1);
    return 1;
  }
  mp_handle_t fd = lmp_handle_take(f->h);
  if (fd == MP_INVALID_HANDLE) { /* closed by the last op in flight */
    lua_pushboolean(L, 1);
    return 1;
  }
  struct mp_op *op = mp_op_new(S->loop, close_op_cb, NULL);
  if (!op) {
    mp_os_close(fd);
    lua_pushboolean(L, 1);
    return 1;
  }
  mp_op_prep_close(op, fd);
  op->result = 1;
  /* close must not be lost to a cancellation: the op still closes the
   * fd if the task is interrupted; lmp_await releases it then. */
  return lmp_await(L, op, close_k, "close");
}

/* __close and __gc: write what is buffered (synchronously: neither can
 * suspend), then close without waiting. */
static void close_now(struct lfile *f) {
  if (!lfile_isopen(f)) return;
  if (f->h->wlen) lmp_handle_flush_now(f->h);
  lmp_rbuf_free(&f->rb);
  lmp_handle_close(f->h);
}

static int file_close_meta(lua_State *L) {
  close_now(lfile_to(L));
  return 0;
}

static int file_gc(lua_State *L) {
  struct lfile *f = lfile_to(L);
  close_now(f);
  lmp_handle_unref(f->h); /* ops in flight keep the record */
  f->h = NULL;
  return 0;
}

static int file_tostring(lua_State *L) {
  struct lfile *f = lfile_to(L);
  if (!lfile_isopen(f)) lua_pushliteral(L, "file (closed)");
  else lua_pushfstring(L, "file (%p)", (void *)f);
  return 1;
}

/* --- mp.fs functions --------------------------------------------------- */

/* Mode string as io.open, plus "x" (exclusive create). */
int lfile_parse_mode(const char *m, int *flags, int *fmode) {
  int plus = 0, excl = 0;
  char c = *m++;
  if (c == 'x') { /* "x" alone: exclusive create for writing */
    c = 'w';
    excl = 1;
  }
  if (c != 'r' && c != 'w' && c != 'a') return 0;
  if (*m == '+') {
    plus = 1;
    m++;
  }
  for (; *m; m++) {
    if (*m == 'x' && c == 'w') excl = 1;
    else if (*m != 'b') return 0;
  }
  switch (c) {
    case 'r':
      *flags = plus ? MP_O_RDWR : MP_O_RDONLY;
      *fmode = F_READ | (plus ? F_WRITE : 0);
      break;
    case 'w':
      *flags = (plus ? MP_O_RDWR : MP_O_WRONLY) | MP_O_CREAT | MP_O_TRUNC;
      *fmode = F_WRITE | (plus ? F_READ : 0);
      break;
    default:
      *flags = (plus ? MP_O_RDWR : MP_O_WRONLY) | MP_O_CREAT | MP_O_APPEND;
      *fmode = F_WRITE | F_APPEND | (plus ? F_READ : 0);
      break;
  }
  if (excl) *flags |= MP_O_EXCL;
  return 1;
}

/* An opened descriptor whose task is gone must not leak. result is set
 * negative before submit, so an op discarded before it started is not
 * mistaken for fd 0. */
static void open_cb(struct mp_op *op) {
  if (!op->data && op->result >= 0) mp_os_close((mp_handle_t)op->result);
  lmp_task_op_cb(op);
}

void lfile_adopt(lua_State *L, struct lfile *f, mp_handle_t fd, int fmode,
                 int adopted) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_handle *h = lmp_handle_new(S->loop, fd);
  if (!h) {
    mp_os_close(fd);
    luaL_error(L, "not enough memory");
    return;
  }
  f->h = h;
  f->mode = fmode;
  f->end = 0;
  /* pipes and devices have no offsets: read and write at the kernel's
   * position (fstat of an open handle does no disk IO) */
  struct mp_stat st;
  int ok = mp_os_fstat(h->handle, &st) == 0;
  f->stream = ok && st.type != MP_FT_FILE && st.type != MP_FT_BLOCK &&
              st.type != MP_FT_DIR;
  h->bounded_writes = !f->stream; /* lhandle.c: never interrupted */
  if (adopted && !f->stream) {
    int64_t pos = mp_os_seek(h->handle, 0, MP_SEEK_CUR);
    f->end = pos < 0 ? 0 : pos;
  }
  /* Opened non-blocking (fs_open). io_uring wants blocking pipes (it
   * polls them itself, and would fail non-blocking ones with EAGAIN) and
   * blocking files to write (a filesystem without non-blocking IO answers
   * EAGAIN); the epoll backend wants non-blocking streams, or a write
   * bigger than a pipe's free space would block the loop after its
   * readiness wait. A regular file only read keeps the flag: its reads
   * are positional, which read(2) and the pool do not care about, and an
   * EAGAIN of io_uring's sends the read to io-wq (backend_uring.c); one
   * syscall less per open (issue 16). An adopted handle may be shared
   * with another process: its flags stay as they are. */
  if (!adopted && (f->stream ? strcmp(mp_loop_backend(S->loop), "epoll")
                             : fmode & F_WRITE))
    mp_os_set_nonblock(h->handle, 0);
  f->size = ok && st.type == MP_FT_FILE ? st.size : -1;
  f->nowait = -1;
  f->rb.trynow = rb_trynow;
  if (!f->stream && !strcmp(mp_loop_backend(S->loop), "epoll")) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lfile_cfg_key);
    struct lfile_cfg *c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (c && c->nowait) f->nowait = LFILE_NOWAIT;
  }
}

/* Stack: path, mode, perm, fmode, the file object (created closed). */
static int open_k(lua_State *L, struct mp_op *op) {
  int64_t r = op->result;
  const char *path = lua_tostring(L, 1);
  struct lfile *f = lua_touserdata(L, 5);
  mp_op_release(op);
  if (r < 0) return lmp_fail(L, (int)r, path);
  lfile_adopt(L, f, (mp_handle_t)r, (int)lua_tointeger(L, 4), 0);
  lua_settop(L, 5);
  return 1;
}

struct lfile *lfile_push(lua_State *L, const char *path, size_t len) {
  struct lfile *f = lua_newuserdatauv(L, sizeof *f + len + 1, 0);
  memset(f, 0, sizeof *f);
  lmp_rbuf_init(&f->rb);
  memcpy(f->path, path, len);
  f->path[len] = 0;
  luaL_setmetatable(L, LMP_FILE);
  return f;
}

static int fs_open(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  const char *path = luaL_checkstring(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  lua_Integer perm = luaL_optinteger(L, 3, 0666);
  int flags = 0, fmode = 0, err;
  size_t len = lua_rawlen(L, 1);
  luaL_argcheck(L, lfile_parse_mode(mode, &flags, &fmode), 2, "invalid mode");
  luaL_argcheck(L, perm >= 0 && perm <= 07777, 3, "invalid permissions");
  luaL_argcheck(L, strlen(path) == len, 1, "path contains a NUL byte");
  lua_settop(L, 3);
  lua_pushinteger(L, fmode);
  /* The object first, closed (as liolib's newprefile): if this raises
   * (out of memory) nothing is held yet, and once the open completes
   * nothing can raise before the descriptor has its owner. */
  struct lfile *f = lfile_push(L, path, len);
  struct lfile_cfg *o = lua_touserdata(L, lua_upvalueindex(2));
  if (o->run >= 0 && o->run < LFILE_OPEN_RUN) {
    mp_handle_t fd;
    err = mp_os_open_cached(path, flags | MP_O_NONBLOCK, &fd);
    if (err == 0) {
      o->run++;
      lfile_adopt(L, f, fd, fmode, 0);
      return 1;
    }
    if (err == MP_EOPNOTSUPP) o->run = -1;
  }
  if (o->run > 0) o->run = 0;
  struct mp_op *op = mp_op_new(S->loop, open_cb, NULL);
  if (!op) return luaL_error(L, "not enough memory");
  /* MP_O_NONBLOCK: opening a FIFO or a device never waits for the other end
   * (it would hold a pool thread or an io-wq worker, deaf to cancel): "r"
   * opens at once and its reads wait for data, "w" with no reader fails
   * with ENXIO. Regular files ignore it; open_k clears it. */
  if ((err = mp_op_prep_open(op, path, flags | MP_O_NONBLOCK,
                             (uint32_t)perm)) < 0) {
    mp_op_release(op);
    return lmp_fail(L, err, path);
  }
  op->result = MP_EINVAL;
  return lmp_await(L, op, open_k, "open");
}

/* --- mp.fs.readfile ---------------------------------------------------
 *
 * One READFILE op: the runtime opens, reads to the end and closes (a
 * linked chain on io_uring, one pool job elsewhere), and the bytes become
 * the string. A FIFO or device the op hands back unread (it would hold a
 * pool thread) is read here as fs.open(path):read("a") reads it, then
 * closed, also when the read raises (a cancel). */

/* A discarded op (its task gone) may hold a handle handed back. */
static void readfile_cb(struct mp_op *op) {
  if (!op->data && op->result == MP_EAGAIN &&
      op->handle != MP_INVALID_HANDLE) {
    mp_os_close(op->handle);
    op->handle = MP_INVALID_HANDLE;
  }
  lmp_task_op_cb(op);
}

/* Stack: path, file, then read's results or the error it raised. */
static int readrest_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  close_now(lua_touserdata(L, 2));
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  if (lua_isnil(L, 3)) return 3;
  lua_settop(L, 3);
  return 1;
}

static int push_file(lua_State *L) {
  size_t len;
  const char *path = lua_tolstring(L, 1, &len);
  lfile_push(L, path, len);
  return 1;
}

static int readfile_stream(lua_State *L, mp_handle_t fd) {
  lua_settop(L, 1);
  lua_pushcfunction(L, push_file);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* out of memory */
    mp_os_close(fd);
    return lua_error(L);
  }
  lfile_adopt(L, lua_touserdata(L, 2), fd, F_READ, 0);
  lua_getfield(L, 2, "read");
  lua_pushvalue(L, 2);
  lua_pushliteral(L, "a");
  return readrest_k(L, lua_pcallk(L, 2, 3, 0, 0, readrest_k), 0);
}

static int push_data(lua_State *L) {
  const struct mp_op *op = lua_touserdata(L, 1);
  lua_pushlstring(L, mp_op_readfile_data(op), (size_t)op->result);
  return 1;
}

static int readfile_k(lua_State *L, struct mp_op *op) {
  int64_t r = op->result;
  if (r >= 0) {
    /* pushing may run out of memory: the op is released either way */
    lua_pushcfunction(L, push_data);
    lua_pushlightuserdata(L, op);
    int st = lua_pcall(L, 1, 1, 0);
    mp_op_release(op);
    return st == LUA_OK ? 1 : lua_error(L);
  }
  mp_handle_t fd = r == MP_EAGAIN ? op->handle : MP_INVALID_HANDLE;
  op->handle = MP_INVALID_HANDLE;
  mp_op_release(op);
  if (fd != MP_INVALID_HANDLE) return readfile_stream(L, fd);
  return lmp_fail(L, (int)r, lua_tostring(L, 1));
}

static int fs_readfile(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  const char *path = luaL_checkstring(L, 1);
  luaL_argcheck(L, strlen(path) == lua_rawlen(L, 1), 1,
                "path contains a NUL byte");
  lua_settop(L, 1);
  /* epoll: a path the caches resolve is opened at once and read as
   * fs.open's file (its cached bytes at once too), not on the pool */
  struct lfile_cfg *c = lua_touserdata(L, lua_upvalueindex(2));
  if (c->run >= 0 && c->run < LFILE_OPEN_RUN) {
    mp_handle_t fd;
    int err = mp_os_open_cached(path, MP_O_RDONLY | MP_O_NONBLOCK, &fd);
    if (err == 0) {
      c->run++;
      return readfile_stream(L, fd);
    }
    if (err == MP_EOPNOTSUPP) c->run = -1;
  }
  if (c->run > 0) c->run = 0;
  struct mp_op *op = mp_op_new(S->loop, readfile_cb, NULL);
  if (!op) return luaL_error(L, "not enough memory");
  if (mp_op_prep_readfile(op, path) < 0) {
    mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  return lmp_await(L, op, readfile_k, "readfile");
}

/* fs._nowait(on): for tests (see struct lfile_cfg); files opened
 * afterwards. */
static int fs_nowait(lua_State *L) {
  struct lfile_cfg *c = lua_touserdata(L, lua_upvalueindex(1));
  c->nowait = lua_toboolean(L, 1);
  c->run = c->nowait && c->epoll ? 0 : -1;
  return 0;
}

static const luaL_Reg file_methods[] = {
  {"read", file_read},     {"lines", file_lines}, {"write", lfile_write},
  {"pread", file_pread},   {"pwrite", lfile_pwrite}, {"seek", file_seek},
  {"sync", file_sync},     {"stat", file_stat},   {"close", lfile_close},
  {"flush", lfile_flush},
  {NULL, NULL},
};

static const luaL_Reg file_meta[] = {
  {"__gc", file_gc}, {"__close", file_close_meta},
  {"__tostring", file_tostring},
  {NULL, NULL},
};

const char lfile_mt_key = 0;

void lmp_open_file(lua_State *L, struct lmp_state *S) {
  lmp_new_class(L, S, LMP_FILE, file_meta, file_methods);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lfile_mt_key);
  luaL_getsubtable(L, -1, "fs");
  lua_pushlightuserdata(L, S);
  struct lfile_cfg *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->epoll = !strcmp(mp_loop_backend(S->loop), "epoll");
  c->run = c->epoll ? 0 : -1;
  c->nowait = 1;
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lfile_cfg_key);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, fs_nowait, 1);
  lua_setfield(L, -4, "_nowait");
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, fs_readfile, 2);
  lua_setfield(L, -4, "readfile");
  lua_pushcclosure(L, fs_open, 2);
  lua_setfield(L, -2, "open");
  lua_pop(L, 1);
}
