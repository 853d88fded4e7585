/* watch_win.c: mp_watch on Windows: ReadDirectoryChangesW.
 *
 * A directory's changes are read by a thread of the watch's own (with
 * overlapped IO, so that mp_watch_free can stop it at any moment), which
 * passes each batch as one message down a named pipe; the pipe's other
 * end is the watch's handle, read by a plain MP_OP_READ like inotify's
 * descriptor on Linux. A batch the system could not hold (0 bytes) goes
 * down as a one-byte message: an overflow. A file is watched through its
 * directory, keeping the changes to its own name. Recursive watches are
 * the system's (bWatchSubtree): new subdirectories are covered at once.
 * Names use '/' (the watched path as given, then '/' and the relative
 * name), as the Lua side joins them. */
#include <winsock2.h> /* before windows.h, as os.h has it */
#include <windows.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "mp_internal.h"

/* One batch: what ReadDirectoryChangesW fills, well under MP_WATCH_BUF
 * (a read of the pipe gets one whole message). */
enum { BATCH = 32768 };

#define FILTER                                                             \
  (FILE_NOTIFY_CHANGE_FILE_NAME | FILE_NOTIFY_CHANGE_DIR_NAME |            \
   FILE_NOTIFY_CHANGE_SIZE | FILE_NOTIFY_CHANGE_LAST_WRITE |               \
   FILE_NOTIFY_CHANGE_ATTRIBUTES | FILE_NOTIFY_CHANGE_CREATION)

struct mp_watch {
  int flags;
  char *root;       /* the watched path as given, no trailing separator */
  wchar_t *dirw;    /* the directory read (root, or a file's parent) */
  wchar_t *name;    /* a watched file's name in dirw, else NULL */
  HANDLE dir, pipe, writer, stop, thread;
  OVERLAPPED rov, wov;      /* the thread's reads and writes */
  struct mp__wq ev; /* the decoded events */
  unsigned char buf[BATCH]; /* what the system fills */
  unsigned char out[BATCH]; /* the batch being passed on */
};

static wchar_t *wide(const char *s, int *err) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  wchar_t *p = n > 0 ? malloc((size_t)n * sizeof *p) : NULL;
  if (n <= 0) *err = MP_EILSEQ;
  else if (!p) *err = MP_ENOMEM;
  else MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, p, n);
  return p;
}

/* ---- the reading thread ---- */

/* Waits for the overlapped call on h; FALSE when it failed or when the
 * watch is stopped (then the call is cancelled and over: the kernel
 * holds nothing of ours). */
static BOOL finish(struct mp_watch *w, HANDLE h, OVERLAPPED *ov, DWORD *n) {
  HANDLE two[2] = {ov->hEvent, w->stop};
  if (WaitForMultipleObjects(2, two, FALSE, INFINITE) != WAIT_OBJECT_0) {
    CancelIoEx(h, ov);
    GetOverlappedResult(h, ov, n, TRUE);
    SetLastError(ERROR_OPERATION_ABORTED);
    return FALSE;
  }
  return GetOverlappedResult(h, ov, n, TRUE);
}

/* Starts a read of the directory's changes; FALSE if it failed. */
static BOOL start_read(struct mp_watch *w) {
  ResetEvent(w->rov.hEvent);
  return ReadDirectoryChangesW(w->dir, w->buf, sizeof w->buf,
                               (w->flags & MP_WATCH_RECURSIVE) != 0, FILTER,
                               NULL, &w->rov, NULL) ||
         GetLastError() == ERROR_IO_PENDING;
}

/* mp_watch_open started the first read: the system records changes
 * from then on, not from when this thread first runs. Each next read
 * starts before a batch is passed on, so nothing goes unrecorded. */
static DWORD WINAPI reader(void *arg) {
  struct mp_watch *w = arg;
  BOOL reading = TRUE;
  while (reading) {
    DWORD n = 0;
    if (!finish(w, w->dir, &w->rov, &n)) {
      DWORD e = GetLastError();
      if (e == ERROR_OPERATION_ABORTED) return 0; /* stopped */
      if (e != ERROR_NOTIFY_ENUM_DIR) break; /* the directory went */
      n = 0; /* the system dropped changes: an overflow */
    }
    memcpy(w->out, w->buf, n);
    reading = start_read(w);
    ResetEvent(w->wov.hEvent);
    if ((!WriteFile(w->writer, w->out, n ? n : 1, NULL, &w->wov) &&
         GetLastError() != ERROR_IO_PENDING) ||
        !finish(w, w->writer, &w->wov, &n)) {
      if (reading) { /* the reader is gone: end the read too */
        CancelIoEx(w->dir, &w->rov);
        GetOverlappedResult(w->dir, &w->rov, &n, TRUE);
      }
      break;
    }
  }
  /* Nothing more to read; the pipe stays open (a closed one would read
   * as end of file, again and again) until the watch is freed. */
  WaitForSingleObject(w->stop, INFINITE);
  return 0;
}

