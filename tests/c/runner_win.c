/* runner_win.c: runner.c for Windows. Runs each C test of the Windows
 * list (test-list-win.h) in a child process (this program, given the
 * test's name) with a timeout, then checks that it leaked nothing: the
 * child compares its handle count (mp_os_list_handles) and its thread
 * count (Toolhelp) before and after the test. A crash ends the child with
 * 70 through an unhandled-exception filter, never with a dialog or with
 * the debugger wine would start (which may exit 0).
 *
 *   mp_tests            run every test, print "N passed, N failed"
 *   mp_tests NAME       run one test in this process */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <tlhelp32.h>

#include "mp_os.h"
#include "task.h"
#include "test-list-win.h"

#define DECLARE(name) int test_##name(void);
TEST_LIST_WIN(DECLARE)

static const struct {
  const char *name;
  int (*fn)(void);
} tests[] = {
#define ENTRY(name) {#name, test_##name},
  TEST_LIST_WIN(ENTRY)
};

enum { NTESTS = sizeof tests / sizeof tests[0], TIMEOUT_S = 60,
       CRASHED = 70 };

static LONG WINAPI on_crash(EXCEPTION_POINTERS *e) {
  fprintf(stderr, "crashed: exception 0x%08lx at %p\n",
          (unsigned long)e->ExceptionRecord->ExceptionCode,
          e->ExceptionRecord->ExceptionAddress);
  fflush(stderr);
  TerminateProcess(GetCurrentProcess(), CRASHED);
  return EXCEPTION_EXECUTE_HANDLER;
}

static int count_threads(void) {
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
  if (snap == INVALID_HANDLE_VALUE) return -1;
  THREADENTRY32 te = {.dwSize = sizeof te};
  DWORD pid = GetCurrentProcessId();
  int n = 0;
  for (BOOL ok = Thread32First(snap, &te); ok; ok = Thread32Next(snap, &te))
    n += te.th32OwnerProcessID == pid;
  CloseHandle(snap);
  return n;
}

/* Files, pipes, sockets and console handles open (mp_os_list_handles:
 * wine's GetProcessHandleCount is always 0); threads are counted apart. */
static void count_one(void *ud, mp_handle_t h, const char *what) {
  (void)h;
  (void)what;
  ++*(int *)ud;
}

static int count_handles(void) {
  int n = 0;
  return mp_os_list_handles(count_one, &n) < 0 ? -1 : n;
}

/* Threads and handles may take a moment to go after their last use
 * (a joined thread's exit, a socket's close): awaited up to 1 s. */
static int run_checked(int i) {
  int threads = count_threads(), handles = count_handles();
  int r = tests[i].fn();
  if (r != 0) return r;
  int t = 0, h = 0;
  for (int k = 0; k < 100; k++) {
    t = count_threads();
    h = count_handles();
    if (t <= threads && h <= handles) return 0;
    Sleep(10);
  }
  if (t > threads)
    fprintf(stderr, "%s: %d thread%s still running\n", tests[i].name,
            t - threads, t - threads == 1 ? "" : "s");
  if (h > handles)
    fprintf(stderr, "%s: leaked %d file/pipe/socket handle%s\n",
            tests[i].name, h - handles,
            h - handles == 1 ? "" : "s");
  return 1;
}

void test_close_loop(struct mp_loop *loop, const char *file, int line) {
  struct mp_loop_stats st;
  mp_loop_stats(loop, &st);
  if (st.ops_inflight)
    fprintf(stderr, "%s:%d: %zu op%s still in flight\n", file, line,
            st.ops_inflight, st.ops_inflight == 1 ? "" : "s");
  if (st.ops_live)
    fprintf(stderr, "%s:%d: %zu op record%s never released\n", file, line,
            st.ops_live, st.ops_live == 1 ? "" : "s");
  if (st.ops_inflight || st.ops_live) abort();
  int r = mp_loop_close(loop);
  if (r != 0) {
    fprintf(stderr, "%s:%d: mp_loop_close: %s\n", file, line,
            mp_errname(r));
    abort();
  }
}

struct mp_loop *test_loop(void) {
  struct mp_loop *loop;
  int r = mp_loop_new(&loop, NULL);
  if (r < 0) {
    fprintf(stderr, "mp_loop_new: %s\n", mp_strerror(r));
    abort();
  }
  return loop;
}

/* This program again, with the test's name; its exit code. */
static int run_child(int i) {
  wchar_t self[MAX_PATH], cmd[MAX_PATH + 300];
  GetModuleFileNameW(NULL, self, MAX_PATH);
  swprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" %hs", self,
           tests[i].name);
  STARTUPINFOW si = {.cb = sizeof si};
  PROCESS_INFORMATION pi;
  /* Under wine a child's start fails now and then with
   * ERROR_INTERNAL_ERROR (its loader died before running anything), so
   * no test ran: start it again, a few times. */
  for (int tries = 1;; tries++) {
    if (CreateProcessW(self, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si,
                       &pi))
      break;
    fprintf(stderr, "  CreateProcess: error %lu\n", GetLastError());
    if (tries == 3) return 1;
    Sleep(100 * tries);
  }
  CloseHandle(pi.hThread);
  DWORD code = 1;
  if (WaitForSingleObject(pi.hProcess, TIMEOUT_S * 1000) != WAIT_OBJECT_0) {
    TerminateProcess(pi.hProcess, 1);
    WaitForSingleObject(pi.hProcess, INFINITE);
    fprintf(stderr, "  timed out after %d s\n", TIMEOUT_S);
  } else {
    GetExitCodeProcess(pi.hProcess, &code);
  }
  CloseHandle(pi.hProcess);
  if (code == CRASHED) fprintf(stderr, "  crashed\n");
  else if (code == 3) fprintf(stderr, "  aborted\n");
  return (int)code;
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0, skipped = 0;
  SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
  SetUnhandledExceptionFilter(on_crash);
  setvbuf(stderr, NULL, _IONBF, 0);
  if (argc > 1) {
    for (int i = 0; i < NTESTS; i++)
      if (strcmp(argv[1], tests[i].name) == 0) return run_checked(i);
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
  }
  struct mp_loop *probe = test_loop();
  printf("# backend %s\n", mp_loop_backend(probe));
  mp_loop_close(probe);
  for (int i = 0; i < NTESTS; i++) {
    fflush(stdout);
    int r = run_child(i);
    if (r == 0) passed++;
    else if (r == TEST_SKIP) skipped++;
    else failed++;
    printf("%s %d - %s%s\n", r == 0 || r == TEST_SKIP ? "ok" : "not ok",
           i + 1, tests[i].name, r == TEST_SKIP ? " # skip" : "");
  }
  printf("%d passed, %d failed (%d skipped)\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
