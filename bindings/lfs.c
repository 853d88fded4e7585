/* lfs.c: mp.fs path operations (stat, lstat, remove, rename, mkdir,
 * rmdir, dir): one op each, native on io_uring when probed, on the
 * threadpool otherwise; errors name the path. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmoonport.h"

static const char *type_name(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "link";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
  }
}

void lmp_push_stat(lua_State *L, const struct statx *st) {
  lua_createtable(L, 0, 12);
  lua_pushstring(L, type_name(st->stx_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st->stx_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, st->stx_mode & 07777);
  lua_setfield(L, -2, "mode");
#define TS(field, name)                                                   \
  lua_pushnumber(L, (lua_Number)st->field.tv_sec +                        \
                        (lua_Number)st->field.tv_nsec / 1e9);             \
  lua_setfield(L, -2, name);
  TS(stx_mtime, "mtime")
  TS(stx_atime, "atime")
  TS(stx_ctime, "ctime")
#undef TS
  lua_pushinteger(L, (lua_Integer)st->stx_nlink);
  lua_setfield(L, -2, "nlink");
  lua_pushinteger(L, (lua_Integer)st->stx_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st->stx_gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)st->stx_ino);
  lua_setfield(L, -2, "ino");
  lua_pushinteger(L, (lua_Integer)st->stx_blocks);
  lua_setfield(L, -2, "blocks");
}

const char *lmp_checkpath(lua_State *L, int i) {
  const char *p = luaL_checkstring(L, i);
  luaL_argcheck(L, strlen(p) == lua_rawlen(L, i), i,
                "path contains a NUL byte");
  return p;
}

/* Path ops: stack 1 is the path named in messages; ctx the op. */
static int path_k(lua_State *L, int status, lua_KContext ctx) {
  struct mp_op *op = lmp_op_take(L, ctx);
  int64_t r = op->result;
  (void)status;
  if (r < 0 && op->kind == MP_OP_UNLINKAT && r == MP_EISDIR &&
      !(op->u.fs.flags & AT_REMOVEDIR) && lua_toboolean(L, 2)) {
    /* remove(): like os.remove, an empty directory goes too */
    int err = mp_op_prep_unlinkat(op, AT_FDCWD, lua_tostring(L, 1),
                                  AT_REMOVEDIR);
    if (err == 0) return lmp_await(L, op, path_k, "remove");
    r = err;
  }
  if (r >= 0 && op->kind == MP_OP_STATX) {
    struct statx st = *(struct statx *)mp_op_statx_buf(op);
    mp_op_release(op); /* before pushing, which may run out of memory */
    lmp_push_stat(L, &st);
    return 1;
  }
  mp_op_release(op);
  if (r < 0) {
    if (lua_type(L, 3) == LUA_TSTRING) /* rename: both names */
      lua_pushfstring(L, "%s -> %s", lua_tostring(L, 1), lua_tostring(L, 3));
    else
      lua_pushvalue(L, 1);
    return lmp_fail(L, (int)r, lua_tostring(L, -1));
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int path_await(lua_State *L, struct mp_op *op, int err,
                      const char *fname) {
  if (err < 0) {
    mp_op_release(op);
    return lmp_fail(L, err, lua_tostring(L, 1));
  }
  return lmp_await(L, op, path_k, fname);
}

static struct mp_op *new_op(lua_State *L) {
  struct mp_op *op = mp_op_new(lmp_state(L)->loop, NULL, NULL);
  if (!op) luaL_error(L, "not enough memory");
  return op;
}

static int stat_common(lua_State *L, int flags, const char *fname) {
  const char *path = lmp_checkpath(L, 1);
  lua_settop(L, 1);
  lua_pushboolean(L, 0);
  struct mp_op *op = new_op(L);
  return path_await(L, op, mp_op_prep_statx(op, AT_FDCWD, path, flags),
                    fname);
}

static int fs_stat(lua_State *L) { return stat_common(L, 0, "stat"); }
static int fs_lstat(lua_State *L) {
  return stat_common(L, AT_SYMLINK_NOFOLLOW, "lstat");
}

static int fs_remove(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_settop(L, 1);
  lua_pushboolean(L, 1); /* retry as rmdir on EISDIR */
  struct mp_op *op = new_op(L);
  return path_await(L, op, mp_op_prep_unlinkat(op, AT_FDCWD, path, 0),
                    "remove");
}

static int fs_rmdir(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_settop(L, 1);
  lua_pushboolean(L, 0);
  struct mp_op *op = new_op(L);
  return path_await(L, op,
                    mp_op_prep_unlinkat(op, AT_FDCWD, path, AT_REMOVEDIR),
                    "rmdir");
}

static int fs_mkdir(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_Integer perm = luaL_optinteger(L, 2, 0777);
  luaL_argcheck(L, perm >= 0 && perm <= 07777, 2, "invalid permissions");
  lua_settop(L, 1);
  lua_pushboolean(L, 0);
  struct mp_op *op = new_op(L);
  return path_await(L, op,
                    mp_op_prep_mkdirat(op, AT_FDCWD, path, (uint32_t)perm),
                    "mkdir");
}

static int fs_rename(lua_State *L) {
  const char *from = lmp_checkpath(L, 1), *to = lmp_checkpath(L, 2);
  lua_settop(L, 2);
  lua_pushboolean(L, 0);
  lua_insert(L, 2); /* 1 from, 2 false, 3 to */
  struct mp_op *op = new_op(L);
  return path_await(L, op,
                    mp_op_prep_renameat(op, AT_FDCWD, from, AT_FDCWD, to),
                    "rename");
}

/* mp.fs.dir: opendir/readdir on the pool. The names come back as one
 * buffer of NUL-terminated strings, owned by the job. */
struct dirjob {
  char *names;
  size_t len, cap;
  char path[];
};

static void dir_work(struct mp_op *op) {
  struct dirjob *j = op->u.work.arg;
  DIR *dir = opendir(j->path);
  struct dirent *e;
  if (!dir) {
    op->result = -errno;
    return;
  }
  op->result = 0;
  while ((errno = 0, e = readdir(dir))) {
    size_t n = strlen(e->d_name) + 1;
    if (e->d_name[0] == '.' &&
        (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
      continue;
    if (j->len + n > j->cap) {
      size_t cap = j->cap ? j->cap * 2 : 4096;
      while (cap < j->len + n) cap *= 2;
      char *p = realloc(j->names, cap);
      if (!p) {
        op->result = MP_ENOMEM;
        break;
      }
      j->names = p;
      j->cap = cap;
    }
    memcpy(j->names + j->len, e->d_name, n);
    j->len += n;
  }
  if (!e && errno && op->result == 0) op->result = -errno;
  closedir(dir);
}

/* On completion the names become what the op owns (the count of bytes
 * its result), so releasing the op frees them whatever happens next: an
 * orphaned op, a task that dies before its continuation, a memory error. */
static void dir_cb(struct mp_op *op) {
  struct dirjob *j = op->owned;
  op->owned = j->names;
  if (op->result >= 0) op->result = (int64_t)j->len;
  free(j);
  lmp_task_op_cb(op);
}

static int push_names(lua_State *L) {
  const char *names = lua_touserdata(L, 1);
  size_t len = (size_t)lua_tointeger(L, 2);
  lua_newtable(L);
  lua_Integer i = 0;
  for (size_t k = 0; k < len; k += strlen(names + k) + 1) {
    lua_pushstring(L, names + k);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

static int dir_k(lua_State *L, int status, lua_KContext ctx) {
  struct mp_op *op = lmp_op_take(L, ctx);
  int64_t r = op->result;
  (void)status;
  if (r < 0) {
    mp_op_release(op);
    return lmp_fail(L, (int)r, lua_tostring(L, 1));
  }
  /* The op is released before pushing, which may run out of memory. */
  char *names = op->owned;
  op->owned = NULL;
  mp_op_release(op);
  lua_pushcfunction(L, push_names);
  lua_pushlightuserdata(L, names);
  lua_pushinteger(L, (lua_Integer)r);
  int st = lua_pcall(L, 2, 1, 0);
  free(names);
  return st == LUA_OK ? 1 : lua_error(L);
}

static int fs_dir(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  size_t len = strlen(path);
  lua_settop(L, 1);
  struct mp_op *op = mp_op_new(lmp_state(L)->loop, dir_cb, NULL);
  if (!op) return luaL_error(L, "not enough memory");
  struct dirjob *j = mp_loop_calloc(op->loop, 1, sizeof *j + len + 1);
  if (!j) {
    mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  memcpy(j->path, path, len + 1);
  op->owned = j;
  mp_op_prep_work(op, dir_work, j);
  return lmp_await(L, op, dir_k, "dir");
}

static const luaL_Reg fs_funcs[] = {
  {"stat", fs_stat},     {"lstat", fs_lstat}, {"remove", fs_remove},
  {"rename", fs_rename}, {"mkdir", fs_mkdir}, {"rmdir", fs_rmdir},
  {"dir", fs_dir},       {NULL, NULL},
};

void lmp_open_fs(lua_State *L, struct lmp_state *S) {
  luaL_getsubtable(L, -1, "fs");
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, fs_funcs, 1);
  lua_pop(L, 1);
}