/* ---- open ---- */

/* The pipe: the loop's end overlapped and inbound, the thread's end
 * overlapped too; messages, so that one read gets one batch. */
static int make_pipe(struct mp_watch *w) {
  static atomic_uint serial;
  wchar_t name[96];
  swprintf(name, sizeof name / sizeof *name,
           L"\\\\.\\pipe\\moonport-watch-%lu-%u-%p", GetCurrentProcessId(),
           atomic_fetch_add(&serial, 1), (void *)w);
  w->pipe = CreateNamedPipeW(name, PIPE_ACCESS_INBOUND |
                                       FILE_FLAG_OVERLAPPED |
                                       FILE_FLAG_FIRST_PIPE_INSTANCE,
                             PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE |
                                 PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                             1, BATCH, BATCH, 0, NULL);
  if (w->pipe == INVALID_HANDLE_VALUE) {
    w->pipe = NULL;
    return mp_err_from_win(GetLastError());
  }
  w->writer = CreateFileW(name, GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                          FILE_FLAG_OVERLAPPED, NULL);
  if (w->writer == INVALID_HANDLE_VALUE) {
    w->writer = NULL;
    return mp_err_from_win(GetLastError());
  }
  return 0;
}

int mp_watch_open(const char *path, int flags, struct mp_watch **out) {
  struct mp_watch *w = calloc(1, sizeof *w);
  size_t n = strlen(path);
  int r = 0;
  *out = NULL;
  if (!w) return MP_ENOMEM;
  w->flags = flags;
  if (!(w->root = malloc(n + 1))) {
    r = MP_ENOMEM;
    goto fail;
  }
  memcpy(w->root, path, n + 1);
  while (n > 1 && (w->root[n - 1] == '/' || w->root[n - 1] == '\\'))
    w->root[--n] = '\0'; /* "dir/" */
  if (!(w->dirw = wide(w->root, &r))) goto fail;
  DWORD a = GetFileAttributesW(w->dirw);
  if (a == INVALID_FILE_ATTRIBUTES) {
    r = mp_err_from_win(GetLastError());
    goto fail;
  }
  if (!(a & FILE_ATTRIBUTE_DIRECTORY)) {
    /* a file: its directory, for its name only */
    wchar_t *sep = NULL;
    for (wchar_t *p = w->dirw; *p; p++)
      if (*p == L'/' || *p == L'\\') sep = p;
    size_t len = wcslen(sep ? sep + 1 : w->dirw);
    if (!(w->name = malloc((len + 1) * sizeof *w->name))) {
      r = MP_ENOMEM;
      goto fail;
    }
    wcscpy(w->name, sep ? sep + 1 : w->dirw);
    if (sep && sep == w->dirw) sep[1] = 0; /* "/f": the root */
    else if (sep) *sep = 0;
    else wcscpy(w->dirw, L".");
    w->flags &= ~MP_WATCH_RECURSIVE;
  }
  w->dir = CreateFileW(w->dirw, FILE_LIST_DIRECTORY,
                       FILE_SHARE_READ | FILE_SHARE_WRITE |
                           FILE_SHARE_DELETE,
                       NULL, OPEN_EXISTING,
                       FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OVERLAPPED,
                       NULL);
  if (w->dir == INVALID_HANDLE_VALUE) {
    w->dir = NULL;
    r = mp_err_from_win(GetLastError());
    goto fail;
  }
  if ((r = make_pipe(w)) < 0) goto fail;
  if (!(w->stop = CreateEventW(NULL, TRUE, FALSE, NULL)) ||
      !(w->rov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL)) ||
      !(w->wov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL))) {
    r = mp_err_from_win(GetLastError());
    goto fail;
  }
  if (!start_read(w)) {
    r = mp_err_from_win(GetLastError());
    goto fail;
  }
  if (!(w->thread = CreateThread(NULL, 64 * 1024, reader, w, 0, NULL))) {
    DWORD got;
    r = mp_err_from_win(GetLastError());
    CancelIoEx(w->dir, &w->rov);
    GetOverlappedResult(w->dir, &w->rov, &got, TRUE);
    goto fail;
  }
  *out = w;
  return 0;
fail:
  if (w->pipe) CloseHandle(w->pipe); /* not the caller's yet */
  w->pipe = NULL;
  mp_watch_free(w);
  return r;
}

mp_handle_t mp_watch_handle(const struct mp_watch *w) { return w->pipe; }

void mp_op_prep_watch(struct mp_op *op, struct mp_watch *w, void *buf,
                      size_t len) {
  mp_op_prep_read(op, w->pipe, buf, len, -1);
}

