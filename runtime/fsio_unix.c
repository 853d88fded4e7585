/* fsio_unix.c: open files on Unix: the synchronous mp_os_* calls on a
 * descriptor (mp_os.h: close, fstat, seek, pwrite, the non-blocking
 * pread, modes) and SENDFILE, which both backends attempt once the socket
 * is writable, with its pool job that reads a cold range in first. The
 * ops that name a file by its path are fs_unix.c's. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mp_internal.h"
#include "mp_os.h"

static int err_of(int e) { return mp_err_from_errno(e); }

int mp_os_close(mp_handle_t h) {
  if (close(h) < 0 && errno != EINTR) return err_of(errno);
  return 0;
}

int mp_os_fstat(mp_handle_t h, struct mp_stat *st) {
  struct stat s;
  if (fstat(h, &s) < 0) return err_of(errno);
  mp__stat_from_stat(st, &s);
  return 0;
}

int64_t mp_os_seek(mp_handle_t h, int64_t off, int whence) {
  int w = whence == MP_SEEK_SET ? SEEK_SET
        : whence == MP_SEEK_CUR ? SEEK_CUR : SEEK_END;
  off_t r = lseek(h, (off_t)off, w);
  return r < 0 ? err_of(errno) : (int64_t)r;
}

int64_t mp_os_pwrite(mp_handle_t h, const void *buf, size_t len,
                     int64_t off) {
  ssize_t r;
  do r = off < 0 ? write(h, buf, len) : pwrite(h, buf, len, (off_t)off);
  while (r < 0 && errno == EINTR);
  return r < 0 ? err_of(errno) : (int64_t)r;
}

int64_t mp_os_pread_nowait(mp_handle_t h, void *buf, size_t len,
                           int64_t off) {
#ifdef RWF_NOWAIT
  struct iovec v = {buf, len};
  ssize_t r;
  do r = preadv2(h, &v, 1, (off_t)off, RWF_NOWAIT);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return (int64_t)r;
  /* ENOSYS: a kernel before preadv2 (4.6); EINVAL: before RWF_NOWAIT */
  return errno == ENOSYS || errno == EINVAL ? MP_EOPNOTSUPP : err_of(errno);
#else
  (void)h, (void)buf, (void)len, (void)off;
  return MP_EOPNOTSUPP;
#endif
}

int mp_os_set_nonblock(mp_handle_t h, int on) {
  /* FIONBIO: one syscall that touches O_NONBLOCK only (F_GETFL + F_SETFL
   * would be two, on every open) */
  return ioctl(h, FIONBIO, &on) < 0 ? err_of(errno) : 0;
}

int mp_os_isatty(mp_handle_t h) { return isatty(h) ? 1 : 0; }

mp_handle_t mp_os_stdhandle(int which) { return which; }

int mp_os_handle_mode(mp_handle_t h) {
  int fl = fcntl(h, F_GETFL);
  if (fl < 0) return err_of(errno);
  int acc = fl & O_ACCMODE;
  return (acc == O_WRONLY ? MP_O_WRONLY : acc == O_RDWR ? MP_O_RDWR
                                                          : MP_O_RDONLY) |
         (fl & O_APPEND ? MP_O_APPEND : 0);
}

int mp_os_set_append(mp_handle_t h) {
  int fl = fcntl(h, F_GETFL);
  if (fl < 0 || fcntl(h, F_SETFL, fl | O_APPEND) < 0) return err_of(errno);
  return 0;
}

/* sendfile(2) cannot be told MSG_NOSIGNAL: SIGPIPE is blocked around it
 * on this thread, and one it raised is taken back before the mask is
 * restored. A file sendfile cannot read (EINVAL) goes through a buffer:
 * pread leaves the file as it is, so bytes the socket did not take are
 * simply not counted. Nor MSG_DONTWAIT: a blocking descriptor (adopted
 * by mp.net.wrap, whose mode is not ours to change) is sent to only when
 * writable, and 4 KiB at most, what a writable socket or pipe takes
 * without waiting (as lstream.c cuts writes to a blocking pipe). */
/* The most one call sends from the page cache, and after a range was
 * read in on the pool (smaller: the first bytes go out sooner). */
enum { SF_SPAN = 16 << 20, SF_WARM = 4 << 20 };

/* Whether the file's page holding off is in the page cache: one byte
 * read with RWF_NOWAIT, which never waits for the disk. A filesystem
 * that cannot tell (EOPNOTSUPP) says yes: sendfile then waits, as it
 * always did there. */
