/* test-readfile.c: MP_OP_READFILE (issue 16) on every backend: a linked
 * open/read/read chain on a direct descriptor on io_uring, one pool job
 * on epoll. Sizes around the chain's buffers, the failures, special
 * files, cancels, and the direct descriptors given back (more files than
 * the ring has slots, more at once than it has slots). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "task.h"

static int ndone;

static void count_cb(struct mp_op *op) {
  (void)op;
  ndone++;
}

static struct mp_op *start(struct mp_loop *loop, const char *path) {
  struct mp_op *op = mp_op_new(loop, count_cb, NULL);
  ASSERT(op != NULL);
  ASSERT_EQ(mp_op_prep_readfile(op, path), 0);
  ASSERT_EQ(mp_op_submit(op), 0);
  return op;
}

/* Reads path; the op (completed) is the caller's to release. */
static struct mp_op *readfile(struct mp_loop *loop, const char *path) {
  int before = ndone;
  struct mp_op *op = start(loop, path);
  while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
  return op;
}

/* READFILE in the ring (MOONPORT_URING_NOFS=1 sends it to the pool) */
static int is_uring(struct mp_loop *loop) {
  const char *nofs = getenv("MOONPORT_URING_NOFS");
  return strcmp(mp_loop_backend(loop), "io_uring") == 0 &&
         !(nofs && *nofs == '1');
}

static void tmpdir(char *dir) {
  strcpy(dir, "/tmp/mp-rf-XXXXXX");
  ASSERT(mkdtemp(dir) != NULL);
}

static void rm_rf(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ASSERT_EQ(system(cmd), 0);
}

static char *pattern(size_t n) {
  char *p = malloc(n + 1);
  ASSERT(p != NULL);
  for (size_t i = 0; i < n; i++) p[i] = (char)('a' + (i * 7 + i / 251) % 26);
  return p;
}

static void put(const char *path, const char *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, data, n), (long long)n);
  close(fd);
}

TEST_IMPL(readfile_sizes) {
  struct mp_loop *loop = test_loop();
  /* around the chain's two 16 KiB reads, the doubling, and one big */
  static const size_t sizes[] = {0, 1, 4096, 16383, 16384, 16385, 32767,
                                 32768, 32769, 65536, 65537, 1048577,
                                 3000001};
  char dir[64], p[128];
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/f", dir);
  char *data = pattern(3000001);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    put(p, data, sizes[i]);
    struct mp_op *op = readfile(loop, p);
    ASSERT_EQ(op->result, (long long)sizes[i]);
    ASSERT(mp_op_readfile_data(op) != NULL);
    ASSERT_EQ(memcmp(mp_op_readfile_data(op), data, sizes[i]), 0);
    mp_op_release(op);
  }
  free(data);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(readfile_failures) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[128];
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/missing", dir);
  struct mp_op *op = readfile(loop, p);
  ASSERT_EQ(op->result, MP_ENOENT);
  ASSERT(mp_op_readfile_data(op) == NULL);
  mp_op_release(op);
  op = readfile(loop, dir);
  ASSERT_EQ(op->result, MP_EISDIR);
  mp_op_release(op);
  snprintf(p, sizeof p, "%s/f", dir);
  put(p, "x", 1);
  snprintf(p, sizeof p, "%s/f/x", dir);
  op = readfile(loop, p);
  ASSERT_EQ(op->result, MP_ENOTDIR);
  mp_op_release(op);
  if (geteuid() != 0) { /* root reads everything */
    snprintf(p, sizeof p, "%s/f", dir);
    ASSERT_EQ(chmod(p, 0), 0);
    op = readfile(loop, p);
    ASSERT_EQ(op->result, MP_EACCES);
    mp_op_release(op);
  }
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

