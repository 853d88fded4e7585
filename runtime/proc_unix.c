/* proc_unix.c: mp_os.h's processes and signals for Linux: posix_spawn
 * (glibc runs it as a vfork-style clone and reports every failure in the
 * child, exec included, as its result: all or nothing), a pidfd per
 * child (polled for the end, signalled without pid reuse races, reaped
 * with waitid), and signalfd for routed signals.
 *
 * Child pipes are stream socket pairs, as libuv makes them: every stream
 * method works on them, and a write to a child that is gone fails with
 * EPIPE (MSG_NOSIGNAL) instead of raising SIGPIPE. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mp_os.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

/* A descriptor above the standard ones, so that installing a child's
 * handle 0..2 never overwrites another (a parent started with 0..2
 * closed). */
static int lift(int fd) {
  if (fd > 2) return fd;
  int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int e = errno;
  close(fd);
  errno = e;
  return n;
}

static int stream_pair(int *parent, int *child) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return mp_err_from_errno(errno);
  sv[0] = lift(sv[0]);
  sv[1] = lift(sv[1]);
  if (sv[0] < 0 || sv[1] < 0 ||
      fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) < 0) {
    int e = mp_err_from_errno(errno);
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    return e;
  }
  *parent = sv[0];
  *child = sv[1];
  return 0;
}

int mp_os_spawn(const struct mp_spawn *o, struct mp_proc *p,
                mp_handle_t pipes[3]) {
  int child[3] = {-1, -1, -1}, r = 0, fds = 0;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, all;
  pid_t pid;
  for (int i = 0; i < 3; i++) pipes[i] = -1;
  if (!o->argv || !o->argv[0]) return MP_EINVAL;
  if (posix_spawn_file_actions_init(&fa)) return MP_ENOMEM;
  if (posix_spawnattr_init(&at)) {
    posix_spawn_file_actions_destroy(&fa);
    return MP_ENOMEM;
  }
  fds = 1;
  for (int i = 0; i < 3 && !r; i++) {
    switch (o->stdio[i]) {
      case MP_STDIO_PIPE:
        if ((r = stream_pair(&pipes[i], &child[i])) == 0)
          r = posix_spawn_file_actions_adddup2(&fa, child[i], i);
        break;
      case MP_STDIO_NULL:
        r = posix_spawn_file_actions_addopen(&fa, i, "/dev/null",
                                             i ? O_WRONLY : O_RDONLY, 0);
        break;
      case MP_STDIO_STDOUT:
        r = i == 2 ? posix_spawn_file_actions_adddup2(&fa, 1, 2) : EINVAL;
        break;
      default:
        break;
    }
    if (r > 0) r = mp_err_from_errno(r);
  }
  /* Every descriptor of ours is closed on exec; close_range also covers
   * what a library opened without O_CLOEXEC. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
  if (!r && posix_spawn_file_actions_addclosefrom_np(&fa, 3)) r = MP_ENOMEM;
#endif
  if (!r && o->cwd && posix_spawn_file_actions_addchdir_np(&fa, o->cwd))
    r = MP_ENOMEM;
  /* The child starts clean whatever the parent routes or ignores. */
  sigemptyset(&none);
  sigfillset(&all);
  if (!r && (posix_spawnattr_setsigmask(&at, &none) ||
             posix_spawnattr_setsigdefault(&at, &all) ||
             posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                               POSIX_SPAWN_SETSIGDEF)))
    r = MP_EINVAL;
  if (!r) {
    char *const *argv = (char *const *)o->argv;
    char *const *env = o->env ? (char *const *)o->env : environ;
    int e = strchr(o->argv[0], '/')
                ? posix_spawn(&pid, o->argv[0], &fa, &at, argv, env)
                : posix_spawnp(&pid, o->argv[0], &fa, &at, argv, env);
    if (e) r = mp_err_from_errno(e);
  }
  if (!r) {
    int h = (int)syscall(SYS_pidfd_open, pid, 0); /* closed on exec */
    if (h < 0) {
      /* No pidfd (a kernel before 5.3): not started after all. */
      r = mp_err_from_errno(errno);
      kill(pid, SIGKILL);
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    } else {
      p->pid = (int)pid;
      p->handle = h;
    }
  }
  for (int i = 0; i < 3; i++) {
    if (child[i] >= 0) close(child[i]);
    if (r && pipes[i] >= 0) {
      close(pipes[i]);
      pipes[i] = -1;
    }
  }
  if (fds) {
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
  }
  return r;
}

int mp_os_proc_status(const struct mp_proc *p, int block, int *status) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  while (waitid((idtype_t)P_PIDFD, (id_t)p->handle, &si,
                WEXITED | (block ? 0 : WNOHANG)) < 0) {
    if (errno != EINTR) return mp_err_from_errno(errno);
  }
  if (si.si_pid == 0) return 0; /* still running */
  *status = si.si_code == CLD_EXITED ? si.si_status & 0xff
                                     : MP_PROC_SIGNALED + si.si_status;
  return 1;
}

int mp_os_proc_kill(const struct mp_proc *p, int signo) {
  if (syscall(SYS_pidfd_send_signal, p->handle, signo, NULL, 0) < 0)
    return mp_err_from_errno(errno);
  return 0;
}

