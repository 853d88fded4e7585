/* sys_win.c: mp_os.h's memory, handle and thread calls for Windows: the
 * regions of moonport's Lua allocator (VirtualAlloc), the process's
 * file, pipe, socket and console handles (ntdll's system handle list, the
 * one way to enumerate them; wine has it, and its GetProcessHandleCount
 * says 0), the thread count
 * (Toolhelp). */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <tlhelp32.h>

#include <stdlib.h>

#include "mp_os.h"

/* VirtualAlloc returns 64 KiB-aligned memory (the allocation granularity)
 * and cannot free part of a region: for a larger alignment, reserve
 * size + align to find an aligned address, release it and allocate
 * exactly there (another thread may take it meanwhile: retry). */
void *mp_os_map(size_t size, size_t align) {
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  if (align <= si.dwAllocationGranularity)
    return VirtualAlloc(NULL, size, MEM_RESERVE | MEM_COMMIT,
                        PAGE_READWRITE);
  for (int tries = 0; tries < 16; tries++) {
    char *p = VirtualAlloc(NULL, size + align, MEM_RESERVE, PAGE_NOACCESS);
    if (!p) return NULL;
    uintptr_t mask = (uintptr_t)align - 1;
    char *start = (char *)(((uintptr_t)p + mask) & ~mask);
    VirtualFree(p, 0, MEM_RELEASE);
    p = VirtualAlloc(start, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    if (p) return p;
  }
  return NULL;
}

void mp_os_unmap(void *p, size_t size) {
  (void)size; /* a whole region is released at once */
  if (p) VirtualFree(p, 0, MEM_RELEASE);
}

/* NtQuerySystemInformation(SystemExtendedHandleInformation): not in the
 * SDK's headers, stable since Windows XP. */
typedef LONG(WINAPI *nt_query_fn)(ULONG, PVOID, ULONG, PULONG);
enum { SYSTEM_EXTENDED_HANDLE_INFORMATION = 64 };
#define STATUS_INFO_LENGTH_MISMATCH ((LONG)0xC0000004)
struct handle_entry {
  PVOID object;
  ULONG_PTR pid, handle;
  ULONG access;
  USHORT backtrace, type;
  ULONG attributes, reserved;
};
struct handle_list {
  ULONG_PTR n, reserved;
  struct handle_entry h[1];
};

/* What h is: a file's path, "pipe" (pipes and sockets), "char" (the
 * console); NULL for the other kernel objects (events, threads, ports,
 * keys), which are not listed: the system and its libraries open and
 * cache those by themselves (wine's loader, winpthreads). */
static const char *handle_name(HANDLE h, char *buf, size_t n) {
  switch (GetFileType(h)) {
    case FILE_TYPE_DISK: {
      wchar_t w[MAX_PATH];
      DWORD len = GetFinalPathNameByHandleW(h, w, MAX_PATH, 0);
      if (len == 0 || len >= MAX_PATH ||
          !WideCharToMultiByte(CP_UTF8, 0, w, -1, buf, (int)n, NULL, NULL))
        return "file";
      return buf;
    }
    case FILE_TYPE_PIPE: return "pipe";
    case FILE_TYPE_CHAR: return "char";
    default: return NULL;
  }
}

int mp_os_list_handles(void (*fn)(void *ud, mp_handle_t h, const char *what),
                       void *ud) {
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  nt_query_fn query = ntdll ? (nt_query_fn)(void (*)(void))GetProcAddress(
                                  ntdll, "NtQuerySystemInformation")
                            : NULL;
  if (!query) return MP_ENOSYS;
  ULONG size = 1 << 16;
  struct handle_list *list = NULL;
  LONG st;
  do {
    free(list);
    if (size > (1u << 30) || !(list = malloc(size))) return MP_ENOMEM;
    st = query(SYSTEM_EXTENDED_HANDLE_INFORMATION, list, size, NULL);
    size *= 2;
  } while (st == STATUS_INFO_LENGTH_MISMATCH);
  if (st < 0) {
    free(list);
    return MP_ENOSYS;
  }
  ULONG_PTR me = GetCurrentProcessId();
  for (ULONG_PTR i = 0; i < list->n; i++) {
    if (list->h[i].pid != me) continue;
    char buf[4 * MAX_PATH];
    HANDLE h = (HANDLE)list->h[i].handle;
    const char *what = handle_name(h, buf, sizeof buf);
    if (what) fn(ud, (mp_handle_t)h, what);
  }
  free(list);
  return 0;
}

int mp_os_thread_count(void) {
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
  if (snap == INVALID_HANDLE_VALUE) return MP_ENOSYS;
  DWORD pid = GetCurrentProcessId();
  THREADENTRY32 te = {.dwSize = sizeof te};
  int n = 0;
  for (BOOL ok = Thread32First(snap, &te); ok; ok = Thread32Next(snap, &te))
    n += te.th32OwnerProcessID == pid;
  CloseHandle(snap);
  return n;
}

void mp_os_sleep_ms(int ms) { Sleep(ms < 0 ? 0 : (DWORD)ms); }

/* ---- Workers ---- */

int mp_os_cpu_count(void) {
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return n > 0 ? (int)n : 1;
}

struct mp_os_mutex {
  SRWLOCK lock;
};

int mp_os_mutex_new(struct mp_os_mutex **m) {
  if (!(*m = malloc(sizeof **m))) return MP_ENOMEM;
  InitializeSRWLock(&(*m)->lock);
  return 0;
}

void mp_os_mutex_lock(struct mp_os_mutex *m) {
  AcquireSRWLockExclusive(&m->lock);
}

void mp_os_mutex_unlock(struct mp_os_mutex *m) {
  ReleaseSRWLockExclusive(&m->lock);
}

void mp_os_mutex_free(struct mp_os_mutex *m) { free(m); }

/* Windows threads take no signals (console events run on a thread of
 * their own): nothing to block. */
struct mp_os_thread {
  HANDLE h;
  void (*fn)(void *);
  void *arg;
};

static DWORD WINAPI thread_main(LPVOID p) {
  struct mp_os_thread *t = p;
  t->fn(t->arg);
  return 0;
}

int mp_os_thread_start(struct mp_os_thread **tp, void (*fn)(void *),
                       void *arg) {
  struct mp_os_thread *t = malloc(sizeof *t);
  if (!t) return MP_ENOMEM;
  t->fn = fn;
  t->arg = arg;
  if (!(t->h = CreateThread(NULL, 0, thread_main, t, 0, NULL))) {
    free(t);
    return MP_EAGAIN;
  }
  *tp = t;
  return 0;
}

void mp_os_thread_join(struct mp_os_thread *t) {
  WaitForSingleObject(t->h, INFINITE);
  CloseHandle(t->h);
  free(t);
}
