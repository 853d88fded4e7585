/* mp_os.h: the synchronous OS calls the bindings need, in portable terms.
 *
 * The bindings include no OS header: what they cannot do with an op
 * (mp.h) they do here. Every function returns >= 0 or an MP_E* code and
 * never sets or needs errno; handles are mp_handle_t. Implemented per
 * platform (the runtime's *_unix.c files). Each section has an owner on
 * issue 9: add to your own section only, so branches merge cleanly.
 */
#ifndef MP_OS_H_PUBLIC
#define MP_OS_H_PUBLIC

#include <stddef.h>
#include <stdint.h>

#include "mp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Files and paths (H2 files: runtime/fsio_unix.c, fs_unix.c) ---- */

/* Closes h (EINTR counts as closed: the descriptor is gone on Linux). */
int mp_os_close(mp_handle_t h);
/* The open handle's metadata (no disk IO: the in-memory inode). */
int mp_os_fstat(mp_handle_t h, struct mp_stat *st);
enum { MP_SEEK_SET, MP_SEEK_CUR, MP_SEEK_END };
/* Moves the handle's own position; returns the new offset. */
int64_t mp_os_seek(mp_handle_t h, int64_t off, int whence);
/* Blocking write of up to len bytes at off (-1: at the handle's position);
 * returns the count written (retries EINTR). For __gc flushes only. */
int64_t mp_os_pwrite(mp_handle_t h, const void *buf, size_t len,
                     int64_t off);
/* Reads up to len bytes of the regular file h at off only if that needs
 * no wait for the disk (the page cache has them): the count read (0 at
 * the end of the file; short where the cached bytes end), MP_EAGAIN
 * when it would wait, MP_EOPNOTSUPP where the file or the system cannot
 * tell (then never again for h), or another MP_E* code. */
int64_t mp_os_pread_nowait(mp_handle_t h, void *buf, size_t len,
                           int64_t off);
/* Opens path (MP_O_* flags; nothing created or truncated) into *out now
 * if every step of its lookup is cached (no disk IO: Linux's openat2
 * RESOLVE_CACHED); MP_EAGAIN otherwise, whatever the reason (an
 * MP_OP_OPEN then opens it and reports real failures), MP_EOPNOTSUPP
 * where the system cannot (then never again). */
int mp_os_open_cached(const char *path, int flags, mp_handle_t *out);
/* Makes h non-blocking (on 1) or blocking (0), keeping its other flags. */
int mp_os_set_nonblock(mp_handle_t h, int on);
/* 1 if h is a terminal, else 0. */
int mp_os_isatty(mp_handle_t h);
/* The process's standard handle 0, 1 or 2 (stdin, stdout, stderr). */
mp_handle_t mp_os_stdhandle(int which);

/* ---- Sockets and names (H3 net: runtime/net_unix.c) ---- */

enum { MP_SOCK_STREAM, MP_SOCK_DGRAM };
/* A new socket of family (MP_AF_*), non-blocking, closed on exec. */
int mp_os_socket(int family, int type, mp_handle_t *out);
int mp_os_bind(mp_handle_t h, const struct mp_addr *addr);
int mp_os_listen(mp_handle_t h, int backlog);
enum mp_sockopt {
  MP_SO_REUSEADDR, MP_SO_REUSEPORT, MP_SO_KEEPALIVE, MP_SO_BROADCAST,
  MP_SO_RCVBUF, MP_SO_SNDBUF,
  MP_SO_LINGER,   /* value: seconds; < 0: off */
  MP_TCP_NODELAY, MP_IPV6_V6ONLY
};
/* Booleans are 0/1; sizes in bytes. */
int mp_os_setsockopt(mp_handle_t h, enum mp_sockopt opt, int value);
/* The local (peer 0) or remote (peer 1) address of h. */
int mp_os_sockname(mp_handle_t h, struct mp_addr *addr, int peer);
/* No more sending (the peer reads end of stream). */
int mp_os_shutdown(mp_handle_t h);
/* Sends what the kernel takes now without waiting: the count sent (maybe
 * short), or MP_EAGAIN when nothing fits; never raises SIGPIPE. */
struct mp_iov { const void *base; size_t len; };
int64_t mp_os_trysend(mp_handle_t h, const struct mp_iov *iov, int n);
/* One datagram to `to` (NULL: the connected peer), as mp_os_trysend. */
int64_t mp_os_trysendto(mp_handle_t h, const void *buf, size_t len,
                        const struct mp_addr *to);