int mp_os_dup(mp_handle_t h, mp_handle_t *out) {
  int fd = fcntl(h, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return mp_err_from_errno(errno);
  *out = fd;
  return 0;
}

static const struct { const char *name; int num; } signals[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL},
  {"TRAP", SIGTRAP}, {"ABRT", SIGABRT}, {"BUS", SIGBUS}, {"FPE", SIGFPE},
  {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},
  {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
  {"TERM", SIGTERM}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},
  {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
  {"TTOU", SIGTTOU}, {"URG", SIGURG}, {"XCPU", SIGXCPU},
  {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
  {"WINCH", SIGWINCH}, {"IO", SIGIO}, {"SYS", SIGSYS},
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

/* The signals some route owns. Signals are process-wide, so this is the
 * one process-wide record of the runtime. */
static _Atomic uint64_t owned;

struct mp_sigroute {
  int fd;
  sigset_t set;          /* routed */
  sigset_t saved;        /* the thread's mask before the first add */
  int saved_ok;
  unsigned pending[64];  /* arrivals read from fd, per signal */
};

int mp_os_sigroute_open(struct mp_sigroute **rp, mp_handle_t *h) {
  struct mp_sigroute *r = calloc(1, sizeof *r);
  if (!r) return MP_ENOMEM;
  sigemptyset(&r->set);
  r->fd = signalfd(-1, &r->set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (r->fd < 0) {
    int e = mp_err_from_errno(errno);
    free(r);
    return e;
  }
  *rp = r;
  *h = r->fd;
  return 0;
}

int mp_os_sigroute_add(struct mp_sigroute *r, int signo) {
  uint64_t bit = (uint64_t)1 << signo;
  sigset_t one;
  if (signo <= 0 || signo >= 64 || signo == SIGKILL || signo == SIGSTOP)
    return MP_EINVAL;
  if (sigismember(&r->set, signo)) return 0;
  if (atomic_fetch_or(&owned, bit) & bit) return MP_EBUSY;
  sigemptyset(&one);
  sigaddset(&one, signo);
  sigaddset(&r->set, signo);
  if (signalfd(r->fd, &r->set, 0) < 0) {
    int e = mp_err_from_errno(errno);
    sigdelset(&r->set, signo);
    atomic_fetch_and(&owned, ~bit);
    return e;
  }
  /* Blocked, the signal waits for the signalfd instead of its handler. */
  pthread_sigmask(SIG_BLOCK, &one, r->saved_ok ? NULL : &r->saved);
  r->saved_ok = 1;
  return 0;
}

static void sigroute_read(struct mp_sigroute *r) {
  struct signalfd_siginfo si[16];
  ssize_t n;
  while ((n = read(r->fd, si, sizeof si)) > 0) {
    for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++)
      if (si[i].ssi_signo < 64) r->pending[si[i].ssi_signo]++;
  }
}

int mp_os_sigroute_take(struct mp_sigroute *r, int signo) {
  if (signo <= 0 || signo >= 64) return MP_EINVAL;
  sigroute_read(r);
  if (!r->pending[signo]) return 0;
  r->pending[signo] = 0; /* arrivals coalesce */
  return 1;
}

void mp_os_sigroute_close(struct mp_sigroute *r) {
  uint64_t bits = 0;
  sigroute_read(r); /* dropped: they were the loop's */
  for (int s = 1; s < 64; s++)
    if (sigismember(&r->set, s)) bits |= (uint64_t)1 << s;
  if (r->saved_ok) pthread_sigmask(SIG_SETMASK, &r->saved, NULL);
  atomic_fetch_and(&owned, ~bits);
  free(r);
}

/* ---- C stdio's stdout (issue 12: mp.stdout shares its buffer) ---- */

int mp_os_stdout_buffer(size_t *pending, size_t *size) {
  if (__flbf(stdout) || !__fwritable(stdout)) return MP_EOPNOTSUPP;
  if (__fbufsize(stdout) == 0 && __fpending(stdout) == 0) {
    /* Nothing written yet: no buffer, and a terminal is not yet marked
     * line-buffered (stdio does it with the buffer). Make the buffer
     * stdio would. */
    if (isatty(fileno(stdout))) return MP_EOPNOTSUPP;
    setvbuf(stdout, NULL, _IOFBF, BUFSIZ);
  }
  *size = __fbufsize(stdout);
  *pending = __fpending(stdout);
  /* unbuffered: a buffer of one byte that is never kept */
  return *size > 1 ? 0 : MP_EOPNOTSUPP;
}

void mp_os_stdout_lock(void) { flockfile(stdout); }
void mp_os_stdout_unlock(void) { funlockfile(stdout); }

static int stdout_drain(mp_handle_t h) {
  if (__fpending(stdout) == 0) return 1;
  struct pollfd p = {.fd = h, .events = POLLOUT};
  int r = poll(&p, 1, 0);
  if (r < 0) return errno == EINTR ? 0 : mp_err_from_errno(errno);
  if (r == 0) return 0;
  if (fflush_unlocked(stdout) == 0) return 1;
  r = mp_err_from_errno(errno);
  clearerr_unlocked(stdout); /* reported here; the bytes are gone */
  return r;
}

int mp_os_stdout_drain(mp_handle_t h) {
  flockfile(stdout); /* no other thread fills it between check and flush */
  int r = stdout_drain(h);
  funlockfile(stdout);
  return r;
}

int64_t mp_os_trywrite(mp_handle_t h, const struct mp_iov *iov, int n) {
  struct iovec v[16];
  ssize_t r;
  if (n > 16) n = 16; /* a short write, as allowed */
  for (int i = 0; i < n; i++) {
    v[i].iov_base = (void *)iov[i].base;
    v[i].iov_len = iov[i].len;
  }
  do r = pwritev2(h, v, n < 0 ? 0 : n, -1, RWF_NOWAIT);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return r;
  /* EOPNOTSUPP: a terminal or device that cannot say */
  if (errno == EAGAIN || errno == EOPNOTSUPP) return MP_EAGAIN;
  return mp_err_from_errno(errno);
}
