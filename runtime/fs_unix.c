/* fs_unix.c: files and paths on Unix: the translation of portable flags
 * and results for the backends, and the blocking bodies of the file and
 * path ops the threadpool runs (all of them on epoll; on io_uring those
 * the kernel lacks, and READDIR and WRITEFILE always). The calls on an
 * open descriptor and SENDFILE are fsio_unix.c's. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#if defined(__linux__) && defined(__has_include)
#if __has_include(<linux/openat2.h>) /* kernel headers from 5.6 on */
#include <linux/openat2.h>
#endif
#endif

#include "mp_internal.h"
#include "mp_os.h"

_Static_assert(MP__STAT_HEAD >= ((sizeof(struct mp_stat) + 15) & ~15u) +
                                    sizeof(struct statx),
               "MP__STAT_HEAD holds a struct mp_stat and a struct statx");

static int err_of(int e) { return mp_err_from_errno(e); }

static uint8_t type_of(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return MP_FT_FILE;
    case S_IFDIR: return MP_FT_DIR;
    case S_IFLNK: return MP_FT_LINK;
    case S_IFIFO: return MP_FT_FIFO;
    case S_IFSOCK: return MP_FT_SOCK;
    case S_IFCHR: return MP_FT_CHAR;
    case S_IFBLK: return MP_FT_BLOCK;
    default: return MP_FT_UNKNOWN;
  }
}

void mp__stat_from_stat(struct mp_stat *o, const struct stat *st) {
  o->size = (int64_t)st->st_size;
  o->ino = (uint64_t)st->st_ino;
  o->dev = (uint64_t)st->st_dev;
  o->nlink = (uint64_t)st->st_nlink;
  o->blocks = (uint64_t)st->st_blocks;
  o->mode = (uint32_t)(st->st_mode & 07777);
  o->uid = (uint32_t)st->st_uid;
  o->gid = (uint32_t)st->st_gid;
  o->type = type_of(st->st_mode);
  o->atime.sec = (int64_t)st->st_atim.tv_sec;
  o->atime.nsec = (int32_t)st->st_atim.tv_nsec;
  o->mtime.sec = (int64_t)st->st_mtim.tv_sec;
  o->mtime.nsec = (int32_t)st->st_mtim.tv_nsec;
  o->ctime.sec = (int64_t)st->st_ctim.tv_sec;
  o->ctime.nsec = (int32_t)st->st_ctim.tv_nsec;
}

/* --- ops ------------------------------------------------------------------ */

/* MP_O_* flags as open(2)'s. */
static int open_flags(int f) {
  int o = (f & 3) == MP_O_WRONLY ? O_WRONLY
        : (f & 3) == MP_O_RDWR ? O_RDWR : O_RDONLY;
  if (f & MP_O_CREAT) o |= O_CREAT;
  if (f & MP_O_TRUNC) o |= O_TRUNC;
  if (f & MP_O_APPEND) o |= O_APPEND;
  if (f & MP_O_EXCL) o |= O_EXCL;
  if (f & MP_O_NOFOLLOW) o |= O_NOFOLLOW;
  if (f & MP_O_DIRECTORY) o |= O_DIRECTORY;
  if (f & MP_O_NONBLOCK) o |= O_NONBLOCK;
  return o | O_CLOEXEC;
}

int mp_os_open_cached(const char *path, int flags, mp_handle_t *out) {
#if defined(SYS_openat2) && defined(RESOLVE_CACHED)
  /* RESOLVE_CACHED: the lookup is done from the dentry cache only, or
   * EAGAIN; io_uring opens inline the same way (and punts creating or
   * truncating opens, which never qualify) */
  struct open_how how = {.flags = (uint64_t)open_flags(flags),
                         .resolve = RESOLVE_CACHED};
  if (flags & (MP_O_CREAT | MP_O_TRUNC)) return MP_EAGAIN;
  long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
  if (fd >= 0) {
    *out = (mp_handle_t)fd;
    return 0;
  }
  /* before 5.12 (no RESOLVE_CACHED: EINVAL), 5.6 (no openat2), or a
   * seccomp filter that refuses it */
  if (errno == ENOSYS || errno == EINVAL || errno == E2BIG ||
      errno == EPERM)
    return MP_EOPNOTSUPP;
  return MP_EAGAIN; /* the pool opens it, and reports real failures */
#else
  (void)path, (void)flags, (void)out;
  return MP_EOPNOTSUPP;
#endif
}

