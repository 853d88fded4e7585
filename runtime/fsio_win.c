/* fsio_win.c: open handles on Windows: the synchronous mp_os_* calls on
 * a handle (mp_os.h: close, fstat, seek, pwrite, modes) and the blocking
 * ReadFile or WriteFile the threadpool runs for the IOCP backend on
 * handles that cannot be overlapped (consoles, inherited pipes, files
 * opened synchronously), which READFILE and WRITEFILE use too. The ops
 * that name a file by its path are fs_win.c's. */
#include "mp_internal.h"
#include "mp_os.h"

#include <string.h>

static int last_err(void) { return mp_err_from_win(GetLastError()); }

static int is_socket(HANDLE h) {
  int type, len = sizeof type;
  return getsockopt((SOCKET)h, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0;
}

/* ---- mp_os: files and paths ---- */

int mp_os_close(mp_handle_t h) {
  if (h == MP_INVALID_HANDLE || !h) return MP_EBADF;
  if (is_socket(h))
    return closesocket((SOCKET)h) ? mp_err_from_win(WSAGetLastError()) : 0;
  return CloseHandle(h) ? 0 : last_err();
}

int mp_os_fstat(mp_handle_t h, struct mp_stat *st) {
  BY_HANDLE_FILE_INFORMATION fi;
  DWORD type = GetFileType(h);
  memset(st, 0, sizeof *st);
  if (type == FILE_TYPE_UNKNOWN && GetLastError() != NO_ERROR)
    return last_err();
  if (type == FILE_TYPE_CHAR || type == FILE_TYPE_PIPE) {
    st->type = type == FILE_TYPE_CHAR ? MP_FT_CHAR
             : is_socket(h) ? MP_FT_SOCK : MP_FT_FIFO;
    st->mode = 0666;
    st->nlink = 1;
    return 0;
  }
  if (!GetFileInformationByHandle(h, &fi)) return last_err();
  int dir = (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
  st->type = (fi.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) ? MP_FT_LINK
           : dir ? MP_FT_DIR : MP_FT_FILE;
  st->size = dir ? 0 : (int64_t)(((uint64_t)fi.nFileSizeHigh << 32) |
                                 fi.nFileSizeLow);
  st->ino = ((uint64_t)fi.nFileIndexHigh << 32) | fi.nFileIndexLow;
  st->dev = fi.dwVolumeSerialNumber;
  st->nlink = fi.nNumberOfLinks;
  FILE_STANDARD_INFO si; /* a file to be deleted has no name: as unlinked */
  if (GetFileInformationByHandleEx(h, FileStandardInfo, &si, sizeof si) &&
      si.DeletePending)
    st->nlink = 0;
  st->blocks = ((uint64_t)st->size + 511) / 512;
  st->mode = (fi.dwFileAttributes & FILE_ATTRIBUTE_READONLY ? 0444 : 0666) |
             (dir ? 0111 : 0);
  mp__time_of(&fi.ftLastAccessTime, &st->atime.sec, &st->atime.nsec);
  mp__time_of(&fi.ftLastWriteTime, &st->mtime.sec, &st->mtime.nsec);
  mp__time_of(&fi.ftLastWriteTime, &st->ctime.sec, &st->ctime.nsec);
  return 0;
}

int64_t mp_os_seek(mp_handle_t h, int64_t off, int whence) {
  LARGE_INTEGER by = {.QuadPart = off}, to;
  DWORD w = whence == MP_SEEK_SET ? FILE_BEGIN
          : whence == MP_SEEK_CUR ? FILE_CURRENT : FILE_END;
  DWORD type = GetFileType(h);
  if (type == FILE_TYPE_PIPE || type == FILE_TYPE_CHAR) return MP_ESPIPE;
  if (!SetFilePointerEx(h, by, &to, w)) return last_err();
  return to.QuadPart;
}

/* The handshake with the backend's cancel of a pool READ or WRITE
 * (pool_io_cancel): op->ov.ev is 1 while this thread is in (or about to
 * enter) the blocking call, 2 out of it, 3 while a cancel interrupts it
 * (this thread cannot leave the call then, so a cancel never aborts
 * another op's call); ov.off is the OVERLAPPED of an overlapped wait
 * (for CancelIoEx), ov.a the request, checked once in. */
static int call_enter(struct mp_op *op, OVERLAPPED *ov) {
  if (!op) return 1;
  op->ov.off = (uintptr_t)ov;
  InterlockedExchangePointer(&op->ov.ev, (void *)1);
  return !InterlockedCompareExchangePointer((void *volatile *)&op->ov.a,
                                            NULL, NULL);
}

static void call_leave(struct mp_op *op) {
  if (!op) return;
  while (InterlockedCompareExchangePointer(&op->ov.ev, (void *)2,
                                           (void *)1) != (void *)1)
    Sleep(0); /* a cancel holds it: its CancelSynchronousIo ends soon */
}

/* Opened without FILE_FLAG_OVERLAPPED: the handle keeps a position. */
static int is_sync(HANDLE h) {
  typedef LONG(WINAPI * qif_fn)(HANDLE, PVOID, PVOID, ULONG, int);
  static const int FileModeInformation = 16;
  struct { LONG_PTR status; ULONG_PTR info; } io;
  ULONG mode = 0;
  qif_fn qif = (qif_fn)(void (*)(void))GetProcAddress(
      GetModuleHandleW(L"ntdll.dll"), "NtQueryInformationFile");
  if (!qif || qif(h, &io, &mode, sizeof mode, FileModeInformation) < 0)
    return 1;
  return (mode & 0x30) != 0; /* FILE_SYNCHRONOUS_IO_(NON)ALERT */
}

/* One blocking ReadFile or WriteFile at off (-1: a synchronous handle's
 * position, as Unix's read and write; an overlapped file keeps none: its
 * file pointer is used and moved, and a write appends, as the backend
 * does). An event whose low bit is set keeps a handle associated with a
 * port (another loop's) from queueing a packet. Console text is written
 * as UTF-16 (the console's code page would garble UTF-8). op: a pool op
 * its cancel can interrupt (call_enter), or NULL. */
int64_t mp__sync_io(HANDLE h, int write, void *buf, size_t size,
                    int64_t off, struct mp_op *op) {
  DWORD len = size > 0x7ffff000 ? 0x7ffff000 : (DWORD)size, n = 0, mode;
  DWORD type = GetFileType(h), e;
  if (write && type == FILE_TYPE_CHAR && GetConsoleMode(h, &mode)) {
    int wn = MultiByteToWideChar(CP_UTF8, 0, buf, (int)len, NULL, 0);
    wchar_t *w = wn > 0 ? malloc((size_t)wn * sizeof *w) : NULL;
    if (w) {
      MultiByteToWideChar(CP_UTF8, 0, buf, (int)len, w, wn);
      BOOL ok = call_enter(op, NULL) &&
                WriteConsoleW(h, w, (DWORD)wn, &n, NULL);
      e = ok ? 0 : GetLastError();
      call_leave(op);
      /* a short write: the bytes of what was written */
      if (ok && n < (DWORD)wn)
        len = (DWORD)WideCharToMultiByte(CP_UTF8, 0, w, (int)n, NULL, 0,
                                         NULL, NULL);
      free(w);
      if (!ok) return e ? mp_err_from_win(e) : MP_ECANCELED;
      return len;
    }
  }
  int sync = is_sync(h), advance = off < 0 && !sync && type == FILE_TYPE_DISK;
  uint64_t at = off < 0 ? 0 : (uint64_t)off;
  if (advance && write) {
    at = UINT64_MAX; /* FILE_WRITE_TO_END_OF_FILE */
  } else if (advance) {
    LARGE_INTEGER zero = {.QuadPart = 0}, pos;
    if (!SetFilePointerEx(h, zero, &pos, FILE_CURRENT))
      return mp_err_from_win(GetLastError());
    at = (uint64_t)pos.QuadPart;
  }
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (!ev) return mp_err_from_win(GetLastError());
  BOOL ok;
  for (;;) {
    memset(&ov, 0, sizeof ov);
    ov.Offset = (DWORD)at;
    ov.OffsetHigh = (DWORD)(at >> 32);
    ov.hEvent = (HANDLE)((uintptr_t)ev | 1);
    OVERLAPPED *o = sync && off < 0 ? NULL : &ov; /* NULL: the position */
    n = 0;
    if (!call_enter(op, o)) {
      call_leave(op);
      ok = FALSE;
      e = ERROR_OPERATION_ABORTED;
      break;
    }
    ok = write ? WriteFile(h, buf, len, &n, o) : ReadFile(h, buf, len, &n, o);
    if (!ok && o && GetLastError() == ERROR_IO_PENDING)
      ok = GetOverlappedResult(h, o, &n, TRUE);
    e = ok ? 0 : GetLastError();
    call_leave(op);
    /* aborted with no cancel of this op asking (nothing done): again */
    if (e != ERROR_OPERATION_ABORTED || !op || n ||
        InterlockedCompareExchangePointer((void *volatile *)&op->ov.a, NULL,
                                          NULL))
      break;
    ResetEvent(ev);
  }
  CloseHandle(ev);
  if (ok && advance) {
    LARGE_INTEGER by = {.QuadPart = write ? 0 : n};
    SetFilePointerEx(h, by, NULL, write ? FILE_END : FILE_CURRENT);
  }
  if (ok) return n;
  /* end of file, a pipe's writer gone: a read of 0, as Unix's */
  if (!write && (e == ERROR_HANDLE_EOF || e == ERROR_BROKEN_PIPE)) return 0;
  return mp_err_from_win(e);
}

int64_t mp_os_pwrite(mp_handle_t h, const void *buf, size_t len,
                     int64_t off) {
  return mp__sync_io(h, 1, (void *)buf, len, off, NULL);
}

/* Windows has no read that refuses to wait for the disk: reads go
 * through the port (IOCP) or the pool. */
int64_t mp_os_pread_nowait(mp_handle_t h, void *buf, size_t len,
                           int64_t off) {
  (void)h, (void)buf, (void)len, (void)off;
  return MP_EOPNOTSUPP;
}

int mp_os_open_cached(const char *path, int flags, mp_handle_t *out) {
  (void)path, (void)flags, (void)out;
  return MP_EOPNOTSUPP;
}

int mp_os_set_nonblock(mp_handle_t h, int on) {
  u_long v = (u_long)on;
  /* files and pipes: overlapped IO never blocks the loop */
  if (!is_socket(h)) return 0;
  return ioctlsocket((SOCKET)h, FIONBIO, &v)
             ? mp_err_from_win(WSAGetLastError()) : 0;
}

int mp_os_isatty(mp_handle_t h) {
  DWORD mode;
  return GetFileType(h) == FILE_TYPE_CHAR && GetConsoleMode(h, &mode);
}

mp_handle_t mp_os_stdhandle(int which) {
  static const DWORD std[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
                               STD_ERROR_HANDLE};
  HANDLE h = which >= 0 && which < 3 ? GetStdHandle(std[which]) : NULL;
  return h ? h : MP_INVALID_HANDLE;
}

/* ObjectBasicInformation's granted access rights. */
struct obi {
  ULONG Attributes;
  ACCESS_MASK GrantedAccess;
  ULONG rest[20];
};
typedef LONG(WINAPI *qo_fn)(HANDLE, int, PVOID, ULONG, PULONG);

int mp_os_handle_mode(mp_handle_t h) {
  struct obi info;
  qo_fn qo = (qo_fn)(void (*)(void))GetProcAddress(
      GetModuleHandleW(L"ntdll.dll"), "NtQueryObject");
  DWORD type = GetFileType(h);
  if (type == FILE_TYPE_UNKNOWN && GetLastError() != NO_ERROR)
    return MP_EBADF;
  if (!qo || qo(h, 0, &info, sizeof info, NULL) < 0) return MP_O_RDWR;
  ACCESS_MASK a = info.GrantedAccess;
  int r = (a & FILE_READ_DATA) != 0,
      w = (a & (FILE_WRITE_DATA | FILE_APPEND_DATA)) != 0;
  int mode = r && w ? MP_O_RDWR : w ? MP_O_WRONLY : MP_O_RDONLY;
  if ((a & FILE_APPEND_DATA) && !(a & FILE_WRITE_DATA)) mode |= MP_O_APPEND;
  return mode;
}

/* A handle's rights cannot change. Writes at offset -1 on an overlapped
 * file append anyway (mp__sync_io, the backend); a synchronous one writes at
 * its position, which moves to the end here (an append for one writer;
 * a handle opened for append only appends whatever happens). */
int mp_os_set_append(mp_handle_t h) {
  DWORD type = GetFileType(h);
  if (type == FILE_TYPE_UNKNOWN && GetLastError() != NO_ERROR)
    return MP_EBADF;
  if (type == FILE_TYPE_DISK && is_sync(h)) {
    LARGE_INTEGER zero = {.QuadPart = 0};
    SetFilePointerEx(h, zero, NULL, FILE_END);
  }
  return 0;
}


/* The blocking body of an op the backend sent to the threadpool. A
 * READ or WRITE may wait for ever (a console, a pipe): the backend's
 * cancel interrupts it (CancelSynchronousIo of the thread in ov.b, or
 * CancelIoEx), by the handshake of call_enter. */
void mp__os_blocking(struct mp_op *op) {
  switch (op->kind) {
    case MP_OP_READ: case MP_OP_WRITE: case MP_OP_RECV: case MP_OP_SEND:
      op->ov.b = GetCurrentThreadId();
      op->result = mp__sync_io(op->handle, op->kind == MP_OP_WRITE ||
                                               op->kind == MP_OP_SEND,
                               op->u.rw.buf, op->u.rw.len, op->u.rw.off, op);
      /* done (a cancel that still finds 0 here has nothing to stop) */
      InterlockedExchangePointer(&op->ov.ev, (void *)2);
      break;
    case MP_OP_CLOSE:
      op->result = mp_os_close(op->handle);
      break;
    default:
      mp__fs_blocking(op);
      break;
  }
}
