/* lfsx.c: the rest of mp.fs (chmod, chown, utime, symlink, readlink,
 * realpath, truncate, mkdtemp, tmpfile, fdopen, copy), file:truncate and
 * stream:sendfile. One op each, through the loop (the runtime decides:
 * io_uring's opcode where the kernel has one, the threadpool otherwise);
 * errors name the path, as lfs.c's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfile.h"
#include "lfs.h"
#include "lfsx.h"
#include "lsock.h"

static struct mp_op *new_op(lua_State *L, mp_op_cb cb) {
  struct mp_op *op = mp_op_new(lmp_state(L)->loop, cb, NULL);
  if (!op) luaL_error(L, "not enough memory");
  return op;
}

/* Pushes the op's string result (a pcall: it may run out of memory). */
static int push_result(lua_State *L) {
  lua_pushstring(L, mp_op_path_result(lua_touserdata(L, 1)));
  return 1;
}

/* Path ops: stack 1 is the path named in messages (2 the second path of
 * a copy, named when the failure concerns it). */
static int path_k(lua_State *L, struct mp_op *op) {
  int64_t r = op->result;
  if (r < 0) {
    int second = op->kind == MP_OP_COPYFILE && op->u.fs.flags == 1;
    mp_op_release(op);
    return lmp_fail(L, (int)r, lua_tostring(L, second ? 2 : 1));
  }
  if (op->kind == MP_OP_READLINK || op->kind == MP_OP_REALPATH ||
      op->kind == MP_OP_MKDTEMP) {
    lua_pushcfunction(L, push_result);
    lua_pushlightuserdata(L, op);
    int st = lua_pcall(L, 1, 1, 0);
    mp_op_release(op);
    return st == LUA_OK ? 1 : lua_error(L);
  }
  mp_op_release(op);
  lua_pushboolean(L, 1);
  return 1;
}

static int path_await(lua_State *L, struct mp_op *op, int err,
                      const char *fname) {
  return lmp_path_await(L, op, err, path_k, fname);
}

/* chmod(path, mode): mode an integer (0755) or a string of octal digits
 * ("755"), as Lua has no octal literals. */
static int fs_chmod(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_Integer mode = -1;
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *s = lua_tostring(L, 2);
    size_t n = strspn(s, "01234567");
    if (n > 0 && n <= 5 && s[n] == 0) mode = (lua_Integer)strtol(s, NULL, 8);
  } else {
    mode = luaL_checkinteger(L, 2);
  }
  luaL_argcheck(L, mode >= 0 && mode <= 07777, 2, "invalid mode");
  lua_settop(L, 1);
  struct mp_op *op = new_op(L, NULL);
  return path_await(L, op, mp_op_prep_chmod(op, path, (uint32_t)mode),
                    "chmod");
}

/* An owner id: nil or -1 keeps it. */
static uint32_t check_owner(lua_State *L, int i) {
  if (lua_isnoneornil(L, i)) return MP_OWNER_KEEP;
  lua_Integer id = luaL_checkinteger(L, i);
  if (id == -1) return MP_OWNER_KEEP;
  luaL_argcheck(L, id >= 0 && id < (lua_Integer)MP_OWNER_KEEP, i,
                "invalid id");
  return (uint32_t)id;
}

static int fs_chown(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  uint32_t uid = check_owner(L, 2), gid = check_owner(L, 3);
  lua_settop(L, 1);
  struct mp_op *op = new_op(L, NULL);
  return path_await(L, op, mp_op_prep_chown(op, path, uid, gid), "chown");
}

/* Seconds since the epoch (fractions allowed) as ns; nil: dflt. */
static int64_t check_time(lua_State *L, int i, int64_t dflt) {
  if (lua_isnoneornil(L, i)) return dflt;
  if (lua_isinteger(L, i)) {
    lua_Integer t = lua_tointeger(L, i);
    luaL_argcheck(L, t > -9000000000 && t < 9000000000, i,
                  "time out of range");
    return (int64_t)t * 1000000000;
  }
  lua_Number t = luaL_checknumber(L, i);
  luaL_argcheck(L, t > -9e9 && t < 9e9, i, "time out of range");
  lua_Number sec = floor(t);
  return (int64_t)sec * 1000000000 + (int64_t)floor((t - sec) * 1e9 + 0.5);
}

/* utime(path [, atime [, mtime]]): atime defaults to now, mtime to
 * atime (as LuaFileSystem's touch). */
