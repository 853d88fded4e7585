/* lfs.c: mp.fs path operations (stat, lstat, remove, rename, mkdir,
 * rmdir, dir): one op each, native on io_uring when probed, on the
 * threadpool otherwise; errors name the path. writefile, an atomic
 * replace, is one threadpool job. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lfs.h"

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
static int path_k(lua_State *L, struct mp_op *op) {
  int64_t r = op->result;
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

static void dir_cb(struct mp_op *op) {
  if (!op->data) free(((struct dirjob *)op->owned)->names); /* orphaned */
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

static int dir_k(lua_State *L, struct mp_op *op) {
  struct dirjob *j = op->owned;
  int64_t r = op->result;
  char *names = j->names;
  size_t len = j->len;
  /* The op is released before pushing, which may run out of memory. */
  mp_op_release(op);
  if (r < 0) {
    free(names);
    return lmp_fail(L, (int)r, lua_tostring(L, 1));
  }
  lua_pushcfunction(L, push_names);
  lua_pushlightuserdata(L, names);
  lua_pushinteger(L, (lua_Integer)len);
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

/* --- writefile ----------------------------------------------------------
 *
 * fs.writefile(path, data) replaces path atomically and durably, as one
 * job on the pool: a queued job cancelled by its task's cancel or timeout
 * has done nothing, and a running one always finishes, removing its
 * temporary on any failure, whatever became of the task. Steps:
 *   1. follow symlinks at the end of path (the link stays, its target is
 *      replaced, as io.open(path, "w") writes through it);
 *   2. refuse a directory (EISDIR), a non-regular file (EINVAL) and an
 *      existing file the caller may not write (access(W_OK): EACCES);
 *   3. remove stale temporaries of that target, left by killed writers;
 *   4. create TARGET.mp-tmp-PID-RANDOM (O_EXCL, 64 random bits from
 *      getrandom; another name on collision) and hold flock(LOCK_EX) on it
 *      until it is renamed: a temporary nobody holds is stale;
 *   5. write, give it the replaced file's owner (when permitted) and mode,
 *      fsync, rename over the target, fsync the directory. */
#define WF_TAG ".mp-tmp-"
enum { WF_MAXLINKS = 40, WF_TRIES = 16 };

struct wfjob {
  size_t len;
  char *data; /* in this block, after path */
  char path[];
};

/* path with the symlinks at its end followed (malloc'd), or NULL with
 * errno set. A path that does not exist is returned as is: it is the
 * file to create. */
static char *wf_resolve(const char *path) {
  char *p = strdup(path), link[4096];
  for (int i = 0; p; i++) {
    struct stat st;
    if (lstat(p, &st) < 0 || !S_ISLNK(st.st_mode)) return p;
    ssize_t n = i < WF_MAXLINKS ? readlink(p, link, sizeof link) : -1;
    if (i == WF_MAXLINKS) errno = ELOOP;
    else if (n == (ssize_t)sizeof link) errno = ENAMETOOLONG;
    if (n < 0 || n == (ssize_t)sizeof link) {
      free(p);
      return NULL;
    }
    link[n] = 0;
    const char *slash = strrchr(p, '/');
    size_t dlen = link[0] == '/' || !slash ? 0 : (size_t)(slash - p) + 1;
    char *q = malloc(dlen + (size_t)n + 1);
    if (q) {
      memcpy(q, p, dlen);
      memcpy(q + dlen, link, (size_t)n + 1);
    }
    free(p);
    p = q;
  }
  errno = ENOMEM;
  return NULL;
}

/* Is name BASE.mp-tmp-PID-HEX16, a temporary of target base, written by
 * another process? (This process's own are live: where flock is emulated
 * per process, as on NFS, their lock would not show.) */
static int wf_is_stale_temp(const char *name, const char *base,
                            size_t blen) {
  size_t tlen = sizeof WF_TAG - 1;
  if (strncmp(name, base, blen) || strncmp(name + blen, WF_TAG, tlen))
    return 0;
  const char *s = name + blen + tlen;
  size_t digits = strspn(s, "0123456789");
  if (!digits || s[digits] != '-' || strtol(s, NULL, 10) == (long)getpid())
    return 0;
  s += digits + 1;
  return strspn(s, "0123456789abcdef") == 16 && s[16] == 0;
}

/* The directory of target (malloc'd), or NULL. */
static char *wf_dir(const char *target) {
  const char *slash = strrchr(target, '/');
  return slash ? strndup(target, (size_t)(slash - target) + 1) : strdup(".");
}

/* Removes the temporaries of target that no live writer holds. */
static void wf_clean(const char *target) {
  const char *slash = strrchr(target, '/');
  const char *base = slash ? slash + 1 : target;
  char *dir = wf_dir(target);
  DIR *d = dir ? opendir(dir) : NULL;
  struct dirent *e;
  size_t blen = strlen(base);
  free(dir);
  if (!d) return;
  while ((e = readdir(d))) {
    if (!wf_is_stale_temp(e->d_name, base, blen)) continue;
    int fd = openat(dirfd(d), e->d_name,
                    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) continue;
    /* its writer holds the lock until the rename, or died */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        flock(fd, LOCK_EX | LOCK_NB) == 0)
      unlinkat(dirfd(d), e->d_name, 0);
    close(fd);
  }
  closedir(d);
}

