/* test-fault.c: transient results (EAGAIN from a non-blocking pipe on
 * io_uring) are retried by the core, and the debug buffer checks catch a
 * released buffer that is still under the kernel. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "task.h"

static int64_t fres[4];
static int nf;

static void fres_cb(struct mp_op *op) {
  fres[nf++] = op->result;
  mp_op_release(op);
}

/* A read on an empty O_NONBLOCK pipe waits for data on every backend (on
 * io_uring the kernel answers -EAGAIN instead of waiting). Cancelling
 * such a wait ends it with ECANCELED. */
TEST_IMPL(nonblocking_pipe_waits) {
  struct mp_loop *loop = test_loop();
  int fds[2];
  char got[8] = {0};
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  nf = 0;
  struct mp_op *op = mp_op_new(loop, fres_cb, NULL);
  mp_op_prep_read(op, fds[0], got, sizeof got - 1, -1);
  ASSERT_EQ(mp_op_submit(op), 0);
  for (int i = 0; i < 5; i++) mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(nf, 0); /* still waiting, not failed with EAGAIN */
  ASSERT_EQ(write(fds[1], "abc", 3), 3);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nf, 1);
  ASSERT_EQ(fres[0], 3);
  ASSERT_EQ(strcmp(got, "abc"), 0);
  op = mp_op_new(loop, fres_cb, NULL);
  mp_op_prep_read(op, fds[0], got, sizeof got - 1, -1);
  ASSERT_EQ(mp_op_submit(op), 0);
  for (int i = 0; i < 5; i++) mp_loop_run(loop, MP_RUN_NOWAIT);
  mp_op_cancel(op);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nf, 2);
  ASSERT_EQ(fres[1], MP_ECANCELED);
  close(fds[0]);
  close(fds[1]);
  CLOSE_LOOP(loop);
  return 0;
}

/* Runs fn in a child with the debug buffer checks on; returns whether it
 * aborted (SIGABRT). */
static int aborts(void (*fn)(void)) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("MOONPORT_DEBUG_BUFFERS", "1", 1);
    fclose(stderr); /* the abort message is expected */
    fn();
    _exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void noop_cb(struct mp_op *op) { (void)op; }

/* Two ops on one buffer: releasing the one that owns it while the other
 * still reads into it is freeing under the kernel. */
static void release_shared_buffer(void) {
  struct mp_loop *loop = test_loop();
  int fds[2];
  if (pipe(fds)) _exit(2);
  struct mp_op *a = mp_op_new(loop, noop_cb, NULL);
  struct mp_op *b = mp_op_new(loop, noop_cb, NULL);
  char *buf = malloc(64);
  a->owned = buf;
  mp_op_prep_read(b, fds[0], buf + 8, 16, -1);
  if (mp_op_submit(b)) _exit(2);
  mp_op_release(a); /* must abort */
}

/* A late write into a released op's memory (what the kernel would do to
 * a buffer freed under it) is found when the memory is finally freed. */
static void write_after_release(void) {
  struct mp_loop *loop = test_loop();
  struct mp_op *a = mp_op_new(loop, noop_cb, NULL);
  char *buf = malloc(64);
  a->owned = buf;
  mp_op_release(a);
  buf[5] = 'k'; /* the quarantine keeps it allocated: no ASan report */
  mp_loop_close(loop); /* must abort */
}

static void clean_release(void) {
  struct mp_loop *loop = test_loop();
  for (int i = 0; i < 100; i++) {
    struct mp_op *a = mp_op_new(loop, noop_cb, NULL);
    a->owned = malloc(64 + (size_t)i);
    mp_op_release(a);
  }
  mp_loop_close(loop);
}

TEST_IMPL(debug_buffers_catch_release_under_kernel) {
  ASSERT(aborts(release_shared_buffer));
  ASSERT(aborts(write_after_release));
  ASSERT(!aborts(clean_release));
  return 0;
}

static int host_done;
static void host_cb(struct mp_op *op) { host_done = 1; (void)op; }

/* A host that steps the loop and sleeps in poll(mp_loop_fd) for
 * mp_loop_timeout: a retry the backend queued while the host asked for
 * the timeout (an injected EAGAIN's readiness poll, an EINTR resubmit) is
 * submitted before the host sleeps, so data already there is never slept
 * through. (With io_uring faults; elsewhere a plain host-loop check.) */
