/* fs_win.c: files and paths on Windows: the synchronous mp_os_* file
 * calls (mp_os.h) and the blocking bodies of the ops the IOCP backend
 * sends to the threadpool (every file and path op; READ and WRITE on
 * handles that cannot be overlapped: consoles, inherited pipes and files
 * opened synchronously).
 *
 * Paths are UTF-8 and become UTF-16 for the W functions; names coming
 * back (READDIR, REALPATH, MKDTEMP) are UTF-8 again. Files are opened
 * overlapped (the backend reads and writes them at explicit offsets),
 * shared for reading, writing and deletion (as Unix files are), and not
 * inherited by child processes. Differences from Unix, by necessity: the
 * permission bits are the read-only attribute (CHMOD sets it, STAT shows
 * 0444 or 0666, plus 0111 for directories); CHOWN and READLINK are
 * MP_ENOSYS; a write at offset -1 to a file appends (files opened for
 * append have no FILE_WRITE_DATA right, so every write appends, as
 * O_APPEND); WRITEFILE neither follows a symlink at the end of the path
 * nor keeps the replaced file's attributes. */
#include "mp_internal.h"
#include "mp_os.h"

#include <stdio.h>
#include <string.h>

/* ---- conversions ---- */

/* A UTF-8 string as a new UTF-16 one; NULL with *err set. */
static wchar_t *wide(const char *s, int *err) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  wchar_t *w;
  if (n <= 0) {
    *err = MP_EILSEQ;
    return NULL;
  }
  if (!(w = malloc((size_t)n * sizeof *w))) {
    *err = MP_ENOMEM;
    return NULL;
  }
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n);
  return w;
}

/* UTF-16 to UTF-8 into out (cap bytes with the NUL); the length or
 * MP_ENAMETOOLONG. */
static int narrow(const wchar_t *w, char *out, int cap) {
  int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, out, cap, NULL, NULL);
  return n <= 0 ? MP_ENAMETOOLONG : n - 1;
}

static int last_err(void) { return mp_err_from_win(GetLastError()); }

/* The last error of a call on path p. Where a component is a file, not
 * a directory, Windows says the path is not found: Unix says ENOTDIR. */
static int path_err(const wchar_t *p) {
  DWORD e = GetLastError();
  size_t n = wcslen(p);
  wchar_t *q;
  if (e != ERROR_PATH_NOT_FOUND || !(q = malloc((n + 1) * sizeof *q)))
    return mp_err_from_win(e);
  memcpy(q, p, (n + 1) * sizeof *q);
  int r = MP_ENOENT;
  while (n > 0) {
    while (n > 0 && q[n - 1] != L'/' && q[n - 1] != L'\\') n--;
    while (n > 0 && (q[n - 1] == L'/' || q[n - 1] == L'\\')) n--;
    if (n == 0) break;
    q[n] = 0;
    DWORD a = GetFileAttributesW(q);
    if (a != INVALID_FILE_ATTRIBUTES) {
      if (!(a & FILE_ATTRIBUTE_DIRECTORY)) r = MP_ENOTDIR;
      break;
    }
  }
  free(q);
  return r;
}

static int is_socket(HANDLE h) {
  int type, len = sizeof type;
  return getsockopt((SOCKET)h, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0;
}

/* FILETIME (100 ns since 1601) to seconds and ns since 1970. */
static void time_of(const FILETIME *ft, int64_t *sec, int32_t *nsec) {
  int64_t t = (int64_t)(((uint64_t)ft->dwHighDateTime << 32) |
                        ft->dwLowDateTime) - 116444736000000000LL;
  int64_t s = t / 10000000, r = t % 10000000;
  if (r < 0) {
    s--;
    r += 10000000;
  }
  *sec = s;
  *nsec = (int32_t)(r * 100);
}

static FILETIME filetime_of(int64_t ns) {
  FILETIME ft;
  if (ns == MP_UTIME_NOW) {
    GetSystemTimeAsFileTime(&ft);
    return ft;
  }
  int64_t t = ns / 100 + 116444736000000000LL;
  ft.dwLowDateTime = (DWORD)t;
  ft.dwHighDateTime = (DWORD)((uint64_t)t >> 32);
  return ft;
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
  time_of(&fi.ftLastAccessTime, &st->atime.sec, &st->atime.nsec);
  time_of(&fi.ftLastWriteTime, &st->mtime.sec, &st->mtime.nsec);
  time_of(&fi.ftLastWriteTime, &st->ctime.sec, &st->ctime.nsec);
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
static int64_t sync_io(HANDLE h, int write, void *buf, size_t size,
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
  return sync_io(h, 1, (void *)buf, len, off, NULL);
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
 * file append anyway (sync_io, the backend); a synchronous one writes at
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

/* ---- ops ---- */

void mp__fs_translate(struct mp_op *op) {
  (void)op; /* the MP_O_* and MP_STAT_* flags are read as they are */
}

const char *mp__fs_tmpdir(void) {
  const char *d = getenv("TMPDIR");
  if (!d || !*d) d = getenv("TEMP");
  if (!d || !*d) d = getenv("TMP");
  return d && *d ? d : ".";
}

static HANDLE open_w(const wchar_t *p, DWORD access, DWORD disp,
                     DWORD flags) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, FALSE}; /* not inherited */
  return CreateFileW(p, access,
                     FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                     &sa, disp, flags | FILE_FLAG_BACKUP_SEMANTICS, NULL);
}

static int is_dir_w(const wchar_t *p) {
  DWORD a = GetFileAttributesW(p);
  return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY);
}