static int fs_utime(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  int64_t atime = check_time(L, 2, MP_UTIME_NOW);
  int64_t mtime = check_time(L, 3, atime);
  lua_settop(L, 1);
  struct mp_op *op = new_op(L, NULL);
  return path_await(L, op, mp_op_prep_utime(op, path, atime, mtime),
                    "utime");
}

static int fs_symlink(lua_State *L) {
  const char *target = lmp_checkpath(L, 1), *path = lmp_checkpath(L, 2);
  lua_settop(L, 2);
  lua_insert(L, 1); /* the link's path is the one named */
  struct mp_op *op = new_op(L, NULL);
  return path_await(L, op, mp_op_prep_symlink(op, target, path),
                    "symlink");
}

static int fs_readlink(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_settop(L, 1);
  struct mp_op *op = new_op(L, NULL);
  return path_await(L, op, mp_op_prep_readlink(op, path), "readlink");
}

static int fs_realpath(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_settop(L, 1);
  struct mp_op *op = new_op(L, NULL);
  return path_await(L, op, mp_op_prep_realpath(op, path), "realpath");
}

static int fs_truncate(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_Integer size = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, size >= 0, 2, "non-negative size expected");
  lua_settop(L, 1);
  struct mp_op *op = new_op(L, NULL);
  return path_await(L, op, mp_op_prep_truncate(op, path, MP_INVALID_HANDLE,
                                               (int64_t)size),
                    "truncate");
}

static int fs_mkdtemp(lua_State *L) {
  const char *prefix = lua_isnoneornil(L, 1) ? NULL : lmp_checkpath(L, 1);
  lua_settop(L, 1);
  if (!prefix) lua_pushliteral(L, "mkdtemp");
  else lua_pushfstring(L, "%sXXXXXX", prefix);
  lua_insert(L, 1); /* named in messages; the prefix stays at 2 */
  struct mp_op *op = new_op(L, NULL);
  return path_await(L, op, mp_op_prep_mkdtemp(op, prefix), "mkdtemp");
}

static int fs_copy(lua_State *L) {
  const char *from = lmp_checkpath(L, 1), *to = lmp_checkpath(L, 2);
  lua_settop(L, 2);
  struct mp_op *op = new_op(L, NULL);
  return path_await(L, op, mp_op_prep_copyfile(op, from, to), "copy");
}

/* --- files from elsewhere: tmpfile, fdopen ------------------------------- */

/* A handle the task no longer waits for must not leak; result is set
 * negative before submit (submit zeroes it), so an op discarded before
 * it started is not mistaken for handle 0. */
static void tmpfile_cb(struct mp_op *op) {
  if (!op->data && op->result >= 0) mp_os_close((mp_handle_t)op->result);
  lmp_task_op_cb(op);
}

/* Stack: the file object (created closed). */
static int tmpfile_k(lua_State *L, struct mp_op *op) {
  int64_t r = op->result;
  mp_op_release(op);
  if (r < 0) return lmp_fail(L, (int)r, "tmpfile");
  lfile_adopt(L, lua_touserdata(L, 1), (mp_handle_t)r, F_READ | F_WRITE, 0);
  lua_settop(L, 1);
  return 1;
}

/* tmpfile(): as io.tmpfile, a "w+" file that is gone once closed. */
static int fs_tmpfile(lua_State *L) {
  lua_settop(L, 0);
  lfile_push(L, "tmpfile", 7); /* first: nothing raises once it is open */
  struct mp_op *op = new_op(L, tmpfile_cb);
  if (mp_op_prep_tmpfile(op) < 0) {
    mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  op->result = MP_EINVAL;
  return lmp_await(L, op, tmpfile_k, "tmpfile");
}

/* fdopen(fd [, mode]): a file over a descriptor the program has; modes
 * as io.open's (nothing is created or truncated), checked against how
 * the descriptor was opened (EINVAL, as fdopen(3)); "a" modes make its
 * writes append, as glibc's fdopen does. */
static int fs_fdopen(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  int flags, fmode;
  luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 1, "invalid descriptor");
  luaL_argcheck(L, lfile_parse_mode(mode, &flags, &fmode), 2,
                "invalid mode");
  char name[32];
  snprintf(name, sizeof name, "fd %d", (int)fd);
  mp_handle_t h = (mp_handle_t)(intptr_t)fd;
  int how = mp_os_handle_mode(h);
  if (how < 0) return lmp_fail(L, how, name);
  int acc = how & 3;
  if (((fmode & F_READ) && acc == MP_O_WRONLY) ||
      ((fmode & F_WRITE) && acc == MP_O_RDONLY))
    return lmp_fail(L, MP_EINVAL, name);
  lua_settop(L, 0);
  struct lfile *f = lfile_push(L, name, strlen(name));
  int err;
  if ((fmode & F_APPEND) && !(how & MP_O_APPEND) &&
      (err = mp_os_set_append(h)) < 0)
    return lmp_fail(L, err, name);
  lfile_adopt(L, f, h, fmode, 1);
  return 1;
}

