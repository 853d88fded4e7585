/* test-io.c: read/write/socket ops on both backends, cancellation order,
 * and the in-flight buffer registry. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "task.h"

static int64_t res[8];
static int nres;

static void res_cb(struct mp_op *op) {
  res[nres++] = op->result;
  mp_op_release(op);
}

static struct mp_op *read_op(struct mp_loop *loop, int fd, size_t len,
                             int64_t off) {
  struct mp_op *op = mp_op_new(loop, res_cb, NULL);
  char *buf = calloc(1, len + 1);
  op->owned = buf; /* the op owns the buffer the kernel writes */
  mp_op_prep_read(op, fd, buf, len, off);
  return op;
}

TEST_IMPL(pipe_read_write) {
  struct mp_loop *loop = test_loop();
  int fds[2];
  char got[16] = {0};
  ASSERT_EQ(pipe(fds), 0);
  nres = 0;
  struct mp_op *rd = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_read(rd, fds[0], got, sizeof got - 1, -1);
  ASSERT_EQ(mp_op_submit(rd), 0);
  struct mp_op *wr = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_write(wr, fds[1], "hello", 5, -1);
  ASSERT_EQ(mp_op_submit(wr), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 2);
  ASSERT(res[0] == 5 && res[1] == 5);
  ASSERT_EQ(strcmp(got, "hello"), 0);
  /* EOF: read returns 0 once the writer is closed. */
  close(fds[1]);
  mp_op_submit(read_op(loop, fds[0], 8, -1));
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[2], 0);
  close(fds[0]);
  CLOSE_LOOP(loop);
  return 0;
}

/* A read on an empty pipe, cancelled: one completion, ECANCELED, and the
 * op (with its buffer) is released only then. */
TEST_IMPL(pipe_read_cancel) {
  struct mp_loop *loop = test_loop();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  nres = 0;
  struct mp_op *op = read_op(loop, fds[0], 64, -1);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(nres, 0);
  mp_op_cancel(op);
  ASSERT(mp_op_inflight(op)); /* cancel is a request */
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 1);
  ASSERT_EQ(res[0], MP_ECANCELED);
  /* The pipe is still usable afterwards. */
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  mp_op_submit(read_op(loop, fds[0], 64, -1));
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[1], 1);
  close(fds[0]);
  close(fds[1]);
  CLOSE_LOOP(loop);
  return 0;
}

/* Data arrives before the cancel is processed: exactly one outcome, the
 * data, never both or neither. */
TEST_IMPL(pipe_cancel_after_data) {
  struct mp_loop *loop = test_loop();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  for (int round = 0; round < 200; round++) {
    nres = 0;
    struct mp_op *op = read_op(loop, fds[0], 64, -1);
    ASSERT_EQ(mp_op_submit(op), 0);
    mp_loop_run(loop, MP_RUN_NOWAIT);
    ASSERT_EQ(write(fds[1], "ab", 2), 2);
    if (round % 2) mp_loop_run(loop, MP_RUN_NOWAIT);
    mp_op_cancel(op);
    mp_loop_run(loop, MP_RUN_DEFAULT);
    ASSERT_EQ(nres, 1);
    if (res[0] == MP_ECANCELED) { /* the bytes are still in the pipe */
      char b[2];
      ASSERT_EQ(read(fds[0], b, 2), 2);
    } else {
      ASSERT_EQ(res[0], 2);
    }
  }
  close(fds[0]);
  close(fds[1]);
  CLOSE_LOOP(loop);
  return 0;
}

static int64_t open_res = 1;
static void open_cb(struct mp_op *op) {
  open_res = op->result;
  mp_op_release(op);
}

/* A blocking open (a FIFO's writing end, no reader) cancelled completes
 * with ECANCELED, or with its descriptor where the open cannot be
 * interrupted (a pool thread: it ends when a reader comes) - never with
 * a kernel-internal code (io-wq leaked -ERESTARTSYS, 512). */