TEST_IMPL(host_step_submits_retries) {
  setenv("MP_FAULT_SEED", "1", 1);
  setenv("MP_FAULT_RATE", "0.7", 1);
  struct mp_loop *loop = test_loop();
  int sv[2], slept = 0;
  char buf[4];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  for (int i = 0; i < 100; i++) {
    ASSERT_EQ(write(sv[1], "x", 1), 1); /* there before the recv */
    host_done = 0;
    struct mp_op *op = mp_op_new(loop, host_cb, NULL);
    mp_op_prep_recv(op, sv[0], buf, 1);
    ASSERT_EQ(mp_op_submit(op), 0);
    while (!host_done) {
      mp_loop_run(loop, MP_RUN_NOWAIT);
      if (host_done) break;
      int t = mp_loop_timeout(loop);
      struct pollfd p = {.fd = mp_loop_fd(loop), .events = POLLIN};
      if (poll(&p, 1, t < 0 || t > 2000 ? 2000 : t) == 0 && t != 0) {
        slept++; /* slept with the data there: the bug */
        while (!host_done) mp_loop_run(loop, MP_RUN_ONCE);
      }
    }
    ASSERT_EQ(op->result, 1);
    mp_op_release(op);
  }
  ASSERT_EQ(slept, 0);
  close(sv[0]);
  close(sv[1]);
  CLOSE_LOOP(loop);
  return 0;
}

static int nbusy;

static void busy_cb(struct mp_op *op) {
  (void)op;
  nbusy++;
}

/* An op that submits again from its completion (a readfile of 64 KiB
 * reads on after its chain's 32 KiB) may find the SQ full and the kernel
 * refusing it (EBUSY with a CQ backlog; injected on io_uring): get_sqe
 * reaps inside the reap. The inner reap must not handle again the CQEs
 * the outer one is handling (a chain counted its steps twice: lost reads,
 * or a completion of an op not in flight). */
TEST_IMPL(reap_inside_reap) {
  enum { N = 20, SIZE = 65536 };
  static struct mp_op *ops[N];
  char dir[] = "/tmp/mp-reap-XXXXXX", path[64];
  ASSERT(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/f", dir);
  char *data = malloc(SIZE);
  ASSERT(data != NULL);
  for (int i = 0; i < SIZE; i++) data[i] = (char)('a' + i % 26);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, data, SIZE), SIZE);
  close(fd);
  setenv("MP_FAULT_BUSY", "5", 1);
  struct mp_loop *loop = test_loop();
  unsetenv("MP_FAULT_BUSY");
  nbusy = 0;
  for (int i = 0; i < N; i++) {
    ops[i] = mp_op_new(loop, busy_cb, NULL);
    ASSERT(ops[i] != NULL);
    ASSERT_EQ(mp_op_prep_readfile(ops[i], path), 0);
    ASSERT_EQ(mp_op_submit(ops[i]), 0);
  }
  while (nbusy < N) mp_loop_run(loop, MP_RUN_ONCE);
  for (int i = 0; i < N; i++) {
    ASSERT_EQ(ops[i]->result, SIZE);
    ASSERT_EQ(memcmp(mp_op_readfile_data(ops[i]), data, SIZE), 0);
    mp_op_release(ops[i]);
  }
  ASSERT_EQ(unlink(path), 0);
  ASSERT_EQ(rmdir(dir), 0);
  free(data);
  CLOSE_LOOP(loop);
  return 0;
}

/* An io_uring_enter that fails for good (a ring made unusable; EBADR:
 * completions dropped) leaves ops whose completions never come: the loop
 * must stop the process with a message, not spin on the refused submit
 * or sleep for ever. Injected (MP_FAULT_ENTER) in a child, which must
 * die of SIGABRT within its alarm and say why on stderr. */
static void enter_cb(struct mp_op *op) { (void)op; }

static int enter_fails(int err, const char *says) {
  int errp[2];
  ASSERT_EQ(pipe(errp), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(errp[1], 2);
    alarm(10); /* a spin or a hang ends as SIGALRM */
    char e[16];
    snprintf(e, sizeof e, "%d", err);
    setenv("MP_FAULT_ENTER", e, 1);
    struct mp_loop *loop = test_loop();
    struct mp_op *op = mp_op_new(loop, enter_cb, NULL);
    /* 3 s: the loop has to enter the kernel to wait (a timer already
     * due when the loop starts, as 1 ms was under load, runs without) */
    mp_op_prep_timer(op, 3000000000u);
    mp_op_submit(op);
    mp_loop_run(loop, MP_RUN_DEFAULT);
    _exit(0);
  }
  close(errp[1]);
  char buf[512];
  ssize_t n, got = 0;
  while ((n = read(errp[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0)
    got += n;
  buf[got] = 0;
  close(errp[0]);
  int status;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT(WIFSIGNALED(status));
  ASSERT_EQ(WTERMSIG(status), SIGABRT);
  ASSERT(strstr(buf, says) != NULL);
  return 0;
}

TEST_IMPL(uring_enter_fails) {
  struct mp_loop *probe = test_loop();
  int uring = strcmp(mp_loop_backend(probe), "io_uring") == 0;
  CLOSE_LOOP(probe);
  if (!uring) return TEST_SKIP;
  ASSERT_EQ(enter_fails(EBADF, "io_uring_enter: Bad file descriptor"), 0);
  ASSERT_EQ(enter_fails(EBADR, "dropped completions"), 0);
  return 0;
}