static int64_t open_op(struct mp_op *op, const wchar_t *p) {
  int f = op->u.fs.flags, acc = f & 3;
  DWORD access = acc == MP_O_RDONLY ? GENERIC_READ
               : acc == MP_O_WRONLY ? GENERIC_WRITE
                                    : GENERIC_READ | GENERIC_WRITE;
  DWORD disp, attrs = FILE_FLAG_OVERLAPPED;
  if ((f & MP_O_APPEND) && !(f & MP_O_TRUNC) && acc != MP_O_RDONLY)
    access = (access & GENERIC_READ) |
             (FILE_GENERIC_WRITE & ~(DWORD)FILE_WRITE_DATA);
  if ((f & MP_O_CREAT) && (f & MP_O_EXCL)) disp = CREATE_NEW;
  else if ((f & MP_O_CREAT) && (f & MP_O_TRUNC)) disp = CREATE_ALWAYS;
  else if (f & MP_O_CREAT) disp = OPEN_ALWAYS;
  else if (f & MP_O_TRUNC) disp = TRUNCATE_EXISTING;
  else disp = OPEN_EXISTING;
  if ((f & MP_O_CREAT) && !(op->u.fs.mode & 0200))
    attrs |= FILE_ATTRIBUTE_READONLY;
  if (f & MP_O_NOFOLLOW) attrs |= FILE_FLAG_OPEN_REPARSE_POINT;
  HANDLE h = open_w(p, access, disp, attrs);
  if (h == INVALID_HANDLE_VALUE) {
    DWORD e = GetLastError();
    /* a directory to write (Windows: denied, or exists): Unix's error */
    if ((e == ERROR_ACCESS_DENIED || acc != MP_O_RDONLY) && is_dir_w(p))
      return MP_EISDIR;
    SetLastError(e);
    return path_err(p);
  }
  BY_HANDLE_FILE_INFORMATION fi;
  int dir = GetFileInformationByHandle(h, &fi) &&
            (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY);
  if ((f & MP_O_DIRECTORY) && !dir) {
    CloseHandle(h);
    return MP_ENOTDIR;
  }
  if (dir && acc != MP_O_RDONLY) { /* Windows would open it */
    CloseHandle(h);
    return MP_EISDIR;
  }
  return (int64_t)(intptr_t)h;
}

/* A path's metadata is its handle's; but the times are read first,
 * without opening it (wine's open touches the access time). */
static int64_t stat_op(struct mp_op *op, const wchar_t *p) {
  struct mp_stat *st = op->u.fs.buf;
  WIN32_FILE_ATTRIBUTE_DATA ad;
  if (!p) return mp_os_fstat(op->handle, st);
  int times = GetFileAttributesExW(p, GetFileExInfoStandard, &ad) &&
              !(ad.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT);
  HANDLE h = open_w(p, FILE_READ_ATTRIBUTES, OPEN_EXISTING,
                    op->u.fs.flags & MP_STAT_NOFOLLOW
                        ? FILE_FLAG_OPEN_REPARSE_POINT : 0);
  if (h == INVALID_HANDLE_VALUE) return path_err(p);
  int r = mp_os_fstat(h, st);
  CloseHandle(h);
  if (r == 0 && times) {
    time_of(&ad.ftLastAccessTime, &st->atime.sec, &st->atime.nsec);
    time_of(&ad.ftLastWriteTime, &st->mtime.sec, &st->mtime.nsec);
    time_of(&ad.ftLastWriteTime, &st->ctime.sec, &st->ctime.nsec);
  }
  return r;
}