/* Blocking name resolution (MP_OP_GETADDRINFO's body; with
 * MP_AI_NUMERICHOST or no host it never blocks): up to max distinct IP
 * addresses in out; the count, or an MP_EAI_* / MP_E* code. */
int mp_os_getaddrinfo(const char *host, int port, int family, int flags,
                      struct mp_addr *out, int max);

/* ---- Memory, handles, threads, terminal (H4 tasks: runtime/sys_unix.c) */

/* size bytes of zeroed read-write memory aligned to align (a power of two,
 * 0: the page size), which the system may back with huge pages; NULL when
 * out of memory. Give it back with mp_os_unmap(p, size). */
void *mp_os_map(size_t size, size_t align);
void mp_os_unmap(void *p, size_t size);
/* Calls fn for every handle open in the process, with what it refers to
 * ("socket:[1234]", "/tmp/x", "pipe:[55]"; "?" if unknown). 0, or an
 * MP_E* code when the system cannot list them. */
int mp_os_list_handles(void (*fn)(void *ud, mp_handle_t h, const char *what),
                       void *ud);
/* The process's threads (the kernel's own IO workers aside), or an MP_E*
 * code when the system cannot count them. */
int mp_os_thread_count(void);
/* Sleeps the calling thread for ms milliseconds. */
void mp_os_sleep_ms(int ms);

/* ---- More files (issue 14, H6 fsx: runtime/fsio_unix.c) ---- */

/* How h was opened: MP_O_RDONLY, MP_O_WRONLY or MP_O_RDWR, plus
 * MP_O_APPEND; MP_EBADF for a handle that is not open. */
int mp_os_handle_mode(mp_handle_t h);
/* Makes every write on h append (as fdopen's "a" modes do). */
int mp_os_set_append(mp_handle_t h);

/* ---- Adopted handles (H7 watch: runtime/adopt_unix.c) ---- */

enum { MP_HK_STREAM, MP_HK_LISTENER, MP_HK_DGRAM, MP_HK_PIPE };
/* What an inherited handle is: a stream socket, connected (or not yet)
 * or listening, a datagram socket, or a pipe or FIFO; *family is its
 * MP_AF_* (MP_AF_UNSPEC for a pipe). Marks it closed on exec; its
 * blocking mode, which it may share with another process, is left as it
 * is. MP_ENOTSOCK for anything else (a file, a terminal). */
int mp_os_adopt(mp_handle_t h, int *kind, int *family);

/* ---- Processes and signals (issue 12: runtime/proc_unix.c) ---- */

/* What a child's standard handle 0, 1 or 2 is. */
enum {
  MP_STDIO_INHERIT, /* the parent's own */
  MP_STDIO_NULL,    /* the null device */
  MP_STDIO_PIPE,    /* a new stream pair; the parent gets its end */
  MP_STDIO_STDOUT   /* (handle 2 only) the child's handle 1 */
};
struct mp_spawn {
  const char *const *argv; /* argv[0] is the program (no separator: searched
                              in the parent's PATH); NULL-terminated */
  const char *const *env;  /* "NAME=value" strings, NULL-terminated; NULL:
                              the parent's environment */
  const char *cwd;         /* NULL: the parent's */
  int stdio[3];            /* MP_STDIO_* */
};
/* A child process: its id and a handle that an MP_OP_POLL waits on (it
 * turns readable when the process has ended). */
struct mp_proc {
  int pid;
  mp_handle_t handle;
};
/* Starts a child, all or nothing: 0 with *p and, for each MP_STDIO_PIPE,
 * the parent's end of the pipe in pipes[i] (a non-blocking stream socket
 * or equivalent, closed on exec; the others MP_INVALID_HANDLE); or an
 * MP_E* code (a missing program, a bad cwd, out of descriptors) with
 * nothing started and nothing left open. The child gets no handle but
 * 0..2, default signal dispositions and an empty signal mask. */
int mp_os_spawn(const struct mp_spawn *o, struct mp_proc *p,
                mp_handle_t pipes[3]);
/* Collects the process's end: 1 with *status set (the exit code 0..255,
 * or MP_PROC_SIGNALED + the signal that ended it), 0 while it runs
 * (block 0) or an MP_E* code. block 1 waits for the end. Once it
 * returned 1 the process is gone: call it no more. */
