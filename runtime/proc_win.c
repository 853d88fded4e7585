/* proc_win.c: mp_os.h's processes and signals on Windows.
 *
 * Spawn is CreateProcessW, all or nothing: the command line is quoted
 * the way the C runtime splits it again (CommandLineToArgvW / MSVCRT
 * rules), the environment becomes a UTF-16 block, and the child inherits
 * exactly its three standard handles (PROC_THREAD_ATTRIBUTE_HANDLE_LIST;
 * every handle of ours is created non-inheritable anyway). A child's
 * pipe is a named pipe: the parent's end overlapped (the IOCP backend
 * reads and writes it), the child's end synchronous, as programs expect.
 * Children go into one job object per process, made on the first spawn
 * (KILL_ON_JOB_CLOSE): when the parent ends, however it ends, they end
 * too.
 *
 * Windows has no signals between processes. mp_os_proc_kill ends the
 * process with TerminateProcess whatever the signal (as libuv does) and
 * marks its exit code so that mp_os_proc_status reports "ended by that
 * signal". Signal routing covers the console's control events: Ctrl-C
 * (INT), Ctrl-Break (BREAK) and the console closing (HUP), delivered by
 * SetConsoleCtrlHandler on a thread of the system's: the handler counts
 * the arrival and sets the route's event, which MP_OP_POLL waits on.
 * Other signals cannot arrive: routing them is MP_ENOSYS. */
#include <winsock2.h> /* before windows.h, as os.h has it */
#include <windows.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "mp_internal.h"
#include "mp_os.h"


static int fail(void) { return mp_err_from_win(GetLastError()); }

/* The signal numbers: Linux's, so scripts see the same ones, and
 * BREAK as the C runtime numbers it. */
enum { S_HUP = 1, S_INT = 2, S_QUIT = 3, S_ILL = 4, S_ABRT = 6, S_FPE = 8,
       S_KILL = 9, S_SEGV = 11, S_TERM = 15, S_BREAK = 21 };

static const struct { const char *name; int num; } signals[] = {
  {"HUP", S_HUP}, {"INT", S_INT}, {"QUIT", S_QUIT}, {"ILL", S_ILL},
  {"ABRT", S_ABRT}, {"FPE", S_FPE}, {"KILL", S_KILL}, {"SEGV", S_SEGV},
  {"TERM", S_TERM}, {"BREAK", S_BREAK},
};
enum { NSIGNALS = sizeof signals / sizeof signals[0] };

int mp_os_signum(const char *name) {
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (int i = 0; i < NSIGNALS; i++)
    if (strcmp(signals[i].name, name) == 0) return signals[i].num;
  return MP_EINVAL;
}

const char *mp_os_signame(int signo) {
  for (int i = 0; i < NSIGNALS; i++)
    if (signals[i].num == signo) return signals[i].name;
  return NULL;
}

/* ---- text ---- */

/* UTF-8 to a new UTF-16 string (free it); NULL with *err set. */
static wchar_t *wide(const char *s, int *err) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  wchar_t *w = n > 0 ? malloc((size_t)n * sizeof *w) : NULL;
  if (n <= 0) *err = MP_EILSEQ;
  else if (!w) *err = MP_ENOMEM;
  else MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n);
  return w;
}

/* Appends a as one argument that CommandLineToArgvW and the C runtime
 * split back to a: quoted when empty or holding blanks or quotes, with
 * the backslashes before a quote (or the closing quote) doubled. */
static wchar_t *quote(wchar_t *out, const wchar_t *a) {
  if (*a && !wcspbrk(a, L" \t\n\v\"")) {
    size_t n = wcslen(a);
    memcpy(out, a, n * sizeof *a);
    return out + n;
  }
  *out++ = L'"';
  for (;;) {
    size_t bs = 0;
    while (*a == L'\\') { a++; bs++; }
    if (*a == 0 || *a == L'"') {
      bs = bs * 2 + (*a == L'"'); /* doubled, plus one for a quote */
      while (bs--) *out++ = L'\\';
      if (*a == 0) break;
      *out++ = *a++;
    } else {
      while (bs--) *out++ = L'\\';
      *out++ = *a++;
    }
  }
  *out++ = L'"';
  return out;
}