TEST_IMPL(open_fifo_cancel) {
  struct mp_loop *loop = test_loop();
  char dir[] = "/tmp/mp-test-XXXXXX", fifo[64];
  ASSERT(mkdtemp(dir) != NULL);
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  ASSERT_EQ(mkfifo(fifo, 0600), 0);
  nres = 0;
  struct mp_op *op = mp_op_new(loop, open_cb, NULL);
  /* O_CREAT: io_uring cannot try it inline, a worker blocks in it */
  ASSERT_EQ(mp_op_prep_open(op, fifo, MP_O_WRONLY | MP_O_CREAT, 0600), 0);
  ASSERT_EQ(mp_op_submit(op), 0);
  struct mp_op *t = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_timer(t, 50 * 1000000);
  ASSERT_EQ(mp_op_submit(t), 0);
  while (nres < 1) mp_loop_run(loop, MP_RUN_ONCE);
  ASSERT_EQ(open_res, 1); /* still blocked */
  mp_op_cancel(op);
  t = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_timer(t, 100 * 1000000);
  ASSERT_EQ(mp_op_submit(t), 0);
  while (nres < 2) mp_loop_run(loop, MP_RUN_ONCE);
  int rfd = open(fifo, O_RDONLY | O_NONBLOCK); /* frees a pool thread */
  ASSERT_GE(rfd, 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT(open_res == MP_ECANCELED || open_res >= 0);
  if (open_res >= 0) close((int)open_res);
  close(rfd);
  unlink(fifo);
  rmdir(dir);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(file_pread_pwrite) {
  struct mp_loop *loop = test_loop();
  char path[] = "/tmp/mp-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  nres = 0;
  struct mp_op *w = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_write(w, fd, "0123456789", 10, 5000000000LL); /* > 4 GiB */
  ASSERT_EQ(mp_op_submit(w), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], 10);
  struct mp_op *r = read_op(loop, fd, 4, 5000000003LL);
  char *buf = r->owned;
  r->owned = NULL;
  ASSERT_EQ(mp_op_submit(r), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[1], 4);
  ASSERT_EQ(memcmp(buf, "3456", 4), 0);
  free(buf);
  /* Reading past the end returns 0. */
  mp_op_submit(read_op(loop, fd, 4, 6000000000LL));
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[2], 0);
  close(fd);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(socket_ops) {
  struct mp_loop *loop = test_loop();
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  ASSERT_EQ(listen(lfd, 8), 0);
  ASSERT_EQ(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
  nres = 0;
  struct mp_op *acc = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_accept(acc, lfd);
  ASSERT_EQ(mp_op_submit(acc), 0);
  int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct mp_op *con = mp_op_new(loop, res_cb, NULL);
  struct mp_addr to;
  ASSERT_EQ(mp_addr_ip(&to, "127.0.0.1", ntohs(sa.sin_port)), 0);
  ASSERT_EQ(mp_op_prep_connect(con, cfd, &to), 0);
  ASSERT_EQ(mp_op_submit(con), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 2);
  int afd = (int)(res[0] >= 0 ? res[0] : res[1]);
  ASSERT_GE(afd, 0);
  ASSERT_EQ(res[0] >= 0 ? res[1] : res[0], 0);
  /* send then recv; then a reset peer: send fails with EPIPE/ECONNRESET and
   * never raises SIGPIPE (the default action would kill this test). */
  struct mp_op *s = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_send(s, cfd, "ping", 4);
  mp_op_submit(s);
  struct mp_op *r = mp_op_new(loop, res_cb, NULL);
  char *buf = calloc(1, 16);
  r->owned = buf;
  mp_op_prep_recv(r, afd, buf, 16);
  mp_op_submit(r);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT(res[2] == 4 && res[3] == 4);
  struct linger lg = {1, 0};
  setsockopt(afd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(afd);
  for (int i = 0; i < 3; i++) {
    s = mp_op_new(loop, res_cb, NULL);
    mp_op_prep_send(s, cfd, "pong", 4);
    mp_op_submit(s);
    mp_loop_run(loop, MP_RUN_DEFAULT);
    nres = 4;
  }
  ASSERT(res[4] == MP_EPIPE || res[4] == MP_ECONNRESET);
  nres = 0;
  /* Connection refused: nobody listens on the old port any more. */
  close(lfd);
  close(cfd);
  cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  con = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_connect(con, cfd, &to);
  mp_op_submit(con);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], MP_ECONNREFUSED);
  close(cfd);
  CLOSE_LOOP(loop);
  return 0;
}

/* A receive waits on a fresh socketpair whose descriptor number was
 * used before (closed behind the loop's back, as streams close); data
 * written then must complete it within the timer's bound. */
static void recv_on_reused_fd(struct mp_loop *loop, int expect_fd) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       0, sv), 0);
  ASSERT_EQ(sv[0], expect_fd); /* the lowest free number again */
  nres = 0;
  char *buf = calloc(1, 16);
  struct mp_op *r = mp_op_new(loop, res_cb, NULL);
  r->owned = buf;
  mp_op_prep_recv(r, sv[0], buf, 16);
  ASSERT_EQ(mp_op_submit(r), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT); /* nothing to read: it waits */
  ASSERT_EQ(nres, 0);
  ASSERT_EQ(write(sv[1], "y", 1), 1);
  struct mp_op *t = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_timer(t, 5000000000LL);
  ASSERT_EQ(mp_op_submit(t), 0);
  mp_loop_run(loop, MP_RUN_ONCE);
  ASSERT_EQ(nres, 1);
  ASSERT_EQ(res[0], 1); /* the receive, not the timer */
  mp_op_cancel(t);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  close(sv[0]);
  close(sv[1]);
}