void mp__fs_translate(struct mp_op *op) {
  int f = op->u.fs.flags, o;
  if (op->kind == MP_OP_STAT) {
    o = (f & MP_STAT_NOFOLLOW) ? AT_SYMLINK_NOFOLLOW : 0;
    if (op->handle != MP_INVALID_HANDLE) o |= AT_EMPTY_PATH;
    op->u.fs.flags = o;
    return;
  }
  op->u.fs.flags = open_flags(f); /* MP_OP_OPEN */
}

int mp__fs_dirfd(const struct mp_op *op) {
  return op->handle == MP_INVALID_HANDLE ? AT_FDCWD : op->handle;
}

void *mp__fs_statx_buf(struct mp_op *op) {
  return (char *)op->u.fs.buf + ((sizeof(struct mp_stat) + 15) & ~15u);
}

static void from_statx(struct mp_stat *o, const struct statx *st) {
  struct stat s;
  memset(&s, 0, sizeof s);
  s.st_size = (off_t)st->stx_size;
  s.st_ino = (ino_t)st->stx_ino;
  s.st_dev = makedev(st->stx_dev_major, st->stx_dev_minor);
  s.st_nlink = (nlink_t)st->stx_nlink;
  s.st_blocks = (blkcnt_t)st->stx_blocks;
  s.st_mode = (mode_t)st->stx_mode;
  s.st_uid = (uid_t)st->stx_uid;
  s.st_gid = (gid_t)st->stx_gid;
  s.st_atim.tv_sec = (time_t)st->stx_atime.tv_sec;
  s.st_atim.tv_nsec = (long)st->stx_atime.tv_nsec;
  s.st_mtim.tv_sec = (time_t)st->stx_mtime.tv_sec;
  s.st_mtim.tv_nsec = (long)st->stx_mtime.tv_nsec;
  s.st_ctim.tv_sec = (time_t)st->stx_ctime.tv_sec;
  s.st_ctim.tv_nsec = (long)st->stx_ctime.tv_nsec;
  mp__stat_from_stat(o, &s);
}

void mp__fs_complete(struct mp_op *op, int64_t res) {
  if (op->kind == MP_OP_STAT && res >= 0)
    from_statx(op->u.fs.buf, mp__fs_statx_buf(op));
}

