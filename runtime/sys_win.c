/* sys_win.c: mp_os.h's memory, handle and thread calls for Windows: the
 * regions of moonport's Lua allocator (VirtualAlloc), the thread count
 * (Toolhelp). Windows cannot list a process's handles with a public API:
 * mp_os_list_handles says MP_ENOSYS (docs/windows.md). */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <tlhelp32.h>

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

int mp_os_list_handles(void (*fn)(void *ud, mp_handle_t h, const char *what),
                       void *ud) {
  (void)fn;
  (void)ud;
  return MP_ENOSYS;
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