/* --- file:truncate --------------------------------------------------------- */

static int file_truncate_k(lua_State *L, struct mp_op *op) {
  struct lfile *f = lfile_to(L);
  int64_t r = lfile_isopen(f) ? op->result : MP_ECLOSED;
  mp_op_release(op);
  if (r < 0) return lfile_fail(L, f, (int)r);
  /* bytes buffered past the new end are gone: read again from here */
  int64_t pos = lfile_pos(f);
  lmp_rbuf_reset(&f->rb);
  f->end = pos;
  f->size = -1;
  lua_pushboolean(L, 1);
  return 1;
}

/* file:truncate([size]): default size the current position (as
 * Python's); the position stays. */
static int file_truncate(lua_State *L) {
  struct lfile *f = lfile_check(L);
  if (f->h->wlen)
    return lmp_handle_flush_then(L, f->h, lfile_flushed, file_truncate);
  lua_Integer size = luaL_optinteger(L, 2, lfile_pos(f));
  luaL_argcheck(L, size >= 0, 2, "non-negative size expected");
  lua_settop(L, 1);
  if (!(f->mode & F_WRITE)) return lfile_fail(L, f, MP_EBADF);
  if (f->stream) return lfile_fail(L, f, MP_EINVAL);
  int err;
  struct mp_op *op = lmp_handle_op(f->h, &err);
  if (!op) return lfile_fail(L, f, err);
  mp_op_prep_truncate(op, NULL, f->h->handle, (int64_t)size);
  return lmp_await(L, op, file_truncate_k, "truncate");
}

/* --- stream:sendfile ------------------------------------------------------
 *
 * One SENDFILE op per round, continued until the length is sent or the
 * file ends. The op is the socket's (its request links it, so closing the
 * stream or its timeout cancels it) and is tracked on the file's handle
 * too, so the file's descriptor stays open while the kernel may read it,
 * and closing the file cancels the send: the handle records are two, the
 * op's ref field one, so the file's tracking swaps it in and out. */
struct sf_req {
  mp_op_cb inner;            /* the socket request's callback */
  struct lmp_handle *file;   /* tracked on, until the op completes */
};

static struct sf_req *sf_of(struct mp_op *op) {
  return (struct sf_req *)lsock_req(op)->data;
}

static void sf_untrack_file(struct mp_op *op) {
  struct sf_req *q = sf_of(op);
  if (!q->file) return;
  void *sock = op->ref;
  op->ref = q->file;
  q->file = NULL;
  lmp_handle_untrack(op);
  op->ref = sock;
}

static void sf_cb(struct mp_op *op) {
  sf_untrack_file(op);
  sf_of(op)->inner(op);
}

/* Stack: stream, file, start offset, length (-1: to the end), whether
 * the file's position moves, bytes sent so far. */
static int sf_k(lua_State *L, struct mp_op *op);

static int sf_round(lua_State *L, struct lsock *s, struct lfile *f,
                    struct mp_op *op) {
  int64_t off = lua_tointeger(L, 3), len = lua_tointeger(L, 4);
  int64_t sent = lua_tointeger(L, 6);
  size_t want = len < 0 ? (size_t)1 << 30 : (size_t)(len - sent);
  struct lsock_req *r = lsock_req(op);
  mp_op_prep_sendfile(op, lsock_fd(s), f->h->handle, off + sent, want);
  if (lsock_req_link(s, r) < 0) {
    mp_op_release(op);
    return lsock_fail(L, s, MP_ENOMEM, "sendfile");
  }
  void *sock = op->ref;
  if (lmp_handle_track(f->h, op) < 0) {
    lsock_req_finish(r);
    mp_op_release(op);
    return lsock_fail(L, s, MP_ENOMEM, "sendfile");
  }
  sf_of(op)->file = f->h;
  op->ref = sock;
  return lmp_await(L, op, sf_k, "sendfile");
}

/* The file's position moves past what was sent when no offset was
 * given. */
static void sf_moved(lua_State *L, struct lfile *f) {
  if (!lua_toboolean(L, 5) || !lfile_isopen(f)) return;
  lmp_rbuf_reset(&f->rb);
  f->end = lua_tointeger(L, 3) + lua_tointeger(L, 6);
}