static int cached_at(int fd, int64_t off) {
  char b;
  struct iovec v = {&b, 1};
  ssize_t n;
  do n = preadv2(fd, &v, 1, (off_t)off, RWF_NOWAIT);
  while (n < 0 && errno == EINTR);
  return n >= 0 || errno != EAGAIN;
}

int64_t mp__sendfile_try(struct mp_op *op) {
  sigset_t pipe_set, old, pending;
  off_t off = (off_t)op->u.sf.off;
  size_t len = op->u.sf.len > SF_SPAN ? SF_SPAN : op->u.sf.len;
  ssize_t n;
  int e, fl = fcntl(op->handle, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) {
    struct pollfd p = {.fd = op->handle, .events = POLLOUT};
    if (poll(&p, 1, 0) == 0) return MP_EAGAIN;
    if (len > 4096) len = 4096;
  }
  /* The range's first and last pages stand for it (readahead fills
   * ranges): missing, the pool reads it in first (mp__sendfile_run). */
  if (op->u.sf.warmed) {
    op->u.sf.warmed = 0;
    if (len > SF_WARM) len = SF_WARM;
  } else if (len && (!cached_at(op->u.sf.from, off) ||
                   !cached_at(op->u.sf.from, off + (off_t)len - 1)))
    return MP__ECOLD;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  int had = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
  do n = sendfile(op->handle, op->u.sf.from, &off, len);
  while (n < 0 && errno == EINTR);
  e = errno;
  if (n < 0 && (e == EINVAL || e == ENOSYS || e == EOPNOTSUPP)) {
    char buf[32768];
    n = pread(op->u.sf.from, buf, len < sizeof buf ? len : sizeof buf,
              (off_t)op->u.sf.off);
    if (n > 0) n = send(op->handle, buf, (size_t)n,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
    e = errno;
  }
  if (n < 0 && e == EPIPE && !had) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {}
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (n >= 0) return n;
  if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) return MP_EAGAIN;
  return err_of(e);
}

/* Reading a range into the page cache on the pool: what one call of
 * mp__sendfile_try sends next. Errors are left to sendfile to report. */
struct sf_warm {
  int fd;
  int64_t off;
  size_t len;
};

static void warm_fn(struct mp_op *w) {
  struct sf_warm *j = w->u.work.arg;
  char *buf = malloc(1 << 17);
  for (size_t done = 0; buf && done < j->len;) {
    size_t want = j->len - done < (1 << 17) ? j->len - done : (1 << 17);
    ssize_t n = pread(j->fd, buf, want, (off_t)(j->off + (int64_t)done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += (size_t)n;
  }
  free(buf);
  w->result = 0;
}

/* Back on the loop's thread: the op goes to its backend again (a cancel
 * that came meanwhile ends it). */
static void warm_done(struct mp_op *w) {
  struct mp_op *op = w->data;
  struct mp_loop *loop = w->loop;
  mp_op_release(w);
  op->u.sf.warm = NULL;
  if (op->flags & MP__F_CANCEL) {
    mp__op_complete(loop, op, MP_ECANCELED);
    return;
  }
  op->u.sf.warmed = 1;
  int r = loop->backend->submit(loop, op);
  if (r < 0) mp__op_complete(loop, op, r);
}

static int warm_start(struct mp_op *op) {
  struct mp_loop *loop = op->loop;
  struct mp_op *w = mp_op_new(loop, warm_done, op);
  struct sf_warm *j = w ? mp_loop_malloc(loop, sizeof *j) : NULL;
  if (!j) {
    if (w) mp_op_release(w);
    return MP_ENOMEM;
  }
  j->fd = op->u.sf.from;
  j->off = op->u.sf.off;
  j->len = op->u.sf.len > SF_WARM ? SF_WARM : op->u.sf.len;
  mp_op_own(w, j, NULL);
  mp_op_prep_work(w, warm_fn, j);
  int r = mp_op_submit(w);
  if (r < 0) {
    mp_op_release(w);
    return r;
  }
  op->u.sf.warm = w;
  return 0;
}

int64_t mp__sendfile_run(struct mp_op *op) {
  int64_t r = mp__sendfile_try(op);
  if (r != MP__ECOLD) return r;
  if (warm_start(op) == 0) return MP__EWARMING;
  op->u.sf.warmed = 1; /* no job: send as before, waiting for the disk */
  return mp__sendfile_try(op);
}

int mp__sendfile_cancel(struct mp_op *op) {
  if (op->kind != MP_OP_SENDFILE || !op->u.sf.warm) return 0;
  mp_op_cancel(op->u.sf.warm);
  return 1;
}