static int64_t unlink_op(const wchar_t *p) {
  if (DeleteFileW(p)) return 0;
  DWORD e = GetLastError(), a = GetFileAttributesW(p);
  if (e == ERROR_PATH_NOT_FOUND) {
    SetLastError(e);
    return path_err(p);
  }
  if (e == ERROR_ACCESS_DENIED && a != INVALID_FILE_ATTRIBUTES) {
    if (a & FILE_ATTRIBUTE_DIRECTORY) return MP_EISDIR;
    /* Unix removes a read-only file: its directory decides */
    if ((a & FILE_ATTRIBUTE_READONLY) &&
        SetFileAttributesW(p, a & ~(DWORD)FILE_ATTRIBUTE_READONLY)) {
      if (DeleteFileW(p)) return 0;
      e = GetLastError();
      SetFileAttributesW(p, a);
    }
  }
  return mp_err_from_win(e);
}

/* READDIR: the names go to the head of the op's private memory (op.c). */
static int64_t readdir_op(struct mp_op *op, const wchar_t *p) {
  size_t pl = wcslen(p), len = 0, cap = 0;
  wchar_t *pat = malloc((pl + 3) * sizeof *pat);
  WIN32_FIND_DATAW fd;
  char *names = NULL, name[MAX_PATH * 4];
  int64_t count = 0;
  DWORD a = GetFileAttributesW(p);
  if (a == INVALID_FILE_ATTRIBUTES) {
    free(pat);
    return path_err(p);
  }
  if (!(a & FILE_ATTRIBUTE_DIRECTORY)) {
    free(pat);
    return MP_ENOTDIR;
  }
  if (!pat) return MP_ENOMEM;
  memcpy(pat, p, pl * sizeof *pat);
  if (pl && p[pl - 1] != L'\\' && p[pl - 1] != L'/') pat[pl++] = L'\\';
  pat[pl++] = L'*';
  pat[pl] = 0;
  HANDLE f = FindFirstFileW(pat, &fd);
  free(pat);
  if (f == INVALID_HANDLE_VALUE) {
    DWORD e = GetLastError();
    return e == ERROR_FILE_NOT_FOUND ? 0 : mp_err_from_win(e);
  }
  do {
    const wchar_t *w = fd.cFileName;
    if (w[0] == L'.' && (!w[1] || (w[1] == L'.' && !w[2]))) continue;
    int n = narrow(w, name, sizeof name);
    if (n < 0) continue;
    if (len + (size_t)n + 1 > cap) {
      size_t c = cap ? cap * 2 : 4096;
      while (c < len + (size_t)n + 1) c *= 2;
      char *q = realloc(names, c);
      if (!q) {
        count = MP_ENOMEM;
        break;
      }
      names = q;
      cap = c;
    }
    memcpy(names + len, name, (size_t)n + 1);
    len += (size_t)n + 1;
    count++;
  } while (FindNextFileW(f, &fd));
  if (count >= 0 && GetLastError() != ERROR_NO_MORE_FILES) count = last_err();
  FindClose(f);
  if (count < 0) {
    free(names);
    return count;
  }
  *(char **)op->priv = names; /* the op frees them (op.c) */
  op->u.fs.buf = names;
  op->u.fs.len = len;
  return count;
}

/* Six characters for a template: no two calls in a process alike. */
static void fill_template(char *x, unsigned try) {
  static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  LARGE_INTEGER t;
  QueryPerformanceCounter(&t);
  uint64_t r = (uint64_t)t.QuadPart * 0x9e3779b97f4a7c15ull ^
               ((uint64_t)GetCurrentProcessId() << 32) ^
               (uint64_t)GetCurrentThreadId() * 0xbf58476d1ce4e5b9ull ^ try;
  for (int i = 0; i < 6; i++) {
    r ^= r >> 29;
    r *= 0x94d049bb133111ebull;
    x[i] = chars[(r >> 40) % 36];
  }
}

static int64_t write_all(HANDLE h, const char *p, size_t n) {
  int64_t off = 0;
  while (n > 0) {
    int64_t r = sync_io(h, 1, (void *)p, n, off, NULL);
    if (r < 0) return r;
    if (r == 0) return MP_EIO;
    p += r;
    off += r;
    n -= (size_t)r;
  }
  return 0;
}

/* mp__readfile_all's read: bytes of h (a disk file) at off. */
static int64_t read_at(void *h, void *buf, size_t len, int64_t off) {
  return sync_io(h, 0, buf, len, off, NULL);
}