static int sf_k(lua_State *L, struct mp_op *op) {
  struct lsock *s = lua_touserdata(L, 1);
  struct lfile *f = lua_touserdata(L, 2);
  struct lsock_req *r = lsock_req(op);
  int64_t len = lua_tointeger(L, 4), sent = lua_tointeger(L, 6);
  if (op->result < 0 || r->closed || !lfile_isopen(f)) {
    sf_moved(L, f);
    if (!lfile_isopen(f) && !r->closed && !s->closed) {
      mp_op_release(op); /* the file was closed under the send */
      lmp_fail(L, MP_ECLOSED, "sendfile");
    } else {
      lsock_fail_op(L, s, op, "sendfile");
    }
    lua_pushinteger(L, (lua_Integer)sent);
    return 4;
  }
  sent += op->result;
  lua_pushinteger(L, (lua_Integer)sent);
  lua_replace(L, 6);
  if (op->result > 0 && (len < 0 || sent < len)) return sf_round(L, s, f, op);
  mp_op_release(op);
  sf_moved(L, f);
  lua_pushinteger(L, (lua_Integer)sent);
  return 1;
}

/* A failed flush of the file (at 2) before the send fails the send. */
static int sf_flushed(lua_State *L, int64_t n, int64_t off) {
  struct lfile *f = luaL_checkudata(L, 2, LMP_FILE);
  if (n < 0) return lfile_fail(L, f, (int)n);
  lfile_wrote(f, n, off);
  return 0;
}

/* stream:sendfile(file [, offset [, length]]): bytes sent (fewer than
 * length at the end of the file), or nil, msg, code, bytes sent. */
static int stream_sendfile(lua_State *L) {
  struct lsock *s = lsock_check(L, 1, LSOCK_STREAM, "sendfile");
  struct lfile *f = luaL_checkudata(L, 2, LMP_FILE);
  if (!lfile_isopen(f)) return luaL_error(L, "attempt to use a closed file");
  if (s->writing)
    return luaL_error(L, "sendfile: another task is writing to this stream");
  if (s->tls) /* the kernel would send plaintext */
    return lsock_fail(L, s, MP_EOPNOTSUPP, "sendfile");
  if (f->h->wlen)
    return lmp_handle_flush_then(L, f->h, sf_flushed, stream_sendfile);
  int at_pos = lua_isnoneornil(L, 3);
  lua_Integer off = at_pos ? lfile_pos(f) : luaL_checkinteger(L, 3);
  lua_Integer len = luaL_optinteger(L, 4, -1);
  luaL_argcheck(L, off >= 0, 3, "non-negative offset expected");
  luaL_argcheck(L, len >= -1 && (len != -1 || lua_isnoneornil(L, 4)), 4,
                "non-negative length expected");
  lua_settop(L, 2);
  if (!(f->mode & F_READ)) return lfile_fail(L, f, MP_EBADF);
  if (f->stream) return lfile_fail(L, f, MP_ESPIPE);
  lua_pushinteger(L, off);
  lua_pushinteger(L, len);
  lua_pushboolean(L, at_pos);
  lua_pushinteger(L, 0);
  if (len == 0) return 1;
  struct mp_op *op = lsock_op(L, s, sizeof(struct sf_req),
                              lsock_deadline(s));
  struct sf_req *q = sf_of(op);
  q->inner = op->cb;
  q->file = NULL;
  op->cb = sf_cb;
  lsock_req(op)->dir = LSOCK_WR;
  return sf_round(L, s, f, op);
}

/* --- registration --------------------------------------------------------- */

/* Adds fn as method name of the class mt (made already). */
static void add_method(lua_State *L, struct lmp_state *S, const char *mt,
                       const char *name, lua_CFunction fn) {
  luaL_getmetatable(L, mt);
  lua_getfield(L, -1, "__index");
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, fn, 1);
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}

void lmp_open_fsx(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg funcs[] = {
    {"chmod", fs_chmod},       {"chown", fs_chown},
    {"utime", fs_utime},       {"symlink", fs_symlink},
    {"readlink", fs_readlink}, {"realpath", fs_realpath},
    {"truncate", fs_truncate}, {"mkdtemp", fs_mkdtemp},
    {"tmpfile", fs_tmpfile},   {"fdopen", fs_fdopen},
    {"copy", fs_copy},         {NULL, NULL},
  };
  add_method(L, S, LMP_FILE, "truncate", file_truncate);
  add_method(L, S, LSOCK_STREAM_MT, "sendfile", stream_sendfile);
  luaL_getsubtable(L, -1, "fs");
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}
