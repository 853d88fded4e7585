/* test-fs.c: the portable file and path ops (MP_OP_OPEN's flags, STAT's
 * struct mp_stat against stat(2), READDIR, WRITEFILE's failures, the path
 * ops) on every backend: native on io_uring, the pool's bodies on epoll. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mp_os.h"
#include "task.h"

static int done;

static void done_cb(struct mp_op *op) {
  (void)op;
  done = 1; /* the test reads the result, then releases */
}

/* Submits op and runs the loop until it completes; returns its result. */
static int64_t run(struct mp_loop *loop, struct mp_op *op) {
  done = 0;
  op->cb = done_cb;
  ASSERT_EQ(mp_op_submit(op), 0);
  while (!done) mp_loop_run(loop, MP_RUN_ONCE);
  return op->result;
}

static int64_t open_path(struct mp_loop *loop, const char *path, int flags,
                         uint32_t mode) {
  struct mp_op *op = mp_op_new(loop, NULL, NULL);
  ASSERT_EQ(mp_op_prep_open(op, path, flags, mode), 0);
  int64_t r = run(loop, op);
  mp_op_release(op);
  return r;
}

static int64_t path_op(struct mp_loop *loop, int kind, const char *a,
                       const char *b) {
  struct mp_op *op = mp_op_new(loop, NULL, NULL);
  switch (kind) {
    case MP_OP_UNLINK: ASSERT_EQ(mp_op_prep_unlink(op, a), 0); break;
    case MP_OP_RMDIR: ASSERT_EQ(mp_op_prep_rmdir(op, a), 0); break;
    case MP_OP_MKDIR: ASSERT_EQ(mp_op_prep_mkdir(op, a, 0700), 0); break;
    case MP_OP_RENAME: ASSERT_EQ(mp_op_prep_rename(op, a, b), 0); break;
    default: ASSERT(0);
  }
  int64_t r = run(loop, op);
  mp_op_release(op);
  return r;
}

static void tmpdir(char *dir) {
  strcpy(dir, "/tmp/mp-fs-XXXXXX");
  ASSERT(mkdtemp(dir) != NULL);
}

static void rm_rf(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ASSERT_EQ(system(cmd), 0);
}

