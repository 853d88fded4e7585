/* test-proc.c: MP_OP_POLL on both backends, and mp_os.h's processes:
 * spawn, a poll on the process handle, status, kill, signal names. */
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "mp_os.h"
#include "task.h"

static int64_t pres[8];
static int npres;

static void pres_cb(struct mp_op *op) {
  pres[npres++] = op->result;
  mp_op_release(op);
}

static struct mp_op *poll_op(struct mp_loop *loop, int fd) {
  struct mp_op *op = mp_op_new(loop, pres_cb, NULL);
  mp_op_prep_poll(op, fd);
  return op;
}

/* A poll completes once the pipe is readable, and reads nothing; a
 * cancelled one completes with ECANCELED; a bad handle fails at submit. */
TEST_IMPL(op_poll) {
  struct mp_loop *loop = test_loop();
  int fds[2];
  char c;
  ASSERT_EQ(pipe(fds), 0);
  npres = 0;
  ASSERT_EQ(mp_op_submit(poll_op(loop, fds[0])), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(npres, 0);
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(npres, 1);
  ASSERT_EQ(pres[0], 0);
  ASSERT_EQ(read(fds[0], &c, 1), 1); /* the byte is still there */
  struct mp_op *op = poll_op(loop, fds[0]);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  mp_op_cancel(op);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(npres, 2);
  ASSERT_EQ(pres[1], MP_ECANCELED);
  op = poll_op(loop, -1);
  ASSERT_EQ(mp_op_submit(op), MP_EBADF);
  mp_op_release(op);
  close(fds[0]);
  close(fds[1]);
  CLOSE_LOOP(loop);
  return 0;
}

/* A poll for writable (mp_op_prep_poll_out) on a full pipe completes
 * once the reader took some, and writes nothing; on a pipe with room, at
 * once. */
TEST_IMPL(op_poll_out) {
  struct mp_loop *loop = test_loop();
  int fds[2];
  char buf[4096] = {0};
  ASSERT_EQ(pipe(fds), 0);
  npres = 0;
  struct mp_op *op = mp_op_new(loop, pres_cb, NULL);
  mp_op_prep_poll_out(op, fds[1]);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(npres, 1);
  ASSERT_EQ(pres[0], 0);
  ASSERT_EQ(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
  ASSERT_EQ(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
  size_t filled = 0;
  ssize_t w;
  while ((w = write(fds[1], buf, sizeof buf)) > 0) filled += (size_t)w;
  op = mp_op_new(loop, pres_cb, NULL);
  mp_op_prep_poll_out(op, fds[1]);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(npres, 1); /* full: waits */
  size_t got = 0;
  while (got < filled) {
    ssize_t r = read(fds[0], buf, sizeof buf);
    ASSERT(r > 0);
    got += (size_t)r;
  }
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(npres, 2);
  ASSERT_EQ(pres[1], 0);
  ASSERT_EQ(read(fds[0], buf, 1), -1); /* it wrote nothing */
  close(fds[0]);
  close(fds[1]);
  CLOSE_LOOP(loop);
  return 0;
}

/* A child with a piped stdout: its output, a poll on its handle that
 * completes when it ends, its exit status, then ESRCH. A missing program
 * fails at spawn and leaves nothing open. */
TEST_IMPL(os_spawn) {
  struct mp_loop *loop = test_loop();
  const char *argv[] = {"/bin/sh", "-c", "echo hi; exit 5", NULL};
  struct mp_spawn o = {argv, NULL, "/", {MP_STDIO_NULL, MP_STDIO_PIPE,
                                         MP_STDIO_INHERIT}};
  struct mp_proc p;
  mp_handle_t pipes[3];
  char buf[8] = {0};
  int st = -1;
  npres = 0;
  ASSERT_EQ(mp_os_spawn(&o, &p, pipes), 0);
  ASSERT(pipes[0] == MP_INVALID_HANDLE && pipes[2] == MP_INVALID_HANDLE);
  ASSERT(p.pid > 0 && p.handle >= 0);
  ASSERT(fcntl(pipes[1], F_GETFD) & FD_CLOEXEC);
  ASSERT(fcntl(p.handle, F_GETFD) & FD_CLOEXEC);
  ASSERT_EQ(mp_op_submit(poll_op(loop, p.handle)), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(npres, 1);
  ASSERT_EQ(pres[0], 0);
  ASSERT_EQ(read(pipes[1], buf, sizeof buf - 1), 3);
  ASSERT_EQ(strcmp(buf, "hi\n"), 0);
  ASSERT_EQ(mp_os_proc_status(&p, 0, &st), 1);
  ASSERT_EQ(st, 5);
  ASSERT_EQ(mp_os_proc_kill(&p, SIGTERM), MP_ESRCH);
  mp_os_close(p.handle);
  mp_os_close(pipes[1]);

  /* killed: MP_PROC_SIGNALED + the signal; running: 0 */
  const char *sleeper[] = {"sleep", "10", NULL};
  struct mp_spawn s = {sleeper, NULL, NULL, {0, 0, 0}};
  ASSERT_EQ(mp_os_spawn(&s, &p, pipes), 0);
  ASSERT_EQ(mp_os_proc_status(&p, 0, &st), 0);
  ASSERT_EQ(mp_os_proc_kill(&p, mp_os_signum("KILL")), 0);
  ASSERT_EQ(mp_os_proc_status(&p, 1, &st), 1);
  ASSERT_EQ(st, MP_PROC_SIGNALED + SIGKILL);
  mp_os_close(p.handle);

  const char *missing[] = {"/nonexistent/program", NULL};
  struct mp_spawn m = {missing, NULL, NULL, {MP_STDIO_PIPE, MP_STDIO_PIPE,
                                             MP_STDIO_PIPE}};
  int before = dup(0);
  close(before);
  ASSERT_EQ(mp_os_spawn(&m, &p, pipes), MP_ENOENT);
  ASSERT(pipes[0] == MP_INVALID_HANDLE && pipes[1] == MP_INVALID_HANDLE &&
         pipes[2] == MP_INVALID_HANDLE);
  int after = dup(0); /* the lowest free descriptor is the same again */
  close(after);
  ASSERT_EQ(after, before);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(os_signal_names) {
  ASSERT_EQ(mp_os_signum("TERM"), SIGTERM);
  ASSERT_EQ(mp_os_signum("SIGUSR1"), SIGUSR1);
  ASSERT_EQ(mp_os_signum("NOPE"), MP_EINVAL);
  ASSERT_EQ(strcmp(mp_os_signame(SIGINT), "INT"), 0);
  ASSERT(mp_os_signame(0) == NULL);
  return 0;
}
