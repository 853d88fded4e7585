/* test-win-proc.c: processes and signals on Windows (runtime/proc_win.c),
 * with the children every Windows has (cmd.exe): spawn all or nothing,
 * exit codes, kill, the POLL on a process handle, pipes, dup, signal
 * names and routing. Console control events cannot be raised under wine
 * (no console), so routing is tested up to the event. */
#ifdef _WIN32
#include <windows.h>

#include "task.h"

#include "mp_os.h"

static void poll_cb(struct mp_op *op) { *(int *)op->data += 1; }

static int spawn_cmd(const char *script, int in, int out,
                     struct mp_proc *p, mp_handle_t pipes[3]) {
  const char *argv[] = {"cmd.exe", "/d", "/c", script, NULL};
  struct mp_spawn o = {argv, NULL, NULL, {in, out, MP_STDIO_NULL}};
  return mp_os_spawn(&o, p, pipes);
}

TEST_IMPL(win_spawn_status_kill) {
  struct mp_loop *loop = test_loop();
  struct mp_proc p;
  mp_handle_t pipes[3];
  int st, polled = 0;
  ASSERT_EQ(spawn_cmd("exit 7", MP_STDIO_NULL, MP_STDIO_NULL, &p, pipes),
            0);
  ASSERT(pipes[0] == MP_INVALID_HANDLE && pipes[1] == MP_INVALID_HANDLE);
  ASSERT_GT(p.pid, 0);
  /* the process handle is what a POLL waits on */
  struct mp_op *op = mp_op_new(loop, poll_cb, &polled);
  mp_op_prep_poll(op, p.handle);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT);
  ASSERT_EQ(polled, 1);
  ASSERT_EQ(op->result, 0);
  mp_op_release(op);
  ASSERT_EQ(mp_os_proc_status(&p, 0, &st), 1);
  ASSERT_EQ(st, 7);
  ASSERT_EQ(mp_os_proc_kill(&p, 15), 0); /* ended: as a Unix zombie */
  ASSERT_EQ(mp_os_close(p.handle), 0);
  /* a child waiting on its stdin (our pipe) until killed */
  ASSERT_EQ(spawn_cmd("set /p x=", MP_STDIO_PIPE, MP_STDIO_NULL, &p, pipes),
            0);
  ASSERT(pipes[0] != MP_INVALID_HANDLE);
  ASSERT_EQ(mp_os_proc_status(&p, 0, &st), 0); /* still running */
  ASSERT_EQ(mp_os_proc_kill(&p, 0), 0);        /* alive */
  ASSERT_EQ(mp_os_proc_kill(&p, mp_os_signum("KILL")), 0);
  ASSERT_EQ(mp_os_proc_status(&p, 1, &st), 1);
  ASSERT_EQ(st, MP_PROC_SIGNALED + 9);
  ASSERT_EQ(mp_os_close(p.handle), 0);
  ASSERT_EQ(mp_os_close(pipes[0]), 0);
  CLOSE_LOOP(loop);
  return 0;
}

TEST_IMPL(win_spawn_all_or_nothing) {
  struct mp_proc p;
  mp_handle_t pipes[3];
  const char *missing[] = {"no-such-program-moonport", NULL};
  const char *abs[] = {"C:\\nonexistent\\program.exe", NULL};
  const char *cmd[] = {"cmd.exe", "/d", "/c", "exit 0", NULL};
  struct mp_spawn o = {missing, NULL, NULL,
                       {MP_STDIO_PIPE, MP_STDIO_PIPE, MP_STDIO_PIPE}};
  char self[MAX_PATH];
  ASSERT_EQ(mp_os_spawn(&o, &p, pipes), MP_ENOENT);
  for (int i = 0; i < 3; i++) ASSERT(pipes[i] == MP_INVALID_HANDLE);
  o.argv = abs;
  ASSERT_EQ(mp_os_spawn(&o, &p, pipes), MP_ENOENT);
  o.argv = cmd;
  o.cwd = "C:\\nonexistent\\dir";
  ASSERT_EQ(mp_os_spawn(&o, &p, pipes), MP_ENOENT);
  ASSERT(GetModuleFileNameA(NULL, self, sizeof self) > 0);
  o.cwd = self; /* a file */
  ASSERT_EQ(mp_os_spawn(&o, &p, pipes), MP_ENOTDIR);
  o.cwd = NULL;
  o.argv = NULL;
  ASSERT_EQ(mp_os_spawn(&o, &p, pipes), MP_EINVAL);
  o.argv = cmd;
  o.stdio[0] = MP_STDIO_STDOUT; /* handle 2 only */
  ASSERT_EQ(mp_os_spawn(&o, &p, pipes), MP_EINVAL);
  for (int i = 0; i < 3; i++) ASSERT(pipes[i] == MP_INVALID_HANDLE);
  return 0;
}