/* A /proc file says size 0 and has bytes. */
TEST_IMPL(readfile_proc) {
  struct mp_loop *loop = test_loop();
  struct stat st;
  ASSERT_EQ(stat("/proc/self/status", &st), 0);
  ASSERT_EQ(st.st_size, 0);
  struct mp_op *op = readfile(loop, "/proc/self/status");
  ASSERT_GT(op->result, 10);
  ASSERT_EQ(memcmp(mp_op_readfile_data(op), "Name:", 5), 0);
  ASSERT(memchr(mp_op_readfile_data(op), 0, (size_t)op->result) == NULL);
  mp_op_release(op);
  CLOSE_LOOP(loop);
  return 0;
}

static int timer_done;

static void timer_cb(struct mp_op *op) {
  (void)op;
  timer_done = 1;
}

/* Runs the loop for ms milliseconds. */
static void run_ms(struct mp_loop *loop, int ms) {
  struct mp_op *t = mp_op_new(loop, timer_cb, NULL);
  mp_op_prep_timer(t, (int64_t)ms * 1000000);
  timer_done = 0;
  ASSERT_EQ(mp_op_submit(t), 0);
  while (!timer_done) mp_loop_run(loop, MP_RUN_ONCE);
  mp_op_release(t);
}

/* A FIFO with a writer: io_uring reads it in the ring until the last
 * writer is gone; the pool hands it back open and unread. */
TEST_IMPL(readfile_fifo) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[128];
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/fifo", dir);
  ASSERT_EQ(mkfifo(p, 0600), 0);
  int hold = open(p, O_RDWR | O_NONBLOCK); /* a writer until closed */
  ASSERT_GE(hold, 0);
  ASSERT_EQ(write(hold, "hello", 5), 5);
  int before = ndone;
  struct mp_op *op = start(loop, p);
  run_ms(loop, 50);
  if (is_uring(loop)) {
    ASSERT_EQ(ndone, before); /* it waits for the writer's end */
    int w = open(p, O_WRONLY | O_NONBLOCK);
    ASSERT_GE(w, 0);
    close(hold);
    ASSERT_EQ(write(w, " world", 6), 6);
    close(w);
    while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
    ASSERT_EQ(op->result, 11);
    ASSERT_EQ(memcmp(mp_op_readfile_data(op), "hello world", 11), 0);
    ASSERT_EQ(op->handle, MP_INVALID_HANDLE);
  } else {
    ASSERT_EQ(ndone, before + 1);
    ASSERT_EQ(op->result, MP_EAGAIN);
    struct stat st;
    ASSERT_EQ(fstat(op->handle, &st), 0);
    ASSERT(S_ISFIFO(st.st_mode));
    char buf[8];
    ASSERT_EQ(read(op->handle, buf, sizeof buf), 5); /* not read before */
    close(op->handle);
    close(hold);
  }
  mp_op_release(op);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

/* A cancelled READFILE waiting on a FIFO's writer ends, and closes the
 * FIFO: the writer then has no reader (EPIPE). */
TEST_IMPL(readfile_cancel) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[128], f[128];
  signal(SIGPIPE, SIG_IGN);
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/fifo", dir);
  ASSERT_EQ(mkfifo(p, 0600), 0);
  int hold = open(p, O_RDWR | O_NONBLOCK);
  ASSERT_GE(hold, 0);
  int before = ndone;
  struct mp_op *op = start(loop, p);
  run_ms(loop, 30);
  if (is_uring(loop)) {
    int w = open(p, O_WRONLY | O_NONBLOCK);
    ASSERT_GE(w, 0);
    close(hold);
    ASSERT_EQ(ndone, before);
    mp_op_cancel(op);
    while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
    ASSERT_EQ(op->result, MP_ECANCELED);
    mp_op_release(op);
    run_ms(loop, 10); /* the queued close reaches the kernel */
    ASSERT_EQ(write(w, "x", 1), -1);
    ASSERT_EQ(errno, EPIPE);
    close(w);
  } else {
    ASSERT_EQ(op->result, MP_EAGAIN);
    close(op->handle);
    mp_op_release(op);
    close(hold);
  }
  /* cancelled at once, a regular file: cancelled or read whole */
  snprintf(f, sizeof f, "%s/f", dir);
  put(f, "data", 4);
  for (int i = 0; i < 50; i++) {
    before = ndone;
    op = start(loop, f);
    mp_op_cancel(op);
    while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
    ASSERT(op->result == MP_ECANCELED || op->result == 4);
    mp_op_release(op);
  }
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