/* epoll keeps a descriptor in its set between waits (one-shot, re-armed
 * per wait): a number closed directly and reused, after a completed or a
 * cancelled receive, must be armed again. */
TEST_IMPL(socket_fd_reuse) {
  struct mp_loop *loop = test_loop();
  int sv[2];
  char *buf;
  struct mp_op *r;
  /* a receive that completed: the descriptor stays in the set */
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       0, sv), 0);
  int fd = sv[0];
  nres = 0;
  buf = calloc(1, 16);
  r = mp_op_new(loop, res_cb, NULL);
  r->owned = buf;
  mp_op_prep_recv(r, sv[0], buf, 16);
  ASSERT_EQ(mp_op_submit(r), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(write(sv[1], "x", 1), 1);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 1);
  ASSERT_EQ(res[0], 1);
  close(sv[0]);
  close(sv[1]);
  recv_on_reused_fd(loop, fd);
  /* a receive that was cancelled while it waited */
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       0, sv), 0);
  ASSERT_EQ(sv[0], fd);
  nres = 0;
  buf = calloc(1, 16);
  r = mp_op_new(loop, res_cb, NULL);
  r->owned = buf;
  mp_op_prep_recv(r, sv[0], buf, 16);
  ASSERT_EQ(mp_op_submit(r), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  mp_op_cancel(r);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 1);
  ASSERT_EQ(res[0], MP_ECANCELED);
  close(sv[0]);
  close(sv[1]);
  recv_on_reused_fd(loop, fd);
  CLOSE_LOOP(loop);
  return 0;
}

static char buf_for_bad_fd[8];

TEST_IMPL(bad_fd) {
  struct mp_loop *loop = test_loop();
  nres = 0;
  struct mp_op *op = read_op(loop, -1, 8, -1);
  ASSERT_EQ(mp_op_submit(op), MP_EBADF); /* not started: still ours */
  mp_op_release(op);
  /* datagram ops too (epoll looped forever sizing its table for -1) */
  op = mp_op_new(loop, NULL, NULL);
  ASSERT_EQ(mp_op_prep_sendto(op, -1, "x", 1, NULL), 0);
  ASSERT_EQ(mp_op_submit(op), MP_EBADF);
  ASSERT_EQ(mp_op_prep_recvfrom(op, -1, buf_for_bad_fd, 8), 0);
  ASSERT_EQ(mp_op_submit(op), MP_EBADF);
  mp_op_release(op);
  int fd = open("/dev/null", O_RDONLY);
  close(fd); /* a closed descriptor: the op completes with EBADF */
  op = read_op(loop, fd, 8, -1);
  int r = mp_op_submit(op);
  if (r == 0) {
    mp_loop_run(loop, MP_RUN_DEFAULT);
    ASSERT_EQ(res[0], MP_EBADF);
  } else {
    ASSERT_EQ(r, MP_EBADF);
    mp_op_release(op);
  }
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(buffer_registry) {
  struct mp_loop *loop = test_loop();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  nres = 0;
  struct mp_op *op = read_op(loop, fds[0], 32, -1);
  char *buf = op->owned;
  ASSERT_EQ(mp_op_submit(op), 0);
  ASSERT(mp_loop_buffer_inflight(loop, buf + 10, 1));
  ASSERT(mp_loop_buffer_inflight(loop, buf - 4, 5));
  ASSERT(!mp_loop_buffer_inflight(loop, buf + 32, 8));
  ASSERT(!mp_loop_buffer_inflight(loop, buf - 8, 8));
  ASSERT_EQ(write(fds[1], "z", 1), 1);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], 1);
  close(fds[0]);
  close(fds[1]);
  CLOSE_LOOP(loop);
  return 0;
}

static int nmany, many_bad;

static void many_cb(struct mp_op *op) {
  if (op->result != 1) many_bad++;
  nmany++;
  mp_op_release(op);
}