TEST_IMPL(win_signal_names_and_routes) {
  struct mp_sigroute *a, *b;
  mp_handle_t ha, hb, d;
  ASSERT_EQ(mp_os_signum("INT"), 2);
  ASSERT_EQ(mp_os_signum("SIGTERM"), 15);
  ASSERT_EQ(mp_os_signum("KILL"), 9);
  ASSERT_EQ(mp_os_signum("BREAK"), 21);
  ASSERT_EQ(mp_os_signum("USR1"), MP_EINVAL);
  ASSERT(strcmp(mp_os_signame(21), "BREAK") == 0);
  ASSERT(mp_os_signame(10) == NULL);
  ASSERT_EQ(mp_os_sigroute_open(&a, &ha), 0);
  ASSERT_EQ(mp_os_sigroute_open(&b, &hb), 0);
  ASSERT_EQ(mp_os_sigroute_add(a, 2), 0);
  ASSERT_EQ(mp_os_sigroute_add(a, 2), 0); /* idempotent */
  ASSERT_EQ(mp_os_sigroute_add(b, 2), MP_EBUSY); /* a owns it */
  ASSERT_EQ(mp_os_sigroute_add(b, 21), 0);
  ASSERT_EQ(mp_os_sigroute_add(a, 15), MP_ENOSYS); /* never delivered */
  ASSERT_EQ(mp_os_sigroute_add(a, 9), MP_EINVAL);
  ASSERT_EQ(mp_os_sigroute_take(a, 2), 0);
  ASSERT_EQ(WaitForSingleObject(ha, 0), WAIT_TIMEOUT); /* nothing pending */
  mp_os_sigroute_close(a); /* gives INT back */
  ASSERT_EQ(mp_os_sigroute_add(b, 2), 0);
  mp_os_sigroute_close(b);
  ASSERT_EQ(mp_os_close(ha), 0);
  ASSERT_EQ(mp_os_close(hb), 0);
  /* dup: a second handle on the same object */
  HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  ASSERT_EQ(mp_os_dup(ev, &d), 0);
  ASSERT(d != ev);
  SetEvent(ev);
  ASSERT_EQ(WaitForSingleObject(d, 0), WAIT_OBJECT_0);
  ASSERT_EQ(mp_os_close(d), 0);
  CloseHandle(ev);
  ASSERT_EQ(mp_os_dup(MP_INVALID_HANDLE, &d), MP_EBADF);
  return 0;
}

/* mp_os_adopt (adopt_win.c): what an inherited handle is. */
TEST_IMPL(win_adopt_kinds) {
  mp_handle_t s, u;
  struct mp_addr a;
  int kind, family;
  HANDLE r, w;
  ASSERT_EQ(mp_os_socket(MP_AF_INET, MP_SOCK_STREAM, &s), 0);
  ASSERT_EQ(mp_os_adopt(s, &kind, &family), 0);
  ASSERT(kind == MP_HK_STREAM && family == MP_AF_INET);
  ASSERT_EQ(mp_addr_ip(&a, "127.0.0.1", 0), 0);
  ASSERT_EQ(mp_os_bind(s, &a), 0);
  ASSERT_EQ(mp_os_listen(s, 4), 0);
  ASSERT_EQ(mp_os_adopt(s, &kind, &family), 0);
  ASSERT_EQ(kind, MP_HK_LISTENER);
  ASSERT_EQ(mp_os_socket(MP_AF_INET6, MP_SOCK_DGRAM, &u), 0);
  ASSERT_EQ(mp_os_adopt(u, &kind, &family), 0);
  ASSERT(kind == MP_HK_DGRAM && family == MP_AF_INET6);
  ASSERT(CreatePipe(&r, &w, NULL, 0));
  ASSERT_EQ(mp_os_adopt(r, &kind, &family), 0);
  ASSERT(kind == MP_HK_PIPE && family == MP_AF_UNSPEC);
  HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  ASSERT_EQ(mp_os_adopt(ev, &kind, &family), MP_ENOTSOCK);
  ASSERT_EQ(mp_os_adopt(MP_INVALID_HANDLE, &kind, &family), MP_EBADF);
  CloseHandle(ev);
  CloseHandle(r);
  CloseHandle(w);
  ASSERT_EQ(mp_os_close(s), 0);
  ASSERT_EQ(mp_os_close(u), 0);
  return 0;
}
#endif