/* Creates and locks a temporary for target in tmp; returns the fd or
 * -errno. */
static int wf_create(const char *target, char *tmp, size_t cap,
                     mode_t mode) {
  for (int i = 0; i < WF_TRIES; i++) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
      struct timespec ts; /* no entropy yet: O_EXCL still arbitrates */
      clock_gettime(CLOCK_REALTIME, &ts);
      r ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u ^ (uint64_t)i;
    }
    snprintf(tmp, cap, "%s" WF_TAG "%ld-%016llx", target, (long)getpid(),
             (unsigned long long)r);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  mode);
    if (fd < 0 && errno == EEXIST) continue;
    if (fd < 0) return -errno;
    while (flock(fd, LOCK_EX) < 0 && errno == EINTR) {}
    /* A cleaner may have removed it before we held the lock. */
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(tmp, &b) == 0 && a.st_ino == b.st_ino &&
        a.st_dev == b.st_dev)
      return fd;
    close(fd);
  }
  return MP_EEXIST;
}

static int wf_write(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static void wf_sync_dir(const char *target) {
  char *dir = wf_dir(target);
  int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  free(dir);
  if (fd < 0) return;
  fsync(fd); /* best effort: some filesystems refuse it (EINVAL) */
  close(fd);
}

static int wf_replace(struct wfjob *j) {
  char *target = wf_resolve(j->path), *tmp = NULL;
  struct stat st;
  int err = 0, fd = -1, exists;
  if (!target) return -errno;
  exists = stat(target, &st) == 0;
  if (!exists && errno != ENOENT) err = -errno;
  else if (exists && S_ISDIR(st.st_mode)) err = MP_EISDIR;
  else if (exists && !S_ISREG(st.st_mode)) err = MP_EINVAL;
  else if (exists && faccessat(AT_FDCWD, target, W_OK, AT_EACCESS) < 0)
    err = -errno;
  if (err) goto out;
  wf_clean(target);
  size_t cap = strlen(target) + sizeof WF_TAG + 40;
  if (!(tmp = malloc(cap))) {
    err = MP_ENOMEM;
    goto out;
  }
  /* a new file gets 0666 minus the umask, as io.open's; a replaced one
   * its old mode, set once it is ours alone */
  if ((fd = wf_create(target, tmp, cap, exists ? 0600 : 0666)) < 0) {
    err = fd;
    goto out;
  }
  err = wf_write(fd, j->data, j->len);
  if (!err && exists) {
    if ((st.st_uid != geteuid() || st.st_gid != getegid()) &&
        fchown(fd, st.st_uid, st.st_gid) < 0)
      (void)!fchown(fd, (uid_t)-1, st.st_gid); /* keep at least the group */
    if (fchmod(fd, st.st_mode & 07777) < 0) err = -errno;
  }
  if (!err && fsync(fd) < 0) err = -errno;
  /* renamed while still locked: an unlocked temporary is stale */
  if (!err && rename(tmp, target) < 0) err = -errno;
  if (err) unlink(tmp);
  close(fd);
  if (!err) wf_sync_dir(target);
out:
  free(tmp);
  free(target);
  return err;
}

static void wf_work(struct mp_op *op) {
  op->result = wf_replace(op->u.work.arg);
}

static int writefile_k(lua_State *L, struct mp_op *op) {
  int64_t r = op->result;
  mp_op_release(op);
  if (r < 0) return lmp_fail(L, (int)r, lua_tostring(L, 1));
  lua_pushboolean(L, 1);
  return 1;
}

static int fs_writefile(lua_State *L) {
  const char *path = lmp_checkpath(L, 1);
  size_t len, plen = strlen(path);
  const char *data = luaL_checklstring(L, 2, &len);
  lua_settop(L, 1);
  struct mp_op *op = new_op(L);
  /* the data is copied: an orphaned job outlives the string */
  struct wfjob *j = malloc(sizeof *j + plen + 1 + len);
  if (!j) {
    mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  memcpy(j->path, path, plen + 1);
  j->data = j->path + plen + 1;
  memcpy(j->data, data, len);
  j->len = len;
  op->owned = j;
  mp_op_prep_work(op, wf_work, j);
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
