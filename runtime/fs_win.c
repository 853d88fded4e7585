/* fs_win.c: files and paths on Windows: the blocking bodies of the file
 * and path ops the IOCP backend sends to the threadpool (every one). The
 * calls on an open handle, and READ and WRITE on handles that cannot be
 * overlapped (consoles, inherited pipes and files opened synchronously),
 * are fsio_win.c's.
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

/* FILETIME (100 ns since 1601) to seconds and ns since 1970. */
void mp__time_of(const FILETIME *ft, int64_t *sec, int32_t *nsec) {
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
    mp__time_of(&ad.ftLastAccessTime, &st->atime.sec, &st->atime.nsec);
    mp__time_of(&ad.ftLastWriteTime, &st->mtime.sec, &st->mtime.nsec);
    mp__time_of(&ad.ftLastWriteTime, &st->ctime.sec, &st->ctime.nsec);
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
    int64_t r = mp__sync_io(h, 1, (void *)p, n, off, NULL);
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
  return mp__sync_io(h, 0, buf, len, off, NULL);
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