static wchar_t *command_line(const char *const *argv, int *err) {
  size_t cap = 1;
  wchar_t **w;
  int n = 0;
  while (argv[n]) n++;
  if (!(w = calloc((size_t)n, sizeof *w))) {
    *err = MP_ENOMEM;
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    if (!(w[i] = wide(argv[i], err))) break;
    cap += wcslen(w[i]) * 2 + 3;
  }
  wchar_t *line = *err ? NULL : malloc(cap * sizeof *line), *p = line;
  if (line) {
    for (int i = 0; i < n; i++) {
      if (i) *p++ = L' ';
      p = quote(p, w[i]);
    }
    *p = 0;
  } else if (!*err) {
    *err = MP_ENOMEM;
  }
  for (int i = 0; i < n; i++) free(w[i]);
  free(w);
  return line;
}

/* The environment block: "NAME=value" strings, each ended by a zero,
 * then one more zero. SYSTEMROOT is added from ours when missing: without
 * it Windows programs cannot even start Winsock. */
static wchar_t *env_block(const char *const *env, int *err) {
  size_t cap = 2, len = 0;
  int has_root = 0;
  wchar_t root[MAX_PATH + 12];
  DWORD rn = GetEnvironmentVariableW(L"SYSTEMROOT", root + 11, MAX_PATH);
  for (const char *const *e = env; *e; e++) {
    if (_strnicmp(*e, "SYSTEMROOT=", 11) == 0) has_root = 1;
    cap += strlen(*e) + 1; /* UTF-16 units <= UTF-8 bytes */
  }
  if (!has_root && rn > 0 && rn < MAX_PATH) {
    memcpy(root, L"SYSTEMROOT=", 11 * sizeof *root);
    cap += wcslen(root) + 1;
  } else {
    has_root = 1;
  }
  wchar_t *b = malloc(cap * sizeof *b);
  if (!b) {
    *err = MP_ENOMEM;
    return NULL;
  }
  for (const char *const *e = env; *e; e++) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, *e, -1,
                                b + len, (int)(cap - len));
    if (n <= 0) {
      free(b);
      *err = MP_EILSEQ;
      return NULL;
    }
    len += (size_t)n;
  }
  if (!has_root) {
    wcscpy(b + len, root);
    len += wcslen(root) + 1;
  }
  b[len++] = 0;
  if (len == 1) b[len++] = 0; /* an empty block still ends with two */
  return b;
}

/* ---- handles for the child ---- */

static SECURITY_ATTRIBUTES inheritable = {sizeof inheritable, NULL, TRUE};

/* A named pipe: the parent's end (overlapped, not inherited) and the
 * child's (synchronous, inheritable), connected. */
static int pipe_pair(int parent_writes, HANDLE *parent, HANDLE *child) {
  static atomic_uint serial; /* names differ within the process */
  wchar_t name[96];
  HANDLE s = INVALID_HANDLE_VALUE, c;
  for (int tries = 0; s == INVALID_HANDLE_VALUE; tries++) {
    swprintf(name, sizeof name / sizeof *name,
             L"\\\\.\\pipe\\moonport-%lu-%u-%p", GetCurrentProcessId(),
             atomic_fetch_add(&serial, 1), (void *)&name);
    s = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
                                   FILE_FLAG_FIRST_PIPE_INSTANCE,
                         PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                             PIPE_REJECT_REMOTE_CLIENTS,
                         1, 65536, 65536, 0, NULL);
    if (s == INVALID_HANDLE_VALUE &&
        (GetLastError() != ERROR_ACCESS_DENIED || tries > 8))
      return fail(); /* ACCESS_DENIED: the name was taken */
  }
  /* The child's end may also set its own pipe state (the attributes). */
  DWORD access = parent_writes ? GENERIC_READ | FILE_WRITE_ATTRIBUTES
                               : GENERIC_WRITE | FILE_READ_ATTRIBUTES;
  c = CreateFileW(name, access, 0, &inheritable, OPEN_EXISTING, 0, NULL);
  if (c == INVALID_HANDLE_VALUE) {
    int e = fail();
    CloseHandle(s);
    return e;
  }
  *parent = s;
  *child = c;
  return 0;
}

static int null_handle(int i, HANDLE *out) {
  HANDLE h = CreateFileW(L"NUL", i ? GENERIC_WRITE : GENERIC_READ,
                         FILE_SHARE_READ | FILE_SHARE_WRITE, &inheritable,
                         OPEN_EXISTING, 0, NULL);
  if (h == INVALID_HANDLE_VALUE) return fail();
  *out = h;
  return 0;
}

