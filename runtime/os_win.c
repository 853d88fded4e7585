/* os_win.c: clocks, threads and locks for Windows (os.h). No loop code;
 * the blocking bodies of file ops are fs_win.c's. */
#include "mp_internal.h"

#include <stdlib.h>

int64_t mp__hrtime(void) {
  LARGE_INTEGER c, f;
  QueryPerformanceCounter(&c);
  QueryPerformanceFrequency(&f); /* fixed at boot; a cheap read */
  int64_t q = c.QuadPart / f.QuadPart, r = c.QuadPart % f.QuadPart;
  return q * 1000000000 + r * 1000000000 / f.QuadPart; /* no overflow */
}

int mp__cpu_count(void) {
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return n > 0 ? (int)n : 1;
}

int mp__mutex_init(mp__mutex *m) {
  InitializeSRWLock(m);
  return 0;
}

int mp__cond_init(mp__cond *c) {
  InitializeConditionVariable(c);
  return 0;
}

/* CreateThread's start routine has another type: the pair travels in a
 * small block the new thread frees. Windows threads take no console
 * control events (those run on a thread of their own), so nothing needs
 * blocking, unlike signals on Unix. */
struct start {
  void *(*fn)(void *);
  void *arg;
};

static DWORD WINAPI trampoline(LPVOID p) {
  struct start s = *(struct start *)p;
  free(p);
  s.fn(s.arg);
  return 0;
}

int mp__thread_create(mp__thread *t, void *(*fn)(void *), void *arg) {
  struct start *s = malloc(sizeof *s);
  if (!s) return MP_ENOMEM;
  s->fn = fn;
  s->arg = arg;
  /* 256 KiB of stack reserved (the default is the exe's 2 MiB): pool
   * workers run short blocking calls. */
  *t = CreateThread(NULL, 256 << 10, trampoline, s,
                    STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
  if (!*t) {
    free(s);
    return MP_EAGAIN; /* out of threads or memory, as pthread_create */
  }
  return 0;
}

void mp__thread_join(mp__thread t) {
  WaitForSingleObject(t, INFINITE);
  CloseHandle(t);
}

int mp__wakefd_wait(mp_handle_t h, int64_t timeout_ns) {
  DWORD ms = INFINITE;
  if (timeout_ns >= 0) {
    int64_t m = (timeout_ns + 999999) / 1000000; /* never wake early */
    ms = m >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)m;
  }
  return WaitForSingleObject((HANDLE)h, ms) == WAIT_OBJECT_0;
}

void mp__close_fd(mp_handle_t h) {
  if (h != MP_INVALID_HANDLE && h != NULL) CloseHandle((HANDLE)h);
}