enum { MP_PROC_SIGNALED = 0x100 };
int mp_os_proc_status(const struct mp_proc *p, int block, int *status);
/* Sends signal signo (mp_os_signum) to the process: 0, MP_ESRCH once
 * collected. */
int mp_os_proc_kill(const struct mp_proc *p, int signo);
/* Signal names without the SIG prefix ("TERM", "USR1"), to the number
 * and back; MP_EINVAL / NULL when unknown. */
int mp_os_signum(const char *name);
const char *mp_os_signame(int signo);

/* A second handle on what h refers to (closed on exec): the standard
 * handles as objects that close without closing the process's own. */
int mp_os_dup(mp_handle_t h, mp_handle_t *out);

/* Signal routing: a set of signals taken from their default delivery and
 * kept for the loop, until mp_os_sigroute_close. Signals are process-wide:
 * the first route that adds a signal owns it (another gets MP_EBUSY). */
struct mp_sigroute;
/* A route, and the handle an MP_OP_POLL waits on (readable when a routed
 * signal is pending). The handle is the caller's to close, after
 * mp_os_sigroute_close (ops may still name it). */
int mp_os_sigroute_open(struct mp_sigroute **r, mp_handle_t *h);
/* Routes signo to the route (idempotent). Call it on the loop's thread. */
int mp_os_sigroute_add(struct mp_sigroute *r, int signo);
/* Takes the pending signals into the route's counts, then consumes one
 * arrival of signo: 1 if there was one, else 0. Arrivals coalesce. */
int mp_os_sigroute_take(struct mp_sigroute *r, int signo);
/* Ends the routing: pending routed signals are dropped, the thread's
 * previous mask is restored, the ownership given back. Frees r. */
void mp_os_sigroute_close(struct mp_sigroute *r);

/* ---- C stdio's stdout (issue 12, lines: runtime/proc_unix.c) ----
 * mp.stdout writes small pieces into C stdio's buffer of stdout, which
 * print and io.write use too: one buffer keeps them in order, and exit()
 * flushes it. */

/* When C's stdout is fully buffered (not a terminal, not unbuffered):
 * the bytes waiting in its buffer and the buffer's size, so that fwrite
 * of up to size - pending more bytes writes nothing (its buffer is made
 * first if nothing was written yet); 0. Else MP_EOPNOTSUPP. */
int mp_os_stdout_buffer(size_t *pending, size_t *size);
/* C's stdout lock (flockfile; recursive): held across mp_os_stdout_buffer,
 * the fwrite and any drain, so that other threads (mp.work, other states)
 * printing cannot fill the buffer in between (fwrite would then write out
 * synchronously, blocking the loop on a full pipe). */
void mp_os_stdout_lock(void);
void mp_os_stdout_unlock(void);
/* Writes out C's stdout buffer (fflush) if h (a handle on the same file)
 * takes it now without blocking, as a pipe takes PIPE_BUF bytes once it
 * is writable: 1 (done, or nothing was waiting), 0 (not writable: wait
 * with mp_op_prep_poll_out, then again), or an MP_E* code (the bytes are
 * dropped, as fflush drops them). */
int mp_os_stdout_drain(mp_handle_t h);
/* Writes what h (a pipe, terminal or file at its own position) takes now
 * without waiting: the count written (maybe short), MP_EAGAIN when
 * nothing fits or h cannot tell (then write through the loop), or an
 * MP_E* code. At most 16 pieces of iov are tried. */
int64_t mp_os_trywrite(mp_handle_t h, const struct mp_iov *iov, int n);

/* ---- Workers (issue 16: runtime/sys_unix.c) ---- */

/* The number of CPUs the process may run on (at least 1). */
int mp_os_cpu_count(void);
/* A lock for state several threads share (moonport --workers). */
struct mp_os_mutex;
int mp_os_mutex_new(struct mp_os_mutex **m);
void mp_os_mutex_lock(struct mp_os_mutex *m);
void mp_os_mutex_unlock(struct mp_os_mutex *m);
void mp_os_mutex_free(struct mp_os_mutex *m); /* NULL is fine */
/* A thread running fn(arg), started with every signal blocked (the
 * process's signals are routed by whoever routes them). */
struct mp_os_thread;
int mp_os_thread_start(struct mp_os_thread **t, void (*fn)(void *),
                       void *arg);
/* Waits for the thread's end and frees t. */
void mp_os_thread_join(struct mp_os_thread *t);

#ifdef __cplusplus
}
#endif
#endif