/* An inheritable copy of our standard handle i; NULL when we have none
 * (the child then has none either). */
static int inherit_handle(int i, HANDLE *out) {
  static const DWORD id[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
                              STD_ERROR_HANDLE};
  HANDLE h = GetStdHandle(id[i]), self = GetCurrentProcess();
  *out = NULL;
  if (h == NULL || h == INVALID_HANDLE_VALUE) return 0;
  if (!DuplicateHandle(self, h, self, out, 0, TRUE, DUPLICATE_SAME_ACCESS))
    *out = NULL; /* a handle that cannot be shared: the child has none */
  return 0;
}

/* ---- the job ---- */

static BOOL CALLBACK job_make(PINIT_ONCE once, PVOID arg, PVOID *ctx) {
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
  HANDLE job = CreateJobObjectW(NULL, NULL);
  (void)once;
  (void)arg;
  if (!job) return TRUE; /* *ctx stays NULL: children are not tied */
  memset(&li, 0, sizeof li);
  /* Breakaway allowed: a child may still start something of its own
   * that outlives us (as on Unix). */
  li.BasicLimitInformation.LimitFlags =
      JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_BREAKAWAY_OK |
      JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
  if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li,
                               sizeof li)) {
    CloseHandle(job);
    return TRUE;
  }
  *ctx = job;
  return TRUE;
}

/* The process's job, never closed: the system closes it when the
 * process ends, and that ends the children. NULL if none could be made. */
static HANDLE job(void) {
  static INIT_ONCE once = INIT_ONCE_STATIC_INIT;
  void *j = NULL;
  InitOnceExecuteOnce(&once, job_make, NULL, &j);
  return j;
}

/* ---- spawn ---- */

static int check_dir(const char *cwd, wchar_t **w) {
  int err = 0;
  if (!(*w = wide(cwd, &err))) return err;
  DWORD a = GetFileAttributesW(*w);
  if (a == INVALID_FILE_ATTRIBUTES) {
    err = fail();
    return err == MP_ENOTDIR ? MP_ENOENT : err;
  }
  return a & FILE_ATTRIBUTE_DIRECTORY ? 0 : MP_ENOTDIR;
}

int mp_os_spawn(const struct mp_spawn *o, struct mp_proc *p,
                mp_handle_t pipes[3]) {
  HANDLE child[3] = {NULL, NULL, NULL}, list[3];
  wchar_t *line = NULL, *envb = NULL, *cwd = NULL;
  LPPROC_THREAD_ATTRIBUTE_LIST attrs = NULL;
  STARTUPINFOEXW si;
  PROCESS_INFORMATION pi;
  SIZE_T asize = 0;
  int r = 0, nlist = 0;
  for (int i = 0; i < 3; i++) pipes[i] = MP_INVALID_HANDLE;
  if (!o->argv || !o->argv[0]) return MP_EINVAL;
  if (!(line = command_line(o->argv, &r))) goto done;
  if (o->env && !(envb = env_block(o->env, &r))) goto done;
  if (o->cwd && (r = check_dir(o->cwd, &cwd)) < 0) goto done;
  for (int i = 0; i < 3 && !r; i++) {
    switch (o->stdio[i]) {
      case MP_STDIO_PIPE: r = pipe_pair(i == 0, &pipes[i], &child[i]); break;
      case MP_STDIO_NULL: r = null_handle(i, &child[i]); break;
      case MP_STDIO_STDOUT:
        if (i != 2) r = MP_EINVAL;
        else if (child[1]) child[2] = child[1]; /* the same, not a copy */
        else r = inherit_handle(1, &child[2]);
        break;
      default: r = inherit_handle(i, &child[i]); break;
    }
  }
  if (r) goto done;
  /* Exactly these handles go to the child, each named once. */
  for (int i = 0; i < 3; i++) {
    int seen = child[i] == NULL;
    for (int k = 0; k < nlist && !seen; k++) seen = list[k] == child[i];
    if (!seen) list[nlist++] = child[i];
  }
  InitializeProcThreadAttributeList(NULL, 1, 0, &asize);
  if (!(attrs = malloc(asize))) {
    r = MP_ENOMEM;
    goto done;
  }
  if (!InitializeProcThreadAttributeList(attrs, 1, 0, &asize)) {
    free(attrs);
    attrs = NULL;
    r = fail();
    goto done;
  }
  if (nlist && !UpdateProcThreadAttribute(attrs, 0,
                                          PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                                          list, nlist * sizeof *list, NULL,
                                          NULL)) {
    r = fail();
    goto done;
  }
  memset(&si, 0, sizeof si);
  si.StartupInfo.cb = sizeof si;
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = child[0];
  si.StartupInfo.hStdOutput = child[1];
  si.StartupInfo.hStdError = child[2];
  si.lpAttributeList = attrs;
  /* Suspended until it is in the job, so that whatever it starts is
   * in the job too. */
  if (!CreateProcessW(NULL, line, NULL, NULL, nlist > 0,
                      CREATE_UNICODE_ENVIRONMENT | CREATE_SUSPENDED |
                          EXTENDED_STARTUPINFO_PRESENT,
                      envb, cwd, &si.StartupInfo, &pi)) {
    r = fail();
    goto done;
  }
  HANDLE j = job();
  /* A parent in a job that allows no nesting (before Windows 8) cannot
   * add its children to its own: they are then not tied. */
  if (j) AssignProcessToJobObject(j, pi.hProcess);
  ResumeThread(pi.hThread);
  CloseHandle(pi.hThread);
  p->pid = (int)pi.dwProcessId;
  p->handle = pi.hProcess;
done:
  for (int i = 0; i < 3; i++) {
    if (child[i] && (i < 2 || child[2] != child[1])) CloseHandle(child[i]);
    if (r && pipes[i] != MP_INVALID_HANDLE) {
      CloseHandle(pipes[i]);
      pipes[i] = MP_INVALID_HANDLE;
    }
  }
  if (attrs) {
    DeleteProcThreadAttributeList(attrs);
    free(attrs);
  }
  free(line);
  free(envb);
  free(cwd);
  return r;
}