/* READFILE: the file opened as fs.open opens it for reading; a disk
 * file read to its end into a buffer of its size (plus one byte: a read
 * of 0 proves the end), then closed; a pipe or a console would hold this
 * thread: handed back open, unread. */
static int64_t readfile_op(struct mp_op *op, const wchar_t *p) {
  struct mp__rf *rf = op->u.fs.buf;
  BY_HANDLE_FILE_INFORMATION fi;
  free(rf->buf); /* an op submitted again: its last bytes go */
  rf->buf = NULL;
  rf->cap = rf->len = 0;
  op->handle = MP_INVALID_HANDLE; /* an output: a last hand-back's */
  int64_t r = open_op(op, p), e = 0;
  if (r < 0) return r;
  HANDLE h = (HANDLE)(intptr_t)r;
  if (GetFileType(h) != FILE_TYPE_DISK) {
    op->handle = h;
    return MP_EAGAIN;
  }
  if (!GetFileInformationByHandle(h, &fi)) e = last_err();
  else if (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) e = MP_EISDIR;
  if (e < 0) {
    CloseHandle(h);
    return e;
  }
  uint64_t size = ((uint64_t)fi.nFileSizeHigh << 32) | fi.nFileSizeLow;
  r = mp__readfile_all(rf, size, read_at, h);
  CloseHandle(h);
  return r;
}

/* WRITEFILE: a temporary in the same directory (TARGET.mp-tmp-PID-XXXXXX,
 * created exclusively), written, flushed, and moved over the target;
 * removed on any failure. */
static int64_t writefile_op(struct mp_op *op, const wchar_t *p) {
  const char *path = op->u.fs.path;
  size_t n = strlen(path);
  char *tmp = malloc(n + 48);
  int64_t err = 0;
  if (!tmp) return MP_ENOMEM;
  if (is_dir_w(p)) {
    free(tmp);
    return MP_EISDIR;
  }
  for (unsigned i = 0; i < 16; i++) {
    int len = snprintf(tmp, n + 48, "%s.mp-tmp-%lu-XXXXXX", path,
                       (unsigned long)GetCurrentProcessId());
    fill_template(tmp + len - 6, i);
    wchar_t *w = wide(tmp, (int *)&err);
    if (!w) break;
    HANDLE h = open_w(w, GENERIC_WRITE | DELETE, CREATE_NEW, 0);
    if (h == INVALID_HANDLE_VALUE) {
      err = path_err(w);
      free(w);
      if (err == MP_EEXIST) continue;
      break;
    }
    err = write_all(h, op->u.fs.buf, op->u.fs.len);
    if (!err && !FlushFileBuffers(h)) err = last_err();
    CloseHandle(h);
    if (!err && !MoveFileExW(w, p, MOVEFILE_REPLACE_EXISTING |
                                       MOVEFILE_WRITE_THROUGH))
      err = last_err();
    if (err) DeleteFileW(w);
    free(w);
    break;
  }
  free(tmp);
  return err;
}

static int64_t utime_op(struct mp_op *op, const wchar_t *p) {
  const int64_t *t = op->u.fs.buf;
  FILETIME at = filetime_of(t[0]), mt = filetime_of(t[1]);
  HANDLE h = open_w(p, FILE_WRITE_ATTRIBUTES, OPEN_EXISTING, 0);
  if (h == INVALID_HANDLE_VALUE) return path_err(p);
  BOOL ok = SetFileTime(h, NULL, &at, &mt);
  int64_t r = ok ? 0 : last_err();
  CloseHandle(h);
  return r;
}

static int64_t realpath_op(struct mp_op *op, const wchar_t *p) {
  wchar_t w[MP__PATH_MAX];
  HANDLE h = open_w(p, FILE_READ_ATTRIBUTES, OPEN_EXISTING, 0);
  if (h == INVALID_HANDLE_VALUE) return path_err(p);
  DWORD n = GetFinalPathNameByHandleW(h, w, MP__PATH_MAX, 0);
  int64_t r = n == 0 ? last_err() : n >= MP__PATH_MAX ? MP_ENAMETOOLONG : 0;
  CloseHandle(h);
  if (r < 0) return r;
  const wchar_t *s = w;
  if (!wcsncmp(s, L"\\\\?\\UNC\\", 8)) {
    s += 6; /* \\?\UNC\server -> \\server */
    w[6] = L'\\';
  } else if (!wcsncmp(s, L"\\\\?\\", 4)) {
    s += 4;
  }
  return narrow(s, op->u.fs.buf, MP__PATH_MAX);
}

