/* lfs.c: mp.fs path operations (stat, lstat, remove, rename, mkdir,
 * rmdir, dir, writefile): one op each, native on io_uring when probed,
 * on the threadpool otherwise; errors name the path. */
#include <stdlib.h>
#include <string.h>

#include "lfs.h"

static const char *const type_names[] = {
  "unknown", "file", "directory", "link", "fifo", "socket", "char", "block",
};

void lmp_push_stat(lua_State *L, const struct mp_stat *st) {
  lua_createtable(L, 0, 12);
  lua_pushstring(L, type_names[st->type <= MP_FT_BLOCK ? st->type : 0]);
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st->size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, st->mode & 07777);
  lua_setfield(L, -2, "mode");
#define TS(field, name)                                                   \
  lua_pushnumber(L, (lua_Number)st->field.sec +                           \
                        (lua_Number)st->field.nsec / 1e9);                \
  lua_setfield(L, -2, name);
  TS(mtime, "mtime")
  TS(atime, "atime")
  TS(ctime, "ctime")
#undef TS
  lua_pushinteger(L, (lua_Integer)st->nlink);
  lua_setfield(L, -2, "nlink");
  lua_pushinteger(L, (lua_Integer)st->uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st->gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)st->ino);
  lua_setfield(L, -2, "ino");
  lua_pushinteger(L, (lua_Integer)st->blocks);
  lua_setfield(L, -2, "blocks");
}

const char *lmp_checkpath(lua_State *L, int i) {
  const char *p = luaL_checkstring(L, i);
  luaL_argcheck(L, strlen(p) == lua_rawlen(L, i), i,
                "path contains a NUL byte");
  return p;
}

/* Path ops: stack 1 is the path named in messages; ctx the op. */
static int path_k(lua_State *L, struct mp_op *op) {
  int64_t r = op->result;
  if (r == MP_EISDIR && op->kind == MP_OP_UNLINK && lua_toboolean(L, 2)) {
    /* remove(): like os.remove, an empty directory goes too */
    int err = mp_op_prep_rmdir(op, lua_tostring(L, 1));
    if (err == 0) return lmp_await(L, op, path_k, "remove");
    r = err;
  }
  if (r >= 0 && op->kind == MP_OP_STAT) {
    struct mp_stat st = *mp_op_stat(op);
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

int lmp_path_await(lua_State *L, struct mp_op *op, int err, lmp_done k,
                   const char *fname) {
  if (err < 0) {
    mp_op_release(op);
    return lmp_fail(L, err, lua_tostring(L, 1));
  }
  return lmp_await(L, op, k, fname);
}

static int path_await(lua_State *L, struct mp_op *op, int err,
                      const char *fname) {
  return lmp_path_await(L, op, err, path_k, fname);
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
  return path_await(L, op, mp_op_prep_stat(op, path, flags), fname);
}

static int fs_stat(lua_State *L) { return stat_common(L, 0, "stat"); }
static int fs_lstat(lua_State *L) {
  return stat_common(L, MP_STAT_NOFOLLOW, "lstat");
}

static int fs_remove(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_settop(L, 1);
  lua_pushboolean(L, 1); /* retry as rmdir on EISDIR */
  struct mp_op *op = new_op(L);
  return path_await(L, op, mp_op_prep_unlink(op, path), "remove");
}

static int fs_rmdir(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_settop(L, 1);
  lua_pushboolean(L, 0);
  struct mp_op *op = new_op(L);
  return path_await(L, op, mp_op_prep_rmdir(op, path), "rmdir");
}

static int fs_mkdir(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_Integer perm = luaL_optinteger(L, 2, 0777);
  luaL_argcheck(L, perm >= 0 && perm <= 07777, 2, "invalid permissions");
  lua_settop(L, 1);
  lua_pushboolean(L, 0);
  struct mp_op *op = new_op(L);
  return path_await(L, op, mp_op_prep_mkdir(op, path, (uint32_t)perm),
                    "mkdir");
}

static int fs_rename(lua_State *L) {
  const char *from = lmp_checkpath(L, 1), *to = lmp_checkpath(L, 2);
  lua_settop(L, 2);
  lua_pushboolean(L, 0);
  lua_insert(L, 2); /* 1 from, 2 false, 3 to */
  struct mp_op *op = new_op(L);
  return path_await(L, op, mp_op_prep_rename(op, from, to), "rename");
}

/* mp.fs.dir: one READDIR op on the pool; the names live in the op. */
static int push_names(lua_State *L) {
  const struct mp_op *op = lua_touserdata(L, 1);
  lua_createtable(L, (int)op->result, 0);
  lua_Integer i = 0;
  for (const char *n = mp_op_readdir_next(op, NULL); n;
       n = mp_op_readdir_next(op, n)) {
    lua_pushstring(L, n);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

static int dir_k(lua_State *L, struct mp_op *op) {
  if (op->result < 0) {
    int err = (int)op->result;
    mp_op_release(op);
    return lmp_fail(L, err, lua_tostring(L, 1));
  }
  /* Pushing may run out of memory: the op is released either way. */
  lua_pushcfunction(L, push_names);
  lua_pushlightuserdata(L, op);
  int st = lua_pcall(L, 1, 1, 0);
  mp_op_release(op);
  return st == LUA_OK ? 1 : lua_error(L);
}

static int fs_dir(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  lua_settop(L, 1);
  struct mp_op *op = new_op(L);
  int err = mp_op_prep_readdir(op, path);
  if (err < 0) {
    mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  return lmp_await(L, op, dir_k, "dir");
}

/* mp.fs.writefile(path, data): an atomic, durable replace, one
 * WRITEFILE op (the runtime's fs_unix.c says how). The data is copied:
 * an orphaned job outlives the string. */
static int writefile_k(lua_State *L, struct mp_op *op) {
  int64_t r = op->result;
  mp_op_release(op);
  if (r < 0) return lmp_fail(L, (int)r, lua_tostring(L, 1));
  lua_pushboolean(L, 1);
  return 1;
}

static int fs_writefile(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  struct mp_op *op = new_op(L);
  if (mp_op_prep_writefile(op, path, data, len) < 0) {
    mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  lua_settop(L, 1);
  return lmp_await(L, op, writefile_k, "writefile");
}

static const luaL_Reg fs_funcs[] = {
  {"stat", fs_stat},     {"lstat", fs_lstat}, {"remove", fs_remove},
  {"rename", fs_rename}, {"mkdir", fs_mkdir}, {"rmdir", fs_rmdir},
  {"dir", fs_dir},       {"writefile", fs_writefile}, {NULL, NULL},
};

void lmp_open_fs(lua_State *L, struct lmp_state *S) {
  luaL_getsubtable(L, -1, "fs");
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, fs_funcs, 1);
  lua_pop(L, 1);
}