/* READDIR: the names go to the head of the op's private memory (op.c). */
static int readdir_op(struct mp_op *op) {
  DIR *dir = opendir(op->u.fs.path);
  struct dirent *e;
  char *names = NULL;
  size_t len = 0, cap = 0;
  int64_t count = 0;
  if (!dir) return err_of(errno);
  while ((errno = 0, e = readdir(dir))) {
    size_t n = strlen(e->d_name) + 1;
    if (e->d_name[0] == '.' &&
        (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
      continue;
    if (len + n > cap) {
      size_t c = cap ? cap * 2 : 4096;
      while (c < len + n) c *= 2;
      char *p = realloc(names, c);
      if (!p) {
        count = MP_ENOMEM;
        break;
      }
      names = p;
      cap = c;
    }
    memcpy(names + len, e->d_name, n);
    len += n;
    count++;
  }
  if (!e && errno && count >= 0) count = err_of(errno);
  closedir(dir);
  if (count < 0) {
    free(names);
    return (int)count;
  }
  *(char **)op->priv = names; /* the op frees them (op.c) */
  op->u.fs.buf = names;
  op->u.fs.len = len;
  return (int)count; /* (an int's worth of names: a directory holds less) */
}

static void stat_op(struct mp_op *op, int64_t *r) {
  struct statx *st = mp__fs_statx_buf(op);
  if (statx(mp__fs_dirfd(op), op->u.fs.path, op->u.fs.flags,
            STATX_BASIC_STATS, st) < 0) {
    *r = -1;
    return;
  }
  from_statx(op->u.fs.buf, st);
  *r = 0;
}

static int wf_replace(const char *path, const char *data, size_t len);

void mp__fs_blocking(struct mp_op *op) {
  int64_t r;
  int dfd = mp__fs_dirfd(op);
  if (op->kind >= MP_OP_CHMOD && op->kind <= MP_OP_COPYFILE) {
    op->result = mp__fsx_blocking(op); /* issue 14's, at the end */
    return;
  }
  if (op->kind == MP_OP_READDIR) {
    op->result = readdir_op(op);
    return;
  }
  if (op->kind == MP_OP_WRITEFILE) {
    op->result = wf_replace(op->u.fs.path, op->u.fs.buf, op->u.fs.len);
    return;
  }
  if (op->kind == MP_OP_READFILE) {
    op->result = mp__readfile_blocking(op);
    return;
  }
  do {
    switch (op->kind) {
      case MP_OP_OPEN:
        r = openat(dfd, op->u.fs.path, op->u.fs.flags, op->u.fs.mode);
        break;
      case MP_OP_STAT:
        stat_op(op, &r);
        break;
      case MP_OP_FSYNC:
        r = op->u.fs.flags ? fdatasync(op->handle) : fsync(op->handle);
        break;
      case MP_OP_RENAME:
        r = renameat(dfd, op->u.fs.path, AT_FDCWD, op->u.fs.path2);
        break;
      case MP_OP_UNLINK:
        r = unlinkat(dfd, op->u.fs.path, 0);
        break;
      case MP_OP_RMDIR:
        r = unlinkat(dfd, op->u.fs.path, AT_REMOVEDIR);
        break;
      case MP_OP_MKDIR:
        r = mkdirat(dfd, op->u.fs.path, op->u.fs.mode);
        break;
      default:
        r = -1;
        errno = EINVAL;
    }
  } while (r < 0 && errno == EINTR);
  op->result = r < 0 ? err_of(errno) : r;
}

/* mp__readfile_all's read: the next bytes of *h (a descriptor). */
static int64_t read_fd(void *h, void *buf, size_t len, int64_t off) {
  (void)off;
  ssize_t n;
  do n = read(*(int *)h, buf, len);
  while (n < 0 && errno == EINTR);
  return n < 0 ? err_of(errno) : n;
}

/* READFILE on the pool: open (non-blocking: a FIFO never waits for its
 * writer here), fstat, read a regular file to its end into a buffer of
 * its size (plus one byte: a read of 0 proves the end), close. Anything
 * else but a directory (a FIFO, a device) would hold this thread: handed
 * back open, unread. Pool threads use malloc, not the loop's. */
int64_t mp__readfile_blocking(struct mp_op *op) {
  struct mp__rf *rf = op->u.fs.buf;
  struct stat st;
  int fd, e = 0;
  free(rf->buf); /* an op submitted again: its last bytes go */
  rf->buf = NULL;
  rf->cap = rf->len = 0;
  op->handle = MP_INVALID_HANDLE; /* an output: a last hand-back's */
  do fd = openat(AT_FDCWD, op->u.fs.path,
                 O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return err_of(errno);
  if (fstat(fd, &st) < 0) e = err_of(errno);
  else if (S_ISDIR(st.st_mode)) e = MP_EISDIR;
  if (e < 0) {
    close(fd);
    return e;
  }
  if (!S_ISREG(st.st_mode)) {
    op->handle = fd;
    return MP_EAGAIN;
  }
  int64_t r = mp__readfile_all(rf, st.st_size > 0 ? (uint64_t)st.st_size : 0,
                               read_fd, &fd);
  close(fd);
  return r;
}

/* --- writefile -------------------------------------------------------------
 *
 * One job on the pool: a queued job cancelled by its task's cancel or
 * timeout has done nothing, and a running one always finishes, removing
 * its temporary on any failure, whatever became of its submitter. Steps:
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
 * err_of(errno). */
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
    if (fd < 0) return err_of(errno);
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
    if (r < 0) return err_of(errno);
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

static int wf_replace(const char *path, const char *data, size_t len) {
  char *target = wf_resolve(path), *tmp = NULL;
  struct stat st;
  int err = 0, fd = -1, exists;
  if (!target) return err_of(errno);
  exists = stat(target, &st) == 0;
  if (!exists && errno != ENOENT) err = err_of(errno);
  else if (exists && S_ISDIR(st.st_mode)) err = MP_EISDIR;
  else if (exists && !S_ISREG(st.st_mode)) err = MP_EINVAL;
  else if (exists && faccessat(AT_FDCWD, target, W_OK, AT_EACCESS) < 0)
    err = err_of(errno);
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
  err = wf_write(fd, data, len);
  if (!err && exists) {
    if ((st.st_uid != geteuid() || st.st_gid != getegid()) &&
        fchown(fd, st.st_uid, st.st_gid) < 0)
      (void)!fchown(fd, (uid_t)-1, st.st_gid); /* keep at least the group */
    if (fchmod(fd, st.st_mode & 07777) < 0) err = err_of(errno);
  }
  if (!err && fsync(fd) < 0) err = err_of(errno);
  /* renamed while still locked: an unlocked temporary is stale */
  if (!err && rename(tmp, target) < 0) err = err_of(errno);
  if (err) unlink(tmp);
  close(fd);
  if (!err) wf_sync_dir(target);
out:
  free(tmp);
  free(target);
  return err;
}


/* --- more paths and files (issue 14) --------------------------------------
 * The bodies of CHMOD..COPYFILE (always on the pool: only SYMLINK and a
 * handle's TRUNCATE have io_uring opcodes, native when probed) and the
 * SENDFILE attempt both backends make once the socket is writable. */

const char *mp__fs_tmpdir(void) {
  const char *d = getenv("TMPDIR");
  return d && *d ? d : "/tmp";
}

static int64_t len_or_err(const char *s) {
  return s ? (int64_t)strlen(s) : err_of(errno);
}

static int64_t readlink_op(struct mp_op *op) {
  char *buf = op->u.fs.buf;
  ssize_t n = readlink(op->u.fs.path, buf, MP__PATH_MAX);
  if (n < 0) return err_of(errno);
  if (n == MP__PATH_MAX) return MP_ENAMETOOLONG;
  buf[n] = 0;
  return n;
}

static int64_t utime_op(struct mp_op *op) {
  const int64_t *t = op->u.fs.buf;
  struct timespec ts[2];
  for (int i = 0; i < 2; i++) {
    if (t[i] == MP_UTIME_NOW) {
      ts[i].tv_sec = 0;
      ts[i].tv_nsec = UTIME_NOW;
      continue;
    }
    int64_t sec = t[i] / 1000000000, ns = t[i] % 1000000000;
    if (ns < 0) { /* before 1970: nsec stays in [0, 1e9) */
      sec--;
      ns += 1000000000;
    }
    ts[i].tv_sec = (time_t)sec;
    ts[i].tv_nsec = (long)ns;
  }
  return utimensat(AT_FDCWD, op->u.fs.path, ts, 0) < 0 ? err_of(errno) : 0;
}

/* O_TMPFILE: a file that never has a name; where the filesystem cannot
 * (EOPNOTSUPP, EISDIR before Linux 3.11), a named one removed at once,
 * as glibc's tmpfile does. */
static int64_t tmpfile_op(struct mp_op *op) {
  char *dir = (char *)op->u.fs.path;
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return err_of(errno);
  strcat(dir, "/moonport-" MP__TEMPLATE); /* prep left room */
  if ((fd = mkostemp(dir, O_CLOEXEC)) < 0) return err_of(errno);
  unlink(dir);
  return fd;
}

/* Bytes from in to out at their positions, in the kernel when it can:
 * copy_file_range fails without copying anything across filesystems
 * (EXDEV), on old kernels (ENOSYS) and some filesystems (EINVAL,
 * EOPNOTSUPP), then a buffer does it. A first 0 is checked with read:
 * files such as /proc's claim size 0 and copy_file_range copies
 * nothing. In chunks of COPY_CHUNK bytes, so that a cancel (which sets
 * *abort from the loop's thread: mp__pool_cancel) stops the copy at the
 * next one. */
enum { COPY_CHUNK = 16 << 20 };

static int copy_fds(int in, int out, int *which, const uint32_t *abort) {
  int kernel = 1;
  char *buf = NULL;
  int64_t total = 0;
  int err = 0;
  for (;;) {
    ssize_t n;
    if (__atomic_load_n(abort, __ATOMIC_RELAXED)) {
      err = MP_ECANCELED;
      break;
    }
    if (kernel) {
      n = copy_file_range(in, NULL, out, NULL, COPY_CHUNK, 0);
      if ((n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
                     errno == EOPNOTSUPP)) || (n == 0 && total == 0)) {
        kernel = 0;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) { /* which side failed is unknown: blame the target */
        err = err_of(errno);
        *which = 1;
        break;
      }
      if (n == 0) break;
      total += n;
      continue;
    }
    if (!buf && !(buf = malloc(1 << 17))) {
      err = MP_ENOMEM;
      break;
    }
    n = read(in, buf, 1 << 17);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = err_of(errno);
      *which = 0;
      break;
    }
    if (n == 0) break;
    if ((err = wf_write(out, buf, (size_t)n)) < 0) {
      *which = 1;
      break;
    }
    total += n;
  }
  free(buf);
  return err;
}

/* COPYFILE: cp's semantics for a regular file: the target is truncated
 * and rewritten in place (keeping its inode, mode and owner) or created
 * with the source's permissions (minus the umask). Cancelled while it
 * runs, it stops at the next chunk, the target left as far as it got
 * (as an interrupted cp leaves it). */
static int64_t copy_op(struct mp_op *op) {
  struct stat si, so;
  int err = 0, out = -1, which = 0;
  /* O_NONBLOCK: a FIFO must not hold the pool thread; refused below */
  int in = open(op->u.fs.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (in < 0) return err_of(errno);
  if (fstat(in, &si) < 0) err = err_of(errno);
  else if (S_ISDIR(si.st_mode)) err = MP_EISDIR;
  else if (!S_ISREG(si.st_mode)) err = MP_EINVAL;
  if (err) goto done;
  which = 1;
  if (stat(op->u.fs.path2, &so) == 0 && so.st_dev == si.st_dev &&
      so.st_ino == si.st_ino) {
    err = MP_EINVAL; /* onto itself: truncating would lose it */
    goto done;
  }
  out = open(op->u.fs.path2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
             si.st_mode & 0777);
  if (out < 0) {
    err = err_of(errno);
    goto done;
  }
  err = copy_fds(in, out, &which, &op->u.fs.mode);
  if (close(out) < 0 && !err && errno != EINTR) { /* NFS reports late */
    err = err_of(errno);
    which = 1;
  }
done:
  close(in);
  op->u.fs.flags = err ? which : 0;
  return err;
}

int64_t mp__fsx_blocking(struct mp_op *op) {
  const char *path = op->u.fs.path;
  int r;
  switch (op->kind) {
    case MP_OP_READLINK: return readlink_op(op);
    case MP_OP_REALPATH: return len_or_err(realpath(path, op->u.fs.buf));
    case MP_OP_MKDTEMP: return len_or_err(mkdtemp((char *)path));
    case MP_OP_UTIME: return utime_op(op);
    case MP_OP_TMPFILE: return tmpfile_op(op);
    case MP_OP_COPYFILE: return copy_op(op);
    default: break;
  }
  do {
    switch (op->kind) {
      case MP_OP_CHMOD:
        r = fchmodat(AT_FDCWD, path, (mode_t)op->u.fs.mode, 0);
        break;
      case MP_OP_CHOWN:
        r = chown(path, (uid_t)op->u.fs.mode, (gid_t)op->u.fs.flags);
        break;
      case MP_OP_SYMLINK:
        r = symlinkat(op->u.fs.path2, AT_FDCWD, path);
        break;
      case MP_OP_TRUNCATE:
        r = path ? truncate(path, (off_t)op->u.fs.len)
                 : ftruncate(op->handle, (off_t)op->u.fs.len);
        break;
      default:
        r = -1;
        errno = EINVAL;
    }
  } while (r < 0 && errno == EINTR);
  return r < 0 ? err_of(errno) : 0;
}