static int64_t mkdtemp_op(struct mp_op *op) {
  char *path = (char *)op->u.fs.path;
  size_t n = strlen(path);
  int err = 0;
  for (unsigned i = 0; i < 64; i++) {
    fill_template(path + n - 6, i);
    wchar_t *w = wide(path, &err);
    if (!w) return err;
    BOOL ok = CreateDirectoryW(w, NULL);
    err = ok ? 0 : path_err(w);
    free(w);
    if (ok) return (int64_t)n;
    if (err != MP_EEXIST) return err;
  }
  return MP_EEXIST;
}

static int64_t truncate_op(struct mp_op *op, const wchar_t *p) {
  HANDLE h = op->handle;
  if (p && is_dir_w(p)) return MP_EISDIR;
  if (p) h = open_w(p, GENERIC_WRITE, OPEN_EXISTING, 0);
  if (h == INVALID_HANDLE_VALUE) return p ? path_err(p) : MP_EBADF;
  FILE_END_OF_FILE_INFO eof = {.EndOfFile.QuadPart = (LONGLONG)op->u.fs.len};
  BOOL ok = SetFileInformationByHandle(h, FileEndOfFileInfo, &eof,
                                       sizeof eof);
  int64_t r = ok ? 0 : last_err();
  if (p) CloseHandle(h);
  return r;
}

static int64_t tmpfile_op(struct mp_op *op) {
  char *dir = (char *)op->u.fs.path;
  size_t n = strlen(dir);
  int err = 0;
  for (unsigned i = 0; i < 16; i++) {
    dir[n] = 0;
    strcat(dir, "/moonport-" MP__TEMPLATE); /* prep left room */
    fill_template(dir + strlen(dir) - 6, i);
    wchar_t *w = wide(dir, &err);
    if (!w) return err;
    HANDLE h = open_w(w, GENERIC_READ | GENERIC_WRITE | DELETE, CREATE_NEW,
                      FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE |
                          FILE_FLAG_OVERLAPPED);
    err = h == INVALID_HANDLE_VALUE ? path_err(w) : 0;
    free(w);
    if (!err) return (int64_t)(intptr_t)h;
    if (err != MP_EEXIST) return err;
  }
  return MP_EEXIST;
}

/* The identity of the file at p: 0, or an error. */
static int file_id(const wchar_t *p, BY_HANDLE_FILE_INFORMATION *fi) {
  HANDLE h = open_w(p, FILE_READ_ATTRIBUTES, OPEN_EXISTING, 0);
  if (h == INVALID_HANDLE_VALUE) return path_err(p);
  int r = GetFileInformationByHandle(h, fi) ? 0 : last_err();
  CloseHandle(h);
  return r;
}

/* COPYFILE: CopyFileW, which replaces the target (cp rewrites it in
 * place); u.fs.flags says which side a failure concerns. */
static int64_t copy_op(struct mp_op *op, const wchar_t *from,
                       const wchar_t *to) {
  BY_HANDLE_FILE_INFORMATION a, b;
  int err = file_id(from, &a);
  op->u.fs.flags = 0;
  if (err) return err;
  if (a.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) return MP_EISDIR;
  op->u.fs.flags = 1;
  if (is_dir_w(to)) return MP_EISDIR; /* (Windows: access denied) */
  if (file_id(to, &b) == 0 &&
      a.dwVolumeSerialNumber == b.dwVolumeSerialNumber &&
      a.nFileIndexHigh == b.nFileIndexHigh &&
      a.nFileIndexLow == b.nFileIndexLow)
    return MP_EINVAL; /* onto itself */
  if (CopyFileW(from, to, FALSE)) {
    op->u.fs.flags = 0;
    return 0;
  }
  err = path_err(to);
  if (GetFileAttributesW(from) == INVALID_FILE_ATTRIBUTES) op->u.fs.flags = 0;
  return err;
}

static int64_t symlink_op(const wchar_t *path, const wchar_t *target) {
  /* 2: SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE (developer mode) */
  DWORD flags = 2 | (is_dir_w(target) ? SYMBOLIC_LINK_FLAG_DIRECTORY : 0);
  if (GetFileAttributesW(path) != INVALID_FILE_ATTRIBUTES) return MP_EEXIST;
  /* wine 8's is a stub that succeeds and makes nothing */
  if (CreateSymbolicLinkW(path, target, flags))
    return GetFileAttributesW(path) != INVALID_FILE_ATTRIBUTES ? 0
                                                               : MP_ENOSYS;
  DWORD e = GetLastError();
  if (e == ERROR_INVALID_PARAMETER && CreateSymbolicLinkW(path, target,
                                                          flags & ~2u))
    return 0; /* older systems refuse the flag */
  return mp_err_from_win(e == ERROR_INVALID_PARAMETER ? GetLastError() : e);
}