/* An exit code of ours: the process was ended by mp_os_proc_kill with
 * that signal ("MP" and the signal number). */
enum { KILL_TAG = 0x4d500000, TAG_MASK = 0xffffff00 };

int mp_os_proc_status(const struct mp_proc *p, int block, int *status) {
  DWORD code;
  DWORD w = WaitForSingleObject(p->handle, block ? INFINITE : 0);
  if (w == WAIT_TIMEOUT) return 0;
  if (w != WAIT_OBJECT_0 || !GetExitCodeProcess(p->handle, &code))
    return fail();
  if ((code & TAG_MASK) == KILL_TAG)
    *status = MP_PROC_SIGNALED + (int)(code & 0xff);
  else if (code == 0xC000013A) /* STATUS_CONTROL_C_EXIT */
    *status = MP_PROC_SIGNALED + S_INT;
  else if (code == 0xC0000005) /* STATUS_ACCESS_VIOLATION */
    *status = MP_PROC_SIGNALED + S_SEGV;
  else
    *status = (int)(code & 0xff);
  return 1;
}

int mp_os_proc_kill(const struct mp_proc *p, int signo) {
  if (signo < 0 || signo > 0xff) return MP_EINVAL;
  if (WaitForSingleObject(p->handle, 0) == WAIT_OBJECT_0)
    return 0; /* ended, not yet collected: as a Unix zombie */
  if (signo == 0) return 0;
  if (!TerminateProcess(p->handle, KILL_TAG | (DWORD)signo)) {
    /* it may have ended meanwhile */
    if (WaitForSingleObject(p->handle, 0) == WAIT_OBJECT_0) return 0;
    return fail();
  }
  return 0;
}

int mp_os_dup(mp_handle_t h, mp_handle_t *out) {
  HANDLE self = GetCurrentProcess(), d;
  if (h == NULL || h == MP_INVALID_HANDLE) return MP_EBADF;
  if (!DuplicateHandle(self, h, self, &d, 0, FALSE, DUPLICATE_SAME_ACCESS))
    return fail();
  *out = d;
  return 0;
}

/* ---- signal routing ---- */

/* The routable signals, in the owner table's order. */
static const int routable[] = {S_INT, S_BREAK, S_HUP};
enum { NROUTABLE = sizeof routable / sizeof routable[0] };

static int slot(int signo) {
  for (int i = 0; i < NROUTABLE; i++)
    if (routable[i] == signo) return i;
  return -1;
}

struct mp_sigroute {
  HANDLE ev;                       /* set while arrivals are unread */
  atomic_uint arrived[NROUTABLE];  /* counted by the handler */
  unsigned pending[NROUTABLE];     /* taken from arrived */
  int routed[NROUTABLE];
};