/* Slots are given back: more files one after another than the ring has
 * slots all read in the ring (the pool never starts); more at once than
 * it has slots are all read, the rest on the pool. */
TEST_IMPL(readfile_slots) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[128];
  enum { SEQ = 2500, AT_ONCE = 1500 };
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/f", dir);
  put(p, "12345", 5);
  for (int i = 0; i < SEQ; i++) {
    struct mp_op *op = readfile(loop, p);
    ASSERT_EQ(op->result, 5);
    mp_op_release(op);
  }
  struct mp_loop_stats st;
  mp_loop_stats(loop, &st);
  if (is_uring(loop)) ASSERT_EQ(st.pool_threads, 0);
  static struct mp_op *ops[AT_ONCE];
  int before = ndone;
  for (int i = 0; i < AT_ONCE; i++) ops[i] = start(loop, p);
  while (ndone < before + AT_ONCE) mp_loop_run(loop, MP_RUN_ONCE);
  for (int i = 0; i < AT_ONCE; i++) {
    ASSERT_EQ(ops[i]->result, 5);
    ASSERT_EQ(memcmp(mp_op_readfile_data(ops[i]), "12345", 5), 0);
    mp_op_release(ops[i]);
  }
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

/* A terminal (a pty's other side): non-blocking reads answer EAGAIN
 * until a line comes; io_uring's chain goes to io-wq, then polls, and
 * reads until the end-of-file character. The pool hands it back. */
TEST_IMPL(readfile_tty) {
  struct mp_loop *loop = test_loop();
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0) return TEST_SKIP; /* no ptys here */
  ASSERT_EQ(grantpt(m), 0);
  ASSERT_EQ(unlockpt(m), 0);
  char name[128];
  ASSERT_EQ(ptsname_r(m, name, sizeof name), 0);
  int before = ndone;
  struct mp_op *op = start(loop, name);
  run_ms(loop, 50);
  if (is_uring(loop)) {
    ASSERT_EQ(ndone, before); /* waiting for a line */
    ASSERT_EQ(write(m, "hello\n", 6), 6);
    run_ms(loop, 50);
    ASSERT_EQ(ndone, before); /* and for the end */
    ASSERT_EQ(write(m, "\x04", 1), 1); /* ^D at a line's start: EOF */
    while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
    ASSERT_EQ(op->result, 6);
    ASSERT_EQ(memcmp(mp_op_readfile_data(op), "hello\n", 6), 0);
  } else {
    ASSERT_EQ(ndone, before + 1);
    ASSERT_EQ(op->result, MP_EAGAIN);
    ASSERT(isatty(op->handle));
    close(op->handle);
  }
  mp_op_release(op);
  close(m);
  CLOSE_LOOP(loop);
  return 0;
}

/* Refuses the slot table's allocation (RF_SLOTS ints, fewer under a low
 * descriptor limit): the first READFILE goes to the pool. */
static size_t refuse_size;

static int refuse_table(void *ud, size_t size) {
  (void)ud;
  return size == refuse_size;
}

/* An op submitted again (mp.h: "or submits it again") after a pool job
 * read it must not keep the pool's buffer, sized to the file then, as
 * the ring chain's 32 KiB: the file grew, and the chain's reads would
 * run past it. */
TEST_IMPL(readfile_pool_then_ring) {
  struct mp_loop *loop = test_loop();
  struct rlimit rl;
  char dir[64], p[128];
  size_t n = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur / 2 < n)
    n = (size_t)(rl.rlim_cur / 2);
  refuse_size = n * sizeof(int);
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/f", dir);
  put(p, "12345", 5);
  struct mp_op *op = mp_op_new(loop, count_cb, NULL);
  ASSERT(op != NULL);
  ASSERT_EQ(mp_op_prep_readfile(op, p), 0);
  int before = ndone;
  mp_loop_set_alloc_fail(loop, refuse_table, NULL);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_set_alloc_fail(loop, NULL, NULL);
  while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
  ASSERT_EQ(op->result, 5);
  /* the file grows; the same op again (the table now registers) */
  enum { BIG = 40000 };
  char *data = pattern(BIG);
  put(p, data, BIG);
  before = ndone;
  ASSERT_EQ(mp_op_submit(op), 0);
  while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
  ASSERT_EQ(op->result, BIG);
  ASSERT_EQ(memcmp(mp_op_readfile_data(op), data, BIG), 0);
  mp_op_release(op);
  free(data);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