/* More ops in one turn than the SQ (256) and the CQ (4096) hold: the
 * extra SQEs go in batches and the CQ overflow backlog is flushed; each op
 * completes exactly once. */
TEST_IMPL(many_ops_cq_overflow) {
  struct mp_loop *loop = test_loop();
  enum { N = 10000 };
  int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  nmany = many_bad = 0;
  for (int i = 0; i < N; i++) {
    struct mp_op *op = mp_op_new(loop, many_cb, NULL);
    mp_op_prep_write(op, fd, "x", 1, -1);
    ASSERT_EQ(mp_op_submit(op), 0);
  }
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nmany, N);
  ASSERT_EQ(many_bad, 0);
  close(fd);
  CLOSE_LOOP(loop);
  return 0;
}

/* CVE-2024-22017 class: a loop created as root, then the process drops to
 * an unprivileged user; opening a root-only file must fail with EACCES on
 * every backend (an SQPOLL ring would open it with root's credentials). */
TEST_IMPL(credentials_drop) {
  char path[] = "/tmp/mp-secret-XXXXXX";
  if (geteuid() != 0) return TEST_SKIP;
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fchmod(fd, 0600), 0);
  close(fd);
  pid_t pid = fork();
  if (pid == 0) { /* the child drops to nobody; the parent cleans up */
    struct mp_loop *loop = test_loop();
    if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
      _exit(2);
    nres = 0;
    struct mp_op *op = mp_op_new(loop, res_cb, NULL);
    if (mp_op_prep_open(op, path, MP_O_RDONLY, 0) < 0 ||
        mp_op_submit(op) < 0)
      _exit(3);
    mp_loop_run(loop, MP_RUN_DEFAULT);
    _exit(nres == 1 && res[0] == MP_EACCES && mp_loop_close(loop) == 0 ? 0
                                                                      : 1);
  }
  int status;
  waitpid(pid, &status, 0);
  unlink(path);
  ASSERT(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  return 0;
}

/* A receive hinted with mp_op_poll_first (read()'s next fill after one
 * that emptied the socket: epoll waits for readiness instead of trying)
 * gets bytes that are already there, waits for bytes that are not, ends
 * at EOF, and cancels like any receive; a hint on another kind does
 * nothing. */
static struct mp_op *recv_op(struct mp_loop *loop, int fd, char *buf,
                             size_t len) {
  struct mp_op *op = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_recv(op, fd, buf, len);
  mp_op_poll_first(op);
  return op;
}

TEST_IMPL(recv_poll_first) {
  struct mp_loop *loop = test_loop();
  int sv[2];
  char buf[16];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       0, sv), 0);
  /* bytes already there (readiness is level-triggered) */
  ASSERT_EQ(write(sv[1], "abc", 3), 3);
  nres = 0;
  ASSERT_EQ(mp_op_submit(recv_op(loop, sv[0], buf, sizeof buf)), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 1);
  ASSERT_EQ(res[0], 3);
  ASSERT_EQ(memcmp(buf, "abc", 3), 0);
  /* nothing there yet: it waits, then gets what comes */
  nres = 0;
  ASSERT_EQ(mp_op_submit(recv_op(loop, sv[0], buf, sizeof buf)), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(nres, 0);
  ASSERT_EQ(write(sv[1], "defg", 4), 4);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 1);
  ASSERT_EQ(res[0], 4);
  ASSERT_EQ(memcmp(buf, "defg", 4), 0);
  /* cancelled while waiting: ECANCELED, and the socket still works */
  nres = 0;
  struct mp_op *op = recv_op(loop, sv[0], buf, sizeof buf);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  mp_op_cancel(op);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 1);
  ASSERT_EQ(res[0], MP_ECANCELED);
  ASSERT_EQ(write(sv[1], "h", 1), 1);
  nres = 0;
  ASSERT_EQ(mp_op_submit(recv_op(loop, sv[0], buf, sizeof buf)), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], 1);
  /* the hint is for receives only: a send goes at once */
  nres = 0;
  op = mp_op_new(loop, res_cb, NULL);
  mp_op_prep_send(op, sv[1], "ij", 2);
  mp_op_poll_first(op);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(res[0], 2);
  ASSERT_EQ(read(sv[0], buf, sizeof buf), 2);
  /* the peer closes while one waits: end of stream */
  nres = 0;
  ASSERT_EQ(mp_op_submit(recv_op(loop, sv[0], buf, sizeof buf)), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  close(sv[1]);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(nres, 1);
  ASSERT_EQ(res[0], 0);
  close(sv[0]);
  CLOSE_LOOP(loop);
  return 0;
}