/* Which route owns each signal. Signals are process-wide, so this is a
 * process-wide record (as proc_unix.c's), read by the handler's thread
 * under the lock. */
static SRWLOCK owners_lock = SRWLOCK_INIT;
static struct mp_sigroute *owners[NROUTABLE];

static BOOL WINAPI on_ctrl(DWORD type) {
  int s = type == CTRL_C_EVENT ? 0 : type == CTRL_BREAK_EVENT ? 1
        : type == CTRL_CLOSE_EVENT ? 2 : -1;
  BOOL taken = FALSE;
  if (s < 0) return FALSE;
  AcquireSRWLockShared(&owners_lock);
  struct mp_sigroute *r = owners[s];
  if (r) {
    atomic_fetch_add(&r->arrived[s], 1);
    SetEvent(r->ev);
    taken = TRUE;
  }
  ReleaseSRWLockShared(&owners_lock);
  return taken; /* FALSE: the next handler, or the default (the end) */
}

int mp_os_sigroute_open(struct mp_sigroute **rp, mp_handle_t *h) {
  struct mp_sigroute *r = calloc(1, sizeof *r);
  if (!r) return MP_ENOMEM;
  /* Manual reset: it stays set until mp_os_sigroute_take reads. */
  r->ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (!r->ev) {
    int e = fail();
    free(r);
    return e;
  }
  *rp = r;
  *h = r->ev;
  return 0;
}

int mp_os_sigroute_add(struct mp_sigroute *r, int signo) {
  int s = slot(signo), e = 0;
  if (signo == S_KILL || !mp_os_signame(signo)) return MP_EINVAL;
  if (s < 0) return MP_ENOSYS; /* no such event reaches a process */
  if (r->routed[s]) return 0;
  AcquireSRWLockExclusive(&owners_lock);
  if (owners[s]) {
    e = MP_EBUSY;
  } else {
    /* Installed again, so ours runs first (the last one added runs
     * first), before the command's own Ctrl-C handler. */
    SetConsoleCtrlHandler(on_ctrl, FALSE);
    if (!SetConsoleCtrlHandler(on_ctrl, TRUE)) e = fail();
    else owners[s] = r;
  }
  ReleaseSRWLockExclusive(&owners_lock);
  if (!e) r->routed[s] = 1;
  return e;
}

static void sigroute_read(struct mp_sigroute *r) {
  ResetEvent(r->ev); /* first: an arrival after it sets it again */
  for (int s = 0; s < NROUTABLE; s++)
    r->pending[s] += atomic_exchange(&r->arrived[s], 0);
}

int mp_os_sigroute_take(struct mp_sigroute *r, int signo) {
  int s = slot(signo);
  if (signo <= 0 || signo > 0xff) return MP_EINVAL;
  sigroute_read(r);
  if (s < 0 || !r->pending[s]) return 0;
  r->pending[s] = 0; /* arrivals coalesce */
  return 1;
}

void mp_os_sigroute_close(struct mp_sigroute *r) {
  AcquireSRWLockExclusive(&owners_lock);
  for (int s = 0; s < NROUTABLE; s++)
    if (owners[s] == r) owners[s] = NULL;
  ReleaseSRWLockExclusive(&owners_lock);
  /* The handler stays installed: without an owner it passes every event
   * on, as if it were not there. */
  free(r);
}

/* ---- C stdio's stdout ----
 * The Microsoft C runtime tells no one how many bytes wait in a FILE's
 * buffer: mp.stdout does not share it, and writes through the loop. */

int mp_os_stdout_buffer(size_t *pending, size_t *size) {
  (void)pending;
  (void)size;
  return MP_EOPNOTSUPP;
}

/* The C runtime's own lock on stdout (recursive, as flockfile). */
void mp_os_stdout_lock(void) { _lock_file(stdout); }
void mp_os_stdout_unlock(void) { _unlock_file(stdout); }

/* Before a child that inherits stdout starts: what print and io.write
 * left in C's buffer goes out first (blocking, as their own writes do). */
int mp_os_stdout_drain(mp_handle_t h) {
  (void)h;
  return fflush(stdout) == 0 ? 1 : MP_EIO;
}

/* A named pipe, console or file cannot be written without waiting by a
 * synchronous call: every write goes through the loop. */
int64_t mp_os_trywrite(mp_handle_t h, const struct mp_iov *iov, int n) {
  (void)h;
  (void)iov;
  (void)n;
  return MP_EAGAIN;
}