/* Runs the loop until the op count reaches want or ms pass. */
static void run_until(struct mp_loop *loop, int want, int ms) {
  struct mp_op *t = mp_op_new(loop, timer_cb, NULL);
  mp_op_prep_timer(t, (int64_t)ms * 1000000);
  timer_done = 0;
  ASSERT_EQ(mp_op_submit(t), 0);
  while (!timer_done && ndone < want) mp_loop_run(loop, MP_RUN_ONCE);
  if (!timer_done) {
    mp_op_cancel(t);
    while (!timer_done) mp_loop_run(loop, MP_RUN_ONCE);
  }
  mp_op_release(t);
}

/* Cancelled in the turn that started it (a task cancelled by another in
 * the same scheduler pass): a FIFO whose writer is there but silent.
 * The cancel must not be lost while the chain's reads are not issued
 * yet (they would then wait for data nobody sends). */
TEST_IMPL(readfile_cancel_same_turn) {
  struct mp_loop *loop = test_loop();
  char dir[64], p[128];
  signal(SIGPIPE, SIG_IGN);
  tmpdir(dir);
  snprintf(p, sizeof p, "%s/fifo", dir);
  ASSERT_EQ(mkfifo(p, 0600), 0);
  int hold = open(p, O_RDWR | O_NONBLOCK); /* a writer, silent */
  ASSERT_GE(hold, 0);
  for (int i = 0; i < 3; i++) {
    int before = ndone;
    struct mp_op *op = start(loop, p);
    mp_op_cancel(op);
    run_until(loop, before + 1, 2000);
    int done = ndone == before + 1;
    if (!done) { /* unblock it before failing: no op left in flight */
      close(hold);
      hold = -1;
      while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
    }
    ASSERT(done);
    ASSERT(op->result == MP_ECANCELED || op->result == MP_EAGAIN);
    if (op->result == MP_EAGAIN) close(op->handle); /* the pool's */
    mp_op_release(op);
  }
  close(hold);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}

/* Submitted again after a pool job handed a FIFO back (and the caller
 * closed it): the handle is an output, not the directory a relative
 * path is opened in. (The pool's path: io_uring reads FIFOs itself.) */
TEST_IMPL(readfile_again_after_handback) {
  struct mp_loop *loop = test_loop();
  char dir[64], cwd[512];
  if (is_uring(loop)) {
    CLOSE_LOOP(loop);
    return TEST_SKIP;
  }
  tmpdir(dir);
  ASSERT(getcwd(cwd, sizeof cwd) != NULL);
  ASSERT_EQ(chdir(dir), 0);
  ASSERT_EQ(mkfifo("fifo", 0600), 0);
  int hold = open("fifo", O_RDWR | O_NONBLOCK); /* a writer */
  ASSERT_GE(hold, 0);
  struct mp_op *op = readfile(loop, "fifo");
  ASSERT_EQ(op->result, MP_EAGAIN); /* handed back */
  ASSERT(op->handle != MP_INVALID_HANDLE);
  close(op->handle);
  int before = ndone;
  ASSERT_EQ(mp_op_submit(op), 0);
  while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
  ASSERT_EQ(op->result, MP_EAGAIN); /* not EBADF (the closed handle) */
  ASSERT(op->handle != MP_INVALID_HANDLE);
  close(op->handle);
  mp_op_release(op);
  close(hold);
  ASSERT_EQ(chdir(cwd), 0);
  rm_rf(dir);
  CLOSE_LOOP(loop);
  return 0;
}