TEST_IMPL(fs_open_flags) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[128], link[128];
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/f", dir);
  snprintf(link, sizeof link, "%s/l", dir);
  mode_t old = umask(0);
  /* create exclusively: write-only, close-on-exec, the mode asked for */
  int64_t fd = open_path(loop, p, MP_O_WRONLY | MP_O_CREAT | MP_O_EXCL, 0640);
  umask(old);
  ASSERT_GE(fd, 0);
  int fl = fcntl((int)fd, F_GETFL);
  ASSERT_EQ(fl & O_ACCMODE, O_WRONLY);
  ASSERT_EQ(fl & (O_APPEND | O_NONBLOCK), 0);
  ASSERT(fcntl((int)fd, F_GETFD) & FD_CLOEXEC);
  struct stat st;
  ASSERT_EQ(fstat((int)fd, &st), 0);
  ASSERT_EQ(st.st_mode & 07777, 0640);
  ASSERT_EQ(write((int)fd, "hello", 5), 5);
  ASSERT_EQ(mp_os_close((mp_handle_t)fd), 0);
  ASSERT_EQ(open_path(loop, p, MP_O_WRONLY | MP_O_CREAT | MP_O_EXCL, 0600),
            MP_EEXIST);
  /* read-write, append, non-blocking */
  fd = open_path(loop, p, MP_O_RDWR | MP_O_APPEND | MP_O_NONBLOCK, 0);
  ASSERT_GE(fd, 0);
  fl = fcntl((int)fd, F_GETFL);
  ASSERT_EQ(fl & O_ACCMODE, O_RDWR);
  ASSERT(fl & O_APPEND);
  ASSERT(fl & O_NONBLOCK);
  ASSERT(fcntl((int)fd, F_GETFD) & FD_CLOEXEC);
  ASSERT_EQ(mp_os_close((mp_handle_t)fd), 0);
  /* read-only: the file as it was; truncate empties it */
  fd = open_path(loop, p, MP_O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fcntl((int)fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  ASSERT_EQ(write((int)fd, "x", 1), -1);
  ASSERT_EQ(mp_os_close((mp_handle_t)fd), 0);
  fd = open_path(loop, p, MP_O_WRONLY | MP_O_TRUNC, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(mp_os_close((mp_handle_t)fd), 0);
  ASSERT_EQ(stat(p, &st), 0);
  ASSERT_EQ(st.st_size, 0);
  /* no create: ENOENT; a file as a directory: ENOTDIR; a link not
   * followed: ELOOP; the directory itself opens with MP_O_DIRECTORY */
  snprintf(link, sizeof link, "%s/missing", dir);
  ASSERT_EQ(open_path(loop, link, MP_O_RDONLY, 0), MP_ENOENT);
  ASSERT_EQ(open_path(loop, p, MP_O_RDONLY | MP_O_DIRECTORY, 0),
            MP_ENOTDIR);
  snprintf(link, sizeof link, "%s/l", dir);
  ASSERT_EQ(symlink(p, link), 0);
  ASSERT_EQ(open_path(loop, link, MP_O_RDONLY | MP_O_NOFOLLOW, 0), MP_ELOOP);
  fd = open_path(loop, link, MP_O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(mp_os_close((mp_handle_t)fd), 0);
  fd = open_path(loop, dir, MP_O_RDONLY | MP_O_DIRECTORY, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(mp_os_close((mp_handle_t)fd), 0);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

static void same_stat(const struct mp_stat *m, const struct stat *s) {
  ASSERT_EQ(m->size, s->st_size);
  ASSERT_EQ(m->ino, s->st_ino);
  ASSERT_EQ(m->dev, s->st_dev);
  ASSERT_EQ(m->nlink, s->st_nlink);
  ASSERT_EQ(m->blocks, s->st_blocks);
  ASSERT_EQ(m->mode, s->st_mode & 07777);
  ASSERT_EQ(m->uid, s->st_uid);
  ASSERT_EQ(m->gid, s->st_gid);
  ASSERT_EQ(m->mtime.sec, s->st_mtim.tv_sec);
  ASSERT_EQ(m->mtime.nsec, s->st_mtim.tv_nsec);
  ASSERT_EQ(m->atime.sec, s->st_atim.tv_sec);
  ASSERT_EQ(m->atime.nsec, s->st_atim.tv_nsec);
  ASSERT_EQ(m->ctime.sec, s->st_ctim.tv_sec);
  ASSERT_EQ(m->ctime.nsec, s->st_ctim.tv_nsec);
}

/* stat of path (flags) into *out; returns the op's result. */
static int64_t stat_path(struct mp_loop *loop, const char *path, int flags,
                         struct mp_stat *out) {
  struct mp_op *op = mp_op_new(loop, NULL, NULL);
  ASSERT_EQ(mp_op_prep_stat(op, path, flags), 0);
  int64_t r = run(loop, op);
  if (r >= 0) *out = *mp_op_stat(op);
  mp_op_release(op);
  return r;
}

TEST_IMPL(fs_stat_fields) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[128], lnk[128];
  struct stat s;
  struct mp_stat m;
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/f", dir);
  snprintf(lnk, sizeof lnk, "%s/l", dir);
  int fd = open(p, O_WRONLY | O_CREAT, 0604);
  ASSERT_GE(fd, 0);
  char block[10000];
  memset(block, 'x', sizeof block);
  ASSERT_EQ(write(fd, block, sizeof block), (long long)sizeof block);
  ASSERT_EQ(fchmod(fd, 0751), 0);
  close(fd);
  ASSERT_EQ(link(p, lnk), 0); /* nlink 2 */
  ASSERT_EQ(stat_path(loop, p, 0, &m), 0);
  ASSERT_EQ(stat(p, &s), 0);
  ASSERT_EQ(m.type, MP_FT_FILE);
  ASSERT_EQ(m.size, 10000);
  ASSERT_EQ(m.nlink, 2);
  ASSERT_EQ(m.mode, 0751);
  same_stat(&m, &s);
  ASSERT_EQ(unlink(lnk), 0);
  /* a symlink: followed, or itself with MP_STAT_NOFOLLOW */
  ASSERT_EQ(symlink("f", lnk), 0);
  ASSERT_EQ(stat_path(loop, lnk, 0, &m), 0);
  ASSERT_EQ(stat(lnk, &s), 0);
  ASSERT_EQ(m.type, MP_FT_FILE);
  same_stat(&m, &s);
  ASSERT_EQ(stat_path(loop, lnk, MP_STAT_NOFOLLOW, &m), 0);
  ASSERT_EQ(lstat(lnk, &s), 0);
  ASSERT_EQ(m.type, MP_FT_LINK);
  ASSERT_EQ(m.size, 1);
  same_stat(&m, &s);
  /* a directory, a FIFO, a character device */
  ASSERT_EQ(stat_path(loop, dir, 0, &m), 0);
  ASSERT_EQ(stat(dir, &s), 0);
  ASSERT_EQ(m.type, MP_FT_DIR);
  same_stat(&m, &s);
  snprintf(lnk, sizeof lnk, "%s/fifo", dir);
  ASSERT_EQ(mkfifo(lnk, 0600), 0);
  ASSERT_EQ(stat_path(loop, lnk, 0, &m), 0);
  ASSERT_EQ(m.type, MP_FT_FIFO);
  ASSERT_EQ(stat_path(loop, "/dev/null", 0, &m), 0);
  ASSERT_EQ(m.type, MP_FT_CHAR);
  /* failures */
  snprintf(lnk, sizeof lnk, "%s/missing", dir);
  ASSERT_EQ(stat_path(loop, lnk, 0, &m), MP_ENOENT);
  snprintf(lnk, sizeof lnk, "%s/f/x", dir);
  ASSERT_EQ(stat_path(loop, lnk, 0, &m), MP_ENOTDIR);
  /* a handle: the op and mp_os_fstat agree with fstat(2) */
  fd = open(p, O_RDONLY);
  ASSERT_GE(fd, 0);
  struct mp_op *op = mp_op_new(loop, NULL, NULL);
  ASSERT_EQ(mp_op_prep_fstat(op, fd), 0);
  ASSERT_EQ(run(loop, op), 0);
  ASSERT_EQ(fstat(fd, &s), 0);
  same_stat(mp_op_stat(op), &s);
  mp_op_release(op);
  ASSERT_EQ(mp_os_fstat(fd, &m), 0);
  same_stat(&m, &s);
  ASSERT_EQ(mp_os_seek(fd, 0, MP_SEEK_END), 10000);
  ASSERT_EQ(mp_os_seek(fd, -1, MP_SEEK_SET), MP_EINVAL);
  close(fd);
  ASSERT_EQ(mp_os_fstat(fd, &m), MP_EBADF);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

static int has_name(const struct mp_op *op, const char *name) {
  for (const char *n = mp_op_readdir_next(op, NULL); n;
       n = mp_op_readdir_next(op, n))
    if (strcmp(n, name) == 0) return 1;
  return 0;
}

TEST_IMPL(fs_readdir) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[512];
  tmpdir(dir);
  /* empty: no names, "." and ".." left out */
  struct mp_op *op = mp_op_new(loop, NULL, NULL);
  ASSERT_EQ(mp_op_prep_readdir(op, dir), 0);
  ASSERT_EQ(run(loop, op), 0);
  ASSERT(mp_op_readdir_next(op, NULL) == NULL);
  /* 300 names (more than one 4 KiB block of names), some long */
  char longname[256];
  memset(longname, 'n', 250);
  longname[250] = 0;
  for (int i = 0; i < 300; i++) {
    if (i % 10) snprintf(p, sizeof p, "%s/f%d", dir, i);
    else snprintf(p, sizeof p, "%s/%d%s", dir, i, longname);
    if (i % 10) {
      int fd = open(p, O_WRONLY | O_CREAT, 0600);
      ASSERT_GE(fd, 0);
      close(fd);
    } else {
      p[strlen(dir) + 1 + 200] = 0; /* keep it under NAME_MAX */
      ASSERT_EQ(mkdir(p, 0700), 0);
    }
  }
  ASSERT_EQ(mp_op_prep_readdir(op, dir), 0); /* a prep again: op reused */
  ASSERT_EQ(run(loop, op), 300);
  int count = 0;
  for (const char *n = mp_op_readdir_next(op, NULL); n;
       n = mp_op_readdir_next(op, n)) {
    ASSERT(strcmp(n, ".") && strcmp(n, ".."));
    count++;
  }
  ASSERT_EQ(count, 300);
  ASSERT(has_name(op, "f1") && has_name(op, "f299"));
  ASSERT(!has_name(op, "f0"));
  /* the same set as readdir(3) */
  DIR *d = opendir(dir);
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      ASSERT(has_name(op, e->d_name));
  closedir(d);
  /* failures: no names */
  snprintf(p, sizeof p, "%s/missing", dir);
  ASSERT_EQ(mp_op_prep_readdir(op, p), 0);
  ASSERT_EQ(run(loop, op), MP_ENOENT);
  ASSERT(mp_op_readdir_next(op, NULL) == NULL);
  snprintf(p, sizeof p, "%s/f1", dir);
  ASSERT_EQ(mp_op_prep_readdir(op, p), 0);
  ASSERT_EQ(run(loop, op), MP_ENOTDIR);
  mp_op_release(op);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

static int64_t writefile(struct mp_loop *loop, const char *path,
                         const char *data, size_t len) {
  struct mp_op *op = mp_op_new(loop, NULL, NULL);
  ASSERT_EQ(mp_op_prep_writefile(op, path, data, len), 0);
  int64_t r = run(loop, op);
  mp_op_release(op);
  return r;
}

/* Entries in dir (besides "." and ".."). */
static int entries(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  ASSERT(d != NULL);
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

TEST_IMPL(fs_writefile) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[128], q[128], got[64];
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/f", dir);
  /* a new file, then a replaced one keeping its mode */
  ASSERT_EQ(writefile(loop, p, "first", 5), 0);
  ASSERT_EQ(chmod(p, 0604), 0);
  ASSERT_EQ(writefile(loop, p, "second!", 7), 0);
  int fd = open(p, O_RDONLY);
  ASSERT_EQ(read(fd, got, sizeof got), 7);
  close(fd);
  ASSERT(memcmp(got, "second!", 7) == 0);
  struct stat st;
  ASSERT_EQ(stat(p, &st), 0);
  ASSERT_EQ(st.st_mode & 07777, 0604);
  ASSERT_EQ(writefile(loop, p, "", 0), 0); /* empty is fine */
  ASSERT_EQ(stat(p, &st), 0);
  ASSERT_EQ(st.st_size, 0);
  ASSERT_EQ(entries(dir), 1); /* no temporary left */
  /* failures, each leaving nothing behind */
  ASSERT_EQ(writefile(loop, dir, "x", 1), MP_EISDIR);
  snprintf(q, sizeof q, "%s/fifo", dir);
  ASSERT_EQ(mkfifo(q, 0600), 0);
  ASSERT_EQ(writefile(loop, q, "x", 1), MP_EINVAL);
  snprintf(q, sizeof q, "%s/missing/f", dir);
  ASSERT_EQ(writefile(loop, q, "x", 1), MP_ENOENT);
  snprintf(q, sizeof q, "%s/f/x", dir);
  ASSERT_EQ(writefile(loop, q, "x", 1), MP_ENOTDIR);
  snprintf(q, sizeof q, "%s/loop", dir);
  ASSERT_EQ(symlink("loop", q), 0);
  ASSERT_EQ(writefile(loop, q, "x", 1), MP_ELOOP);
  ASSERT_EQ(entries(dir), 3); /* f, fifo, loop */
  /* a stale temporary of another (dead) process is removed */
  snprintf(q, sizeof q, "%s/f.mp-tmp-999999999-0123456789abcdef", dir);
  fd = open(q, O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_EQ(writefile(loop, p, "third", 5), 0);
  ASSERT_EQ(access(q, F_OK), -1);
  ASSERT_EQ(entries(dir), 3);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(fs_path_ops) {
  struct mp_loop *loop = test_loop();
  char dir[64], a[128], b[128];
  struct stat st;
  tmpdir(dir);
  snprintf(a, sizeof a, "%s/a", dir);
  snprintf(b, sizeof b, "%s/b", dir);
  ASSERT_EQ(path_op(loop, MP_OP_MKDIR, a, NULL), 0);
  ASSERT_EQ(stat(a, &st), 0);
  ASSERT(S_ISDIR(st.st_mode));
  ASSERT_EQ(path_op(loop, MP_OP_MKDIR, a, NULL), MP_EEXIST);
  ASSERT_EQ(path_op(loop, MP_OP_UNLINK, a, NULL), MP_EISDIR);
  ASSERT_EQ(path_op(loop, MP_OP_RENAME, a, b), 0);
  ASSERT_EQ(access(a, F_OK), -1);
  ASSERT_EQ(path_op(loop, MP_OP_RMDIR, b, NULL), 0);
  ASSERT_EQ(access(b, F_OK), -1);
  ASSERT_EQ(path_op(loop, MP_OP_RMDIR, b, NULL), MP_ENOENT);
  int fd = open(a, O_WRONLY | O_CREAT, 0600);
  close(fd);
  ASSERT_EQ(path_op(loop, MP_OP_RMDIR, a, NULL), MP_ENOTDIR);
  ASSERT_EQ(path_op(loop, MP_OP_RENAME, a, b), 0);
  ASSERT_EQ(path_op(loop, MP_OP_UNLINK, b, NULL), 0);
  ASSERT_EQ(path_op(loop, MP_OP_UNLINK, b, NULL), MP_ENOENT);
  ASSERT_EQ(path_op(loop, MP_OP_RENAME, a, b), MP_ENOENT);
  /* fsync of a handle, and of none */
  fd = open(dir, O_RDONLY | O_DIRECTORY);
  struct mp_op *op = mp_op_new(loop, NULL, NULL);
  mp_op_prep_fsync(op, fd, 0);
  ASSERT_EQ(run(loop, op), 0);
  close(fd);
  mp_op_prep_fsync(op, fd, 1);
  ASSERT_EQ(run(loop, op), MP_EBADF);
  mp_op_release(op);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

/* --- issue 14: the rest of the path ops, COPYFILE and SENDFILE ---------- */

TEST_IMPL(fs_more_ops) {
  struct mp_loop *loop = test_loop();
  char dir[64], a[128], b[128], l[128], real[4096];
  struct stat st;
  tmpdir(dir);
  snprintf(a, sizeof a, "%s/a", dir);
  snprintf(b, sizeof b, "%s/b", dir);
  snprintf(l, sizeof l, "%s/l", dir);
  int fd = open(a, O_WRONLY | O_CREAT, 0600);
  ASSERT_EQ(write(fd, "0123456789", 10), 10);
  close(fd);
  struct mp_op *op = mp_op_new(loop, NULL, NULL);
  ASSERT_EQ(mp_op_prep_chmod(op, a, 0751), 0);
  ASSERT_EQ(run(loop, op), 0);
  ASSERT_EQ(stat(a, &st), 0);
  ASSERT_EQ(st.st_mode & 07777, 0751);
  ASSERT_EQ(mp_op_prep_chown(op, a, MP_OWNER_KEEP, MP_OWNER_KEEP), 0);
  ASSERT_EQ(run(loop, op), 0);
  ASSERT_EQ(mp_op_prep_utime(op, a, -1500000000, 7000000001), 0);
  ASSERT_EQ(run(loop, op), 0);
  ASSERT_EQ(stat(a, &st), 0);
  ASSERT_EQ(st.st_atim.tv_sec, -2);
  ASSERT_EQ(st.st_atim.tv_nsec, 500000000);
  ASSERT_EQ(st.st_mtim.tv_sec, 7);
  ASSERT_EQ(st.st_mtim.tv_nsec, 1);
  ASSERT_EQ(mp_op_prep_symlink(op, "a", l), 0);
  ASSERT_EQ(run(loop, op), 0);
  ASSERT_EQ(run(loop, op), MP_EEXIST);
  ASSERT_EQ(mp_op_prep_readlink(op, l), 0);
  ASSERT_EQ(run(loop, op), 1);
  ASSERT(strcmp(mp_op_path_result(op), "a") == 0);
  ASSERT_EQ(mp_op_prep_readlink(op, a), 0);
  ASSERT_EQ(run(loop, op), MP_EINVAL);
  ASSERT(mp_op_path_result(op) == NULL);
  ASSERT_EQ(mp_op_prep_realpath(op, l), 0);
  ASSERT_GT(run(loop, op), 0);
  ASSERT(realpath(a, real) != NULL);
  ASSERT(strcmp(mp_op_path_result(op), real) == 0);
  /* truncate: a path (the pool), a handle (io_uring's FTRUNCATE) */
  ASSERT_EQ(mp_op_prep_truncate(op, a, MP_INVALID_HANDLE, 4), 0);
  ASSERT_EQ(run(loop, op), 0);
  ASSERT_EQ(stat(a, &st), 0);
  ASSERT_EQ(st.st_size, 4);
  fd = open(a, O_RDWR);
  ASSERT_EQ(mp_op_prep_truncate(op, NULL, fd, 3), 0);
  ASSERT_EQ(run(loop, op), 0);
  ASSERT_EQ(lseek(fd, 0, SEEK_END), 3);
  close(fd);
  ASSERT_EQ(mp_op_prep_truncate(op, NULL, fd, 3), 0);
  ASSERT_EQ(run(loop, op), MP_EBADF);
  ASSERT_EQ(mp_op_prep_truncate(op, a, MP_INVALID_HANDLE, -1), MP_EINVAL);
  /* mkdtemp: the template filled in, 0700 */
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s/t-", dir);
  ASSERT_EQ(mp_op_prep_mkdtemp(op, prefix), 0);
  ASSERT_EQ(run(loop, op), (int64_t)strlen(prefix) + 6);
  ASSERT(strncmp(mp_op_path_result(op), prefix, strlen(prefix)) == 0);
  ASSERT_EQ(stat(mp_op_path_result(op), &st), 0);
  ASSERT(S_ISDIR(st.st_mode));
  ASSERT_EQ(st.st_mode & 07777, 0700);
  /* tmpfile: read-write, no name */
  ASSERT_EQ(mp_op_prep_tmpfile(op), 0);
  int64_t t = run(loop, op);
  ASSERT_GE(t, 0);
  ASSERT_EQ(fstat((int)t, &st), 0);
  ASSERT_EQ(st.st_nlink, 0);
  ASSERT_EQ(fcntl((int)t, F_GETFL) & O_ACCMODE, O_RDWR);
  ASSERT(fcntl((int)t, F_GETFD) & FD_CLOEXEC);
  close((int)t);
  /* copy: flags name the path a failure concerns */
  ASSERT_EQ(mp_op_prep_copyfile(op, a, b), 0);
  ASSERT_EQ(run(loop, op), 0);
  ASSERT_EQ(stat(b, &st), 0);
  ASSERT_EQ(st.st_size, 3);
  ASSERT_EQ(mp_op_prep_copyfile(op, b, a), 0);
  op->u.fs.flags = 7; /* set by the job */
  ASSERT_EQ(run(loop, op), 0);
  ASSERT_EQ(op->u.fs.flags, 0);
  ASSERT_EQ(mp_op_prep_copyfile(op, "/nonexistent/x", b), 0);
  ASSERT_EQ(run(loop, op), MP_ENOENT);
  ASSERT_EQ(op->u.fs.flags, 0);
  ASSERT_EQ(mp_op_prep_copyfile(op, a, "/nonexistent/x"), 0);
  ASSERT_EQ(run(loop, op), MP_ENOENT);
  ASSERT_EQ(op->u.fs.flags, 1);
  ASSERT_EQ(mp_op_prep_copyfile(op, a, l), 0); /* l links to a */
  ASSERT_EQ(run(loop, op), MP_EINVAL);
  ASSERT_EQ(op->u.fs.flags, 1);
  mp_op_release(op);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

static int nready;
static void count_cb(struct mp_op *op) {
  (void)op;
  nready++;
}

/* SENDFILE on a socketpair: a short send, a wait for room (a RECV on the
 * other end makes it), a range at an offset, the end of the file. */
TEST_IMPL(sendfile_op) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[128];
  int sv[2];
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/f", dir);
  enum { SIZE = 4 << 20 };
  char *data = malloc(SIZE), *got = malloc(SIZE);
  for (int i = 0; i < SIZE; i++) data[i] = (char)(i * 31 + i / 4096);
  int fd = open(p, O_RDWR | O_CREAT, 0600);
  ASSERT_EQ(write(fd, data, SIZE), SIZE);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  struct mp_op *op = mp_op_new(loop, NULL, NULL);
  struct mp_op *rx = mp_op_new(loop, count_cb, NULL);
  int64_t sent = 0, recvd = 0;
  while (recvd < SIZE) {
    nready = 0;
    op->cb = count_cb;
    mp_op_prep_sendfile(op, sv[0], fd, sent, (size_t)(SIZE - sent));
    ASSERT_EQ(mp_op_submit(op), 0);
    mp_op_prep_recv(rx, sv[1], got + recvd, (size_t)(SIZE - recvd));
    ASSERT_EQ(mp_op_submit(rx), 0);
    while (nready < 2) mp_loop_run(loop, MP_RUN_ONCE);
    ASSERT_GT(op->result, 0);
    ASSERT_GT(rx->result, 0);
    sent += op->result;
    recvd += rx->result;
    /* drain what the send put in flight so the next send has room */
    while (recvd < sent) {
      nready = 0;
      mp_op_prep_recv(rx, sv[1], got + recvd, (size_t)(sent - recvd));
      ASSERT_EQ(mp_op_submit(rx), 0);
      while (nready < 1) mp_loop_run(loop, MP_RUN_ONCE);
      ASSERT_GT(rx->result, 0);
      recvd += rx->result;
    }
  }
  ASSERT_EQ(sent, SIZE);
  ASSERT(memcmp(data, got, SIZE) == 0);
  ASSERT_EQ(lseek(fd, 0, SEEK_CUR), SIZE); /* the file's own position */
  /* a range, and the end of the file */
  mp_op_prep_sendfile(op, sv[0], fd, 1000, 10);
  ASSERT_EQ(run(loop, op), 10);
  ASSERT_EQ(read(sv[1], got, 100), 10);
  ASSERT(memcmp(got, data + 1000, 10) == 0);
  mp_op_prep_sendfile(op, sv[0], fd, SIZE, 10);
  ASSERT_EQ(run(loop, op), 0);
  /* a blocking socket (one mp.net.wrap adopted) never blocks the loop:
   * nobody reads, yet each send completes, short, until it is full */
  int bv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, bv), 0);
  int64_t total = 0;
  for (;;) {
    nready = 0;
    op->cb = count_cb;
    mp_op_prep_sendfile(op, bv[0], fd, 0, SIZE);
    ASSERT_EQ(mp_op_submit(op), 0);
    for (int i = 0; i < 50 && !nready; i++) mp_loop_run(loop, MP_RUN_NOWAIT);
    if (!nready) break; /* full: waiting for room, as it should */
    ASSERT_GT(op->result, 0);
    ASSERT_LT(op->result, SIZE);
    total += op->result;
  }
  ASSERT_GT(total, 0);
  close(bv[1]); /* the waiting send ends: EPIPE */
  while (!nready) mp_loop_run(loop, MP_RUN_ONCE);
  ASSERT_EQ(op->result, MP_EPIPE);
  close(bv[0]);
  /* a closed peer: EPIPE, and no SIGPIPE */
  close(sv[1]);
  mp_op_prep_sendfile(op, sv[0], fd, 0, 10);
  ASSERT_EQ(run(loop, op), MP_EPIPE);
  mp_op_prep_sendfile(op, -1, fd, 0, 10);
  ASSERT_NE(mp_op_submit(op), 0);
  mp_op_release(op);
  mp_op_release(rx);
  close(sv[0]);
  close(fd);
  free(data);
  free(got);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

/* Whether the first page of fd is in the page cache (mincore, which,
 * unlike a read, starts no readahead). */
static int page_cached(int fd, off_t off) {
  unsigned char v = 1;
  void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, off);
  if (m == MAP_FAILED) return 1;
  mincore(m, 4096, &v);
  munmap(m, 4096);
  return v & 1;
}

/* SENDFILE of a file not in the page cache: the pool reads the range in
 * (a job's record shows while the op waits) and the bytes arrive as sent; a
 * cancel while the range is read ends the op with MP_ECANCELED and
 * leaves no record behind. Skipped where the cache cannot be dropped. */
TEST_IMPL(sendfile_uncached) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[128];
  int sv[2];
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/cold", dir);
  enum { SIZE = 1 << 20 };
  char *data = malloc(SIZE), *got = malloc(SIZE);
  for (int i = 0; i < SIZE; i++) data[i] = (char)(i * 7 + i / 4096);
  int fd = open(p, O_RDWR | O_CREAT, 0600);
  ASSERT_EQ(write(fd, data, SIZE), SIZE);
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  int sz = SIZE * 2;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  struct mp_loop_stats st0, st;
  mp_loop_stats(loop, &st0);
  for (int round = 0, tries = 0; round < 2; round++) {
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (page_cached(fd, 0)) {
      printf("# the page cache keeps the file here: skipped\n");
      break;
    }
    struct mp_op *op = mp_op_new(loop, count_cb, NULL);
    nready = 0;
    mp_op_prep_sendfile(op, sv[0], fd, 0, 4096 * 3);
    ASSERT_EQ(mp_op_submit(op), 0);
    mp_loop_stats(loop, &st);
    /* read in on the pool, not here: the job's record is out (released
     * on this thread only, when its completion is dispatched). On a busy
     * machine the range may be back in the cache already (sent at once):
     * that round again, a few times. */
    if (st.ops_live == st0.ops_live + 1 && ++tries < 8) {
      while (!nready) mp_loop_run(loop, MP_RUN_ONCE);
      ASSERT_EQ(op->result, 4096 * 3);
      ASSERT_EQ(read(sv[1], got, SIZE), 4096 * 3);
      mp_op_release(op);
      round--;
      continue;
    }
    ASSERT_EQ(st.ops_live, st0.ops_live + 2);
    if (round == 1) mp_op_cancel(op);
    while (!nready) mp_loop_run(loop, MP_RUN_ONCE);
    if (round == 0) {
      ASSERT_EQ(op->result, 4096 * 3);
      ASSERT_EQ(read(sv[1], got, SIZE), 4096 * 3);
      ASSERT(memcmp(got, data, 4096 * 3) == 0);
    } else {
      /* cancelled: before the send (MP_ECANCELED), or too late */
      ASSERT(op->result == MP_ECANCELED || op->result == 4096 * 3);
    }
    mp_op_release(op);
    mp_loop_stats(loop, &st);
    ASSERT_EQ(st.ops_live, st0.ops_live); /* the job's record is back */
  }
  close(sv[0]);
  close(sv[1]);
  close(fd);
  free(data);
  free(got);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}