void mp__fs_blocking(struct mp_op *op) {
  wchar_t *p = NULL, *p2 = NULL;
  int err = 0;
  int64_t r;
  int has_path = op->u.fs.path && !(op->kind == MP_OP_STAT &&
                                    op->handle != MP_INVALID_HANDLE);
  if (op->kind == MP_OP_MKDTEMP || op->kind == MP_OP_TMPFILE ||
      op->kind == MP_OP_FSYNC)
    has_path = 0; /* they build theirs, or have none */
  if (has_path && !(p = wide(op->u.fs.path, &err))) {
    op->result = err;
    return;
  }
  if (op->u.fs.path2 && !(p2 = wide(op->u.fs.path2, &err))) {
    free(p);
    op->result = err;
    return;
  }
  switch (op->kind) {
    case MP_OP_OPEN: r = open_op(op, p); break;
    case MP_OP_STAT: r = stat_op(op, p); break;
    case MP_OP_FSYNC:
      r = FlushFileBuffers(op->handle) ? 0 : last_err();
      break;
    case MP_OP_RENAME:
      r = MoveFileExW(p, p2, MOVEFILE_REPLACE_EXISTING) ? 0 : path_err(p);
      break;
    case MP_OP_UNLINK: r = unlink_op(p); break;
    case MP_OP_RMDIR: r = RemoveDirectoryW(p) ? 0 : path_err(p); break;
    case MP_OP_MKDIR: r = CreateDirectoryW(p, NULL) ? 0 : path_err(p); break;
    case MP_OP_READDIR: r = readdir_op(op, p); break;
    case MP_OP_WRITEFILE: r = writefile_op(op, p); break;
    case MP_OP_READFILE: r = readfile_op(op, p); break;
    case MP_OP_CHMOD: {
      DWORD a = GetFileAttributesW(p);
      if (a == INVALID_FILE_ATTRIBUTES) {
        r = path_err(p);
        break;
      }
      a = op->u.fs.mode & 0200 ? a & ~(DWORD)FILE_ATTRIBUTE_READONLY
                               : a | FILE_ATTRIBUTE_READONLY;
      r = SetFileAttributesW(p, a) ? 0 : last_err();
      break;
    }
    case MP_OP_UTIME: r = utime_op(op, p); break;
    case MP_OP_SYMLINK: r = symlink_op(p, p2); break;
    case MP_OP_REALPATH: r = realpath_op(op, p); break;
    case MP_OP_MKDTEMP: r = mkdtemp_op(op); break;
    case MP_OP_TRUNCATE: r = truncate_op(op, p); break;
    case MP_OP_TMPFILE: r = tmpfile_op(op); break;
    case MP_OP_COPYFILE: r = copy_op(op, p, p2); break;
    case MP_OP_CHOWN: /* no owners: keeping both ids is all it can do */
      if (GetFileAttributesW(p) == INVALID_FILE_ATTRIBUTES) r = path_err(p);
      else r = op->u.fs.mode == MP_OWNER_KEEP &&
                       (uint32_t)op->u.fs.flags == MP_OWNER_KEEP
                   ? 0 : MP_ENOSYS;
      break;
    case MP_OP_READLINK:
      r = GetFileAttributesW(p) == INVALID_FILE_ATTRIBUTES ? path_err(p)
                                                           : MP_ENOSYS;
      break;
    default: r = MP_EINVAL; break;
  }
  free(p);
  free(p2);
  op->result = r;
}

/* The blocking body of an op the backend sent to the threadpool. A
 * READ or WRITE may wait for ever (a console, a pipe): the backend's
 * cancel interrupts it (CancelSynchronousIo of the thread in ov.b, or
 * CancelIoEx), by the handshake of call_enter. */
void mp__os_blocking(struct mp_op *op) {
  switch (op->kind) {
    case MP_OP_READ: case MP_OP_WRITE: case MP_OP_RECV: case MP_OP_SEND:
      op->ov.b = GetCurrentThreadId();
      op->result = sync_io(op->handle, op->kind == MP_OP_WRITE ||
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