/* ---- decoding ---- */

/* root + '/' + the UTF-16 name (its '\\' as '/'); NULL if out of
 * memory. A watched file is reported as its own path. */
static char *join(struct mp_watch *w, const wchar_t *name, size_t wlen) {
  if (w->name) return _strdup(w->root);
  int n = WideCharToMultiByte(CP_UTF8, 0, name, (int)wlen, NULL, 0, NULL,
                              NULL);
  size_t a = strlen(w->root);
  char *p = malloc(a + 1 + (size_t)(n > 0 ? n : 0) + 1);
  if (!p) return NULL;
  memcpy(p, w->root, a);
  p[a++] = '/';
  if (n > 0) WideCharToMultiByte(CP_UTF8, 0, name, (int)wlen, p + a, n,
                                 NULL, NULL);
  p[a + (size_t)(n > 0 ? n : 0)] = '\0';
  for (char *c = p + a; *c; c++)
    if (*c == '\\') *c = '/';
  return p;
}

/* A directory's own "modified" (its listing changed) is not a change
 * of a file: inotify does not report it either. */
static int is_dir(const char *path) {
  int err = 0;
  wchar_t *p = wide(path, &err);
  DWORD a = p ? GetFileAttributesW(p) : INVALID_FILE_ATTRIBUTES;
  free(p);
  return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY);
}

void mp_watch_feed(struct mp_watch *w, const void *buf, size_t len) {
  const unsigned char *b = buf;
  char *old = NULL; /* a rename's old name, waiting for the new one */
  size_t off = 0;
  const size_t head = offsetof(FILE_NOTIFY_INFORMATION, FileName);
  if (len < head) { /* the thread's one-byte message */
    mp__wq_push(&w->ev, MP_WEV_OVERFLOW, NULL, NULL);
    return;
  }
  for (;;) {
    FILE_NOTIFY_INFORMATION fi; /* its head: a short name ends sooner */
    if (off + head > len) break;
    memcpy(&fi, b + off, head);
    size_t nlen = fi.FileNameLength / sizeof(wchar_t);
    size_t noff = off + head;
    if (noff + fi.FileNameLength > len) break;
    wchar_t *name = malloc((nlen + 1) * sizeof *name);
    if (name) {
      memcpy(name, b + noff, fi.FileNameLength);
      name[nlen] = 0;
    }
    int mine = name && (!w->name || _wcsicmp(name, w->name) == 0);
    char *path = mine ? join(w, name, nlen) : NULL;
    free(name);
    if (fi.Action == FILE_ACTION_RENAMED_NEW_NAME) {
      if (old && path) mp__wq_push(&w->ev, MP_WEV_RENAME, path, old);
      else if (path) mp__wq_push(&w->ev, MP_WEV_CREATE, path, NULL);
      else if (old) mp__wq_push(&w->ev, MP_WEV_DELETE, old, NULL);
      old = NULL;
    } else {
      if (old) mp__wq_push(&w->ev, MP_WEV_DELETE, old, NULL); /* moved out */
      old = NULL;
      switch (fi.Action) {
        case FILE_ACTION_ADDED: mp__wq_push(&w->ev, MP_WEV_CREATE, path, NULL); break;
        case FILE_ACTION_REMOVED: mp__wq_push(&w->ev, MP_WEV_DELETE, path, NULL); break;
        case FILE_ACTION_RENAMED_OLD_NAME: old = path; break;
        case FILE_ACTION_MODIFIED:
          if (path && !is_dir(path)) mp__wq_push(&w->ev, MP_WEV_MODIFY, path, NULL);
          else free(path);
          break;
        default: free(path); break;
      }
    }
    if (!fi.NextEntryOffset) break;
    off += fi.NextEntryOffset;
  }
  if (old) mp__wq_push(&w->ev, MP_WEV_DELETE, old, NULL);
}

int mp_watch_take(struct mp_watch *w, struct mp_watch_event *ev) {
  return mp__wq_take(&w->ev, ev);
}

void mp_watch_free(struct mp_watch *w) {
  if (!w) return;
  if (w->thread) {
    SetEvent(w->stop);
    WaitForSingleObject(w->thread, INFINITE);
    CloseHandle(w->thread);
  }
  if (w->stop) CloseHandle(w->stop);
  if (w->rov.hEvent) CloseHandle(w->rov.hEvent);
  if (w->wov.hEvent) CloseHandle(w->wov.hEvent);
  if (w->writer) CloseHandle(w->writer);
  if (w->dir) CloseHandle(w->dir);
  mp__wq_free(&w->ev);
  free(w->root);
  free(w->dirw);
  free(w->name);
  free(w);
}
