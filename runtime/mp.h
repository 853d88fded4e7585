/* mp.h: the moonport core, a completion-port loop with a threadpool.
 *
 * No Lua here. The model is Windows' IOCP: every in-flight operation is an
 * mp_op record (the OVERLAPPED analog) that the loop owns from mp_op_submit
 * until its completion is dequeued and its callback runs. The callback then
 * owns the op and gives it back with mp_op_release (or submits it again).
 * Cancel is a request: the op still completes, with MP_ECANCELED or with its
 * real result if it had already finished, and only then may it be released.
 *
 * Everything hangs off a struct mp_loop; there is no global mutable state,
 * so any number of loops may live in one process. A loop is run by the
 * thread that created it (its io_uring ring accepts no other submitter). Only
 * mp_loop_post and mp_loop_wake may be called from another thread.
 */
#ifndef MP_H
#define MP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mp_loop;
struct mp_op;

/* What an op works on: a file, socket or pipe of the platform. */
#ifdef _WIN32
typedef void *mp_handle_t; /* a HANDLE (a SOCKET fits in one) */
#define MP_INVALID_HANDLE ((mp_handle_t)(intptr_t)-1)
#else
typedef int mp_handle_t;   /* a descriptor */
#define MP_INVALID_HANDLE (-1)
#endif

/* Error codes: negative numbers, the same names and values on every
 * platform (Linux's errno values, so mapping there is the identity).
 * mp_err_from_errno and mp_err_from_eai map a platform's codes; an errno
 * with no name here becomes MP_EUNKNOWN. */
#define MP_ERRNO_MAP(X)                                                      \
  X(EPERM, 1) X(ENOENT, 2) X(ESRCH, 3) X(EINTR, 4) X(EIO, 5) X(ENXIO, 6)     \
  X(E2BIG, 7) X(ENOEXEC, 8) X(EBADF, 9) X(ECHILD, 10) X(EAGAIN, 11)          \
  X(ENOMEM, 12) X(EACCES, 13) X(EFAULT, 14) X(EBUSY, 16) X(EEXIST, 17)       \
  X(EXDEV, 18) X(ENODEV, 19) X(ENOTDIR, 20) X(EISDIR, 21) X(EINVAL, 22)      \
  X(ENFILE, 23) X(EMFILE, 24) X(ENOTTY, 25) X(ETXTBSY, 26) X(EFBIG, 27)      \
  X(ENOSPC, 28) X(ESPIPE, 29) X(EROFS, 30) X(EMLINK, 31) X(EPIPE, 32)        \
  X(ERANGE, 34) X(EDEADLK, 35) X(ENAMETOOLONG, 36) X(ENOLCK, 37)             \
  X(ENOSYS, 38) X(ENOTEMPTY, 39) X(ELOOP, 40) X(EPROTO, 71)                  \
  X(EOVERFLOW, 75) X(EILSEQ, 84) X(ENOTSOCK, 88) X(EDESTADDRREQ, 89)         \
  X(EMSGSIZE, 90) X(EPROTOTYPE, 91) X(ENOPROTOOPT, 92)                       \
  X(EPROTONOSUPPORT, 93) X(EOPNOTSUPP, 95) X(EAFNOSUPPORT, 97)               \
  X(EADDRINUSE, 98) X(EADDRNOTAVAIL, 99) X(ENETDOWN, 100)                    \
  X(ENETUNREACH, 101) X(ECONNABORTED, 103) X(ECONNRESET, 104)                \
  X(ENOBUFS, 105) X(EISCONN, 106) X(ENOTCONN, 107) X(ETIMEDOUT, 110)         \
  X(ECONNREFUSED, 111) X(EHOSTUNREACH, 113) X(EALREADY, 114)                 \
  X(EINPROGRESS, 115) X(ESTALE, 116) X(EDQUOT, 122) X(ECANCELED, 125)

/* The rest of Linux's errno codes, same values: the platform maps those
 * it has (on Linux, all), so no system error loses its name and text. */
#define MP_ERRNO_MORE_MAP(X)                                                 \
  X(ENOTBLK, 15) X(EDOM, 33) X(ENOMSG, 42) X(EIDRM, 43) X(ECHRNG, 44)        \
  X(EL2NSYNC, 45) X(EL3HLT, 46) X(EL3RST, 47) X(ELNRNG, 48) X(EUNATCH, 49)   \
  X(ENOCSI, 50) X(EL2HLT, 51) X(EBADE, 52) X(EBADR, 53) X(EXFULL, 54)        \
  X(ENOANO, 55) X(EBADRQC, 56) X(EBADSLT, 57) X(EBFONT, 59) X(ENOSTR, 60)    \
  X(ENODATA, 61) X(ETIME, 62) X(ENOSR, 63) X(ENONET, 64) X(ENOPKG, 65)       \
  X(EREMOTE, 66) X(ENOLINK, 67) X(EADV, 68) X(ESRMNT, 69) X(ECOMM, 70)       \
  X(EMULTIHOP, 72) X(EDOTDOT, 73) X(EBADMSG, 74) X(ENOTUNIQ, 76)             \
  X(EBADFD, 77) X(EREMCHG, 78) X(ELIBACC, 79) X(ELIBBAD, 80) X(ELIBSCN, 81)  \
  X(ELIBMAX, 82) X(ELIBEXEC, 83) X(ERESTART, 85) X(ESTRPIPE, 86)             \
  X(EUSERS, 87) X(ESOCKTNOSUPPORT, 94) X(EPFNOSUPPORT, 96)                   \
  X(ENETRESET, 102) X(ESHUTDOWN, 108) X(ETOOMANYREFS, 109)                   \
  X(EHOSTDOWN, 112) X(EUCLEAN, 117) X(ENOTNAM, 118) X(ENAVAIL, 119)          \
  X(EISNAM, 120) X(EREMOTEIO, 121) X(ENOMEDIUM, 123) X(EMEDIUMTYPE, 124)     \
  X(ENOKEY, 126) X(EKEYEXPIRED, 127) X(EKEYREVOKED, 128)                     \
  X(EKEYREJECTED, 129) X(EOWNERDEAD, 130) X(ENOTRECOVERABLE, 131)            \
  X(ERFKILL, 132) X(EHWPOISON, 133)

/* Name resolution failures (getaddrinfo's EAI_*), libuv's values. */
#define MP_EAI_MAP(X)                                                        \
  X(EAI_ADDRFAMILY, 3000) X(EAI_AGAIN, 3001) X(EAI_FAIL, 3004)               \
  X(EAI_FAMILY, 3005) X(EAI_MEMORY, 3006) X(EAI_NODATA, 3007)                \
  X(EAI_NONAME, 3008) X(EAI_SERVICE, 3010)

#define MP_EOK 0
#define MP__DEFINE_NEG(name, num) MP_##name = -(num),
enum {
  MP_ERRNO_MAP(MP__DEFINE_NEG) MP_ERRNO_MORE_MAP(MP__DEFINE_NEG)
  MP_EAI_MAP(MP__DEFINE_NEG)
};
#undef MP__DEFINE_NEG
/* Codes with no errno equivalent. */
enum {
  MP_EUNKNOWN = -4093, /* a platform error with no MP_E* name */
  MP_EOF = -4095,      /* end of file / stream */
  MP_ECLOSED = -4094   /* the object was closed while the op was pending */
};

const char *mp_errname(int err);  /* "ENOENT", "EAI_NONAME"; or "UNKNOWN" */
/* Human readable. On Unix, strerror's or gai_strerror's text. */
const char *mp_strerror(int err);
/* A platform error as an MP_E* code: errno (positive) -> MP_E*; a
 * getaddrinfo result and, for EAI_SYSTEM, the errno it left. 0 -> 0. */
int mp_err_from_errno(int e);
int mp_err_from_eai(int gai, int sys_errno);

/* Operation kinds. The core routes each kind to the backend, the timer heap
 * or the threadpool. */
enum mp_op_kind {
  MP_OP_NOP,      /* completes on the next turn, result 0 */
  MP_OP_TIMER,    /* completes at a deadline, result 0 */
  MP_OP_WORK,     /* runs fn on a threadpool thread */
  MP_OP_POST,     /* posted by mp_loop_post from any thread */
  MP_OP_READ,     /* read(2)/pread(2): handle, buf, len, off (-1: current) */
  MP_OP_WRITE,    /* write(2)/pwrite(2) */
  MP_OP_RECV,     /* recv(2) on a socket */
  MP_OP_SEND,     /* send(2) on a socket, never raises SIGPIPE */
  MP_OP_ACCEPT,   /* accept4(2), result is the new handle (non-blocking) */
  MP_OP_CONNECT,  /* connect(2) on a non-blocking socket */
  MP_OP_CLOSE,    /* close(2) */
  /* Files and paths, relative to the current directory: native on
   * io_uring when the kernel has the opcode, on the threadpool otherwise
   * (READDIR and WRITEFILE always). Paths are copied into the op's
   * private memory. */
  MP_OP_OPEN,     /* open a file (MP_O_* flags), result is the new handle */
  MP_OP_STAT,     /* a path's or handle's metadata (mp_op_stat) */
  MP_OP_FSYNC,    /* fsync(2) / fdatasync(2) */
  MP_OP_RENAME,   /* rename(2) */
  MP_OP_UNLINK,   /* unlink(2) */
  MP_OP_RMDIR,    /* rmdir(2) */
  MP_OP_MKDIR,    /* mkdir(2) */
  MP_OP_READDIR,  /* a directory's names, result the count (pool) */
  /* More paths and files (issue 14; prep and result notes below) */
  MP_OP_CHMOD,    /* chmod(2) (pool: io_uring has no opcode) */
  MP_OP_CHOWN,    /* chown(2) (pool) */
  MP_OP_UTIME,    /* utimensat(2) (pool) */
  MP_OP_SYMLINK,  /* symlink(2) */
  MP_OP_READLINK, /* readlink(2), the target in the op (pool) */
  MP_OP_REALPATH, /* realpath(3), the absolute path in the op (pool) */
  MP_OP_TRUNCATE, /* ftruncate(2) of a handle; truncate(2) (pool) */
  MP_OP_MKDTEMP,  /* mkdtemp(3), the new path in the op (pool) */
  MP_OP_TMPFILE,  /* an unnamed temporary file, result the handle (pool) */
  MP_OP_COPYFILE, /* a file's bytes to another path (pool) */
  MP_OP_READFILE, /* a whole file's bytes: open, read, close in one op */
  MP_OP_WRITEFILE, /* replace a file atomically and durably (pool) */
  MP_OP_SENDTO,   /* a datagram to an address (or the connected peer) */
  MP_OP_RECVFROM, /* a datagram and its source (mp_op_from) */
  MP_OP_SENDFILE, /* file bytes to a socket in the kernel, as SEND */
  MP_OP_GETADDRINFO, /* names to addresses, on the threadpool */
  MP_OP_POLL,     /* completes once the handle is readable or signalled
                     (a process handle whose process ended, a signal
                     handle with a signal pending), or writable
                     (mp_op_prep_poll_out); result 0 */
  MP_OP_KIND_MAX
};

typedef void (*mp_op_cb)(struct mp_op *op);
typedef void (*mp_work_fn)(struct mp_op *op); /* runs on a pool thread */

/* The operation record. Fields marked "in" are set by mp_op_prep_* before
 * submit; "out" fields are valid in the callback. The rest is private. */
struct mp_op {
  mp_op_cb cb;       /* in: called on the loop thread when dequeued */
  void *data;        /* in: the completion key, the submitter's pointer */
  int64_t result;    /* out: >= 0 success (bytes, handle); < 0 an MP_E*
                        code; mp_op_submit sets it to 0 */
  uint8_t kind;      /* in: enum mp_op_kind */
  uint8_t state;     /* private: enum in mp_internal.h */
  uint8_t flags;     /* private */
  uint8_t msgflags;  /* in: extra flags for RECV/SEND (MSG_PEEK, ...);
                        POLL: 1 waits for writable (prep_poll_out) */
  mp_handle_t handle; /* in: the file, socket or pipe the op works on */
#ifdef _WIN32
  /* private: the OVERLAPPED the kernel owns while the op is in flight */
  struct { uintptr_t a, b; uint64_t off; void *ev; } ov;
#endif
  union {
    struct { void *buf; size_t len; int64_t off; } rw; /* READ..SEND */
    struct { int64_t due; uint64_t seq; size_t slot; } timer;
    struct { mp_work_fn fn; void *arg; } work;
    struct { void *addr; uint32_t addrlen; } sa;    /* CONNECT */
    struct {                                        /* OPEN..WRITEFILE */
      const char *path, *path2; /* in op->priv */
      void *buf;     /* STAT: struct mp_stat, READDIR: the names,
                        WRITEFILE: the data; READLINK..MKDTEMP: the
                        resulting path; UTIME: the times; in op->priv */
      size_t len;    /* READDIR: bytes of names; WRITEFILE: of data;
                        TRUNCATE: the new size */
      int flags;     /* OPEN, STAT: the platform's flags (translated);
                        CHOWN: the gid; COPYFILE: out, 1 when the
                        failure concerns path2 */
      uint32_t mode; /* CHOWN: the uid */
    } fs;
    struct {                                        /* SENDFILE */
      mp_handle_t from; int64_t off; size_t len;
      struct mp_op *warm; /* private: the pool job reading the file in */
      int warmed;         /* private: the next attempt skips the check */
    } sf;
  } u;
  void *owned;             /* freed by mp_op_release: memory the op owns
                              (set it with mp_op_own) */
  void (*owned_free)(void *); /* how to free owned; NULL: free() */
  void *priv;              /* private: the runtime's memory for the op's
                              kind (an address, a message header), freed by
                              mp_op_release and replaced by the next prep */
  void *ref;               /* in: the submitter's second pointer (say, the
                              object the op belongs to); never touched */
  struct mp_loop *loop;    /* private */
  struct mp_op *next, *prev; /* private: the loop's in-flight list */
  struct mp_op *link;        /* private: the one queue the op waits in */
};

/* Loop. */
enum mp_run_mode {
  MP_RUN_DEFAULT, /* until no op is in flight */
  MP_RUN_ONCE,    /* one turn; waits if nothing is ready */
  MP_RUN_NOWAIT   /* one turn; never waits */
};

/* Creates a loop. backend is "io_uring", "epoll" or NULL for the default
 * (io_uring when it can be set up, else epoll; on Windows "iocp", the
 * only one; the MOONPORT_BACKEND environment variable overrides NULL).
 * Returns 0 or an MP_E* code. */
int mp_loop_new(struct mp_loop **loopp, const char *backend);
/* MP_EBUSY while any op is in flight (cancel them and run the loop first).
 * mp_loop_drain cancels every op (but protected ones, which it waits for)
 * and runs until none remains; callbacks still run and must release
 * their ops. */
int mp_loop_close(struct mp_loop *loop);
void mp_loop_drain(struct mp_loop *loop);
/* Returns the number of ops still in flight (0: nothing left to do). */
int mp_loop_run(struct mp_loop *loop, enum mp_run_mode mode);
void mp_loop_stop(struct mp_loop *loop);   /* run returns after this turn */
int64_t mp_loop_now(struct mp_loop *loop); /* monotonic ns, cached per turn */
void mp_loop_update_time(struct mp_loop *loop);
size_t mp_loop_inflight(struct mp_loop *loop);
/* One pointer for whoever the loop serves, as uv_loop_t's data (NULL at
 * first; the loop never touches it): op callbacks find their context
 * through mp_loop_data(mp_op_loop(op)). moonport_open keeps its state
 * there, so a loop handed to it is not the host's to use. */
void mp_loop_set_data(struct mp_loop *loop, void *data);
void *mp_loop_data(struct mp_loop *loop);
const char *mp_loop_backend(struct mp_loop *loop);
/* Why io_uring was not used, or NULL if it is in use / was not tried. */
const char *mp_loop_fallback_reason(struct mp_loop *loop);
/* For hosts that embed moonport in their own event loop (libuv's
 * uv_backend_fd / uv_backend_timeout pair): a handle that turns readable
 * whenever the loop has something to do (a completion, a post, a
 * threadpool result, a readiness on epoll), and how long the host may
 * sleep before the next mp_loop_run(MP_RUN_NOWAIT) for timers. Sleep in
 * poll(mp_loop_fd, mp_loop_timeout) and run: nothing spins, nothing is
 * missed. The handle belongs to the backend (an eventfd on io_uring, the
 * epoll instance on epoll). On Windows there is none (a completion port
 * cannot be polled): MP_INVALID_HANDLE; use mp_loop_wait (docs/iocp.md). */
mp_handle_t mp_loop_fd(struct mp_loop *loop);
/* Milliseconds until a timer is due (rounded up), 0 when a completion or
 * a post already waits, -1 when no timer is pending. Call it right before
 * sleeping on mp_loop_fd: it also resets the handle (until then, a turn
 * that took completions may leave it readable: one spare wake). */
int mp_loop_timeout(struct mp_loop *loop);
/* For hosts with nothing else to wait for: sleeps until the loop has
 * something to do (a completion, a post, a wake, a timer due) or
 * timeout_ms passes (-1: no limit), without running anything; then run
 * the loop (MP_RUN_NOWAIT). Returns 1 when woken, 0 when timeout_ms
 * passed first (or a signal interrupted the sleep). Like mp_loop_timeout,
 * it resets the handle first. Loop thread only. */
int mp_loop_wait(struct mp_loop *loop, int timeout_ms);
/* Thread-safe. Queues op (memory owned by the caller, prepared with
 * mp_op_init) as a completion and wakes the loop; its cb runs on the loop
 * thread, in posting order per thread. Wakes coalesce. */
int mp_loop_post(struct mp_loop *loop, struct mp_op *op);
/* Thread-safe: ends the turn the loop is in, or the next one if it is
 * between turns (a wake is never slept through). */
void mp_loop_wake(struct mp_loop *loop);
/* Threadpool size for this loop (created on first use). */
int mp_loop_pool_size(struct mp_loop *loop);

/* Ops. mp_op_new takes a record from the loop's pool (NULL when out of
 * memory); mp_op_init prepares caller-owned memory (for mp_loop_post). */
struct mp_op *mp_op_new(struct mp_loop *loop, mp_op_cb cb, void *data);
void mp_op_init(struct mp_op *op, mp_op_cb cb, void *data);
/* Gives the op back, and frees op->owned (through its destructor). Aborts
 * if the op is still in flight: releasing an op under the kernel is the
 * bug this API exists to prevent. */
void mp_op_release(struct mp_op *op);
/* Makes p the op's owned memory, freed by free_fn (NULL: free) when the
 * op is released or owns something else: memory the kernel reads or
 * writes lives exactly as long as the op. The memory owned before is
 * freed now (unless it is p). op->owned is the submitter's alone: preps
 * keep their copies (paths, addresses, message headers) in op->priv,
 * which the next prep replaces and mp_op_release frees.
 * A work function (mp_op_prep_work) may call it on its op, on its pool
 * thread. */
void mp_op_own(struct mp_op *op, void *p, void (*free_fn)(void *));
/* Starts the op. On failure returns an MP_E* code and the op is not in
 * flight (the caller still owns it). Success means the callback will run
 * exactly once, never from inside mp_op_submit. Submit sets op->result
 * to 0 (a resubmitted op never shows its previous result). */
int mp_op_submit(struct mp_op *op);
/* Marks an op that must finish even when the loop is drained (a last
 * write of buffered data, a close): mp_loop_drain waits for it rather
 * than cancelling it. mp_op_cancel still cancels it. */
void mp_op_protect(struct mp_op *op);
int mp_op_protected(const struct mp_op *op);
/* Requests cancellation of an in-flight op; a no-op otherwise. */
void mp_op_cancel(struct mp_op *op);
int mp_op_inflight(const struct mp_op *op);
/* The loop op was made for (mp_op_new) or posted to (mp_loop_post). */
struct mp_loop *mp_op_loop(const struct mp_op *op);

void mp_op_prep_nop(struct mp_op *op);
void mp_op_prep_timer(struct mp_op *op, int64_t timeout_ns);
void mp_op_prep_work(struct mp_op *op, mp_work_fn fn, void *arg);
void mp_op_prep_read(struct mp_op *op, mp_handle_t h, void *buf, size_t len,
                     int64_t off);
void mp_op_prep_write(struct mp_op *op, mp_handle_t h, const void *buf,
                      size_t len, int64_t off);
void mp_op_prep_recv(struct mp_op *op, mp_handle_t h, void *buf, size_t len);
/* A hint for a prepared RECV (the next prep clears it): the caller expects
 * no data yet (its last receive on the socket emptied it: a server that
 * just answered a request), so a backend that would try the receive at
 * once only to hear EAGAIN (epoll: one syscall) waits for readiness first.
 * Data already there is still received: the result is the same either
 * way. io_uring and IOCP ignore it. */
void mp_op_poll_first(struct mp_op *op);
void mp_op_prep_send(struct mp_op *op, mp_handle_t h, const void *buf,
                     size_t len);
void mp_op_prep_accept(struct mp_op *op, mp_handle_t h);
void mp_op_prep_close(struct mp_op *op, mp_handle_t h);
void mp_op_prep_poll(struct mp_op *op, mp_handle_t h);
/* MP_OP_POLL completing once h is writable instead. */
void mp_op_prep_poll_out(struct mp_op *op, mp_handle_t h);
/* Path ops. Paths are relative to the current directory and copied
 * into memory the op owns (MP_ENOMEM when that fails). */
enum { /* open flags: portable bits (the runtime translates them; the
          handle is never inherited by child processes) */
  MP_O_RDONLY = 0, MP_O_WRONLY = 1, MP_O_RDWR = 2, /* the access mode */
  MP_O_CREAT = 4, MP_O_TRUNC = 8, MP_O_APPEND = 16, MP_O_EXCL = 32,
  MP_O_NOFOLLOW = 64, MP_O_DIRECTORY = 128,
  MP_O_NONBLOCK = 256 /* opening a FIFO or device never waits for the
                         other end; the handle stays non-blocking */
};
int mp_op_prep_open(struct mp_op *op, const char *path, int mpflags,
                    uint32_t mode);
enum { MP_STAT_NOFOLLOW = 1 }; /* lstat: a link itself */
/* The result lands in mp_op_stat(op), valid until the op is released or
 * prepared again. */
int mp_op_prep_stat(struct mp_op *op, const char *path, int flags);
int mp_op_prep_fstat(struct mp_op *op, mp_handle_t h);
const struct mp_stat *mp_op_stat(const struct mp_op *op);
void mp_op_prep_fsync(struct mp_op *op, mp_handle_t h, int datasync);
int mp_op_prep_rename(struct mp_op *op, const char *from, const char *to);
int mp_op_prep_unlink(struct mp_op *op, const char *path);
int mp_op_prep_rmdir(struct mp_op *op, const char *path);
int mp_op_prep_mkdir(struct mp_op *op, const char *path, uint32_t mode);
/* The names in a directory ("." and ".." left out), in the order the
 * system gives them; result is their count. Walk them with
 * mp_op_readdir_next(op, NULL), then (op, name) until it returns NULL. */
int mp_op_prep_readdir(struct mp_op *op, const char *path);
const char *mp_op_readdir_next(const struct mp_op *op, const char *prev);
/* Replaces path with len bytes of data (copied), atomically and durably:
 * a locked temporary in the same directory is written, fsynced and
 * renamed over path, then the directory is fsynced. Symlinks at the end
 * of path are followed (the link stays); a replaced file keeps its mode
 * and, when permitted, its owner. A directory fails with MP_EISDIR,
 * another non-regular file with MP_EINVAL. Cancelled before it starts it
 * does nothing; once started it finishes, removing its temporary on any
 * failure. Temporaries left by killed writers are removed. */
int mp_op_prep_writefile(struct mp_op *op, const char *path,
                         const void *data, size_t len);

/* The whole contents of the file at path, in one op (issue 16): opened
 * read-only without waiting for a FIFO's writer, read until a read
 * returns 0, closed. On io_uring one linked chain on a direct descriptor
 * (open, read, read; more reads while the file has more), else one pool
 * job. result is the byte count; the bytes are mp_op_readfile_data(op),
 * valid until the op is released or prepared again. A directory fails
 * with MP_EISDIR. Cancelled, it closes what it opened. Where reading
 * could hold a pool thread (a FIFO, a device, a socket, when the op runs
 * on the pool), nothing is read: the op completes with MP_EAGAIN and the
 * open (non-blocking) handle in op->handle, for the caller to read and
 * close (an MP_EAGAIN with no handle is the open's own failure). */
int mp_op_prep_readfile(struct mp_op *op, const char *path);
const char *mp_op_readfile_data(const struct mp_op *op);

/* --- more paths and files (issue 14) ---
 * As the path ops above: paths copied into the op, MP_ENOMEM when that
 * fails, results >= 0 or MP_E* codes. */
/* mode: permission bits (07777). */
int mp_op_prep_chmod(struct mp_op *op, const char *path, uint32_t mode);
/* MP_OWNER_KEEP leaves the uid or gid as it is. On systems without
 * owners (Windows) it completes with MP_ENOSYS. */
#define MP_OWNER_KEEP UINT32_MAX
int mp_op_prep_chown(struct mp_op *op, const char *path, uint32_t uid,
                     uint32_t gid);
/* Access and modification times in ns since the epoch; MP_UTIME_NOW
 * for the current time. Follows symlinks. */
#define MP_UTIME_NOW INT64_MIN
int mp_op_prep_utime(struct mp_op *op, const char *path, int64_t atime,
                     int64_t mtime);
/* Creates path as a symbolic link holding target. */
int mp_op_prep_symlink(struct mp_op *op, const char *target,
                       const char *path);
/* READLINK, REALPATH and MKDTEMP leave their string in the op:
 * mp_op_path_result, NUL-terminated, valid until the op is released or
 * prepared again; result is its length. */
int mp_op_prep_readlink(struct mp_op *op, const char *path);
int mp_op_prep_realpath(struct mp_op *op, const char *path);
/* A new directory (mode 0700) named prefix followed by six random
 * characters; prefix NULL: "moonport-" in the system's temporary
 * directory. */
int mp_op_prep_mkdtemp(struct mp_op *op, const char *prefix);
const char *mp_op_path_result(const struct mp_op *op);
/* Sets the size of the file at path, or of the open handle h (path
 * NULL), extending with zeros. */
int mp_op_prep_truncate(struct mp_op *op, const char *path, mp_handle_t h,
                        int64_t size);
/* A new read-write file in the system's temporary directory that has no
 * name (or loses it at once): it is gone when its handle is closed.
 * Result is the handle. */
int mp_op_prep_tmpfile(struct mp_op *op);
/* Copies the bytes of the file from to the file to, which is created
 * (with from's permissions) or truncated, as cp does: in the kernel
 * (copy_file_range) where it can, else through a buffer. Copying a file
 * onto itself fails with MP_EINVAL. u.fs.flags tells which path a
 * failure concerns (0 from, 1 to). */
int mp_op_prep_copyfile(struct mp_op *op, const char *from, const char *to);
/* Sends up to len bytes of the file from, at offset off (>= 0, the
 * file's own position untouched), to the stream socket h, in the kernel
 * (sendfile); result is the count sent (0: off is at end of file), short
 * like a SEND's. Never raises SIGPIPE. Waits for the socket to be
 * writable as SEND does, then sends from the page cache on the loop's
 * thread, at most 16 MiB per call; a range not in the page cache (its
 * first and last pages probed) is read in on the threadpool first (4 MiB
 * of it, then sent), so
 * the loop never waits for the disk (cancelling the op stops that too).
 * sendfile has no MSG_DONTWAIT: a blocking h (an adopted descriptor) is
 * sent to only when writable, at most 4 KiB per call, so the loop never
 * waits. */
void mp_op_prep_sendfile(struct mp_op *op, mp_handle_t h, mp_handle_t from,
                         int64_t off, size_t len);

/* Shared listeners (issue 16): one listening socket that ops of any
 * number of loops accept from, on any threads: each connection goes to
 * the accept that has waited longest (a FIFO over every loop), which
 * spreads connections evenly over loops that are all waiting. Windows'
 * stand-in for SO_REUSEPORT, whose sockets belong to one completion port
 * each: a thread of the listener's own accepts (AcceptEx on a private
 * port) and posts each connection to the waiting op's loop. Elsewhere
 * mp_share_new fails with MP_EOPNOTSUPP (Linux has SO_REUSEPORT) and the
 * other calls, which no record can reach, abort. */
struct mp_share;
/* Takes over the listening socket h (not yet used by any loop); MP_EBUSY
 * if a loop's port has it. On failure h is still the caller's. */
int mp_share_new(mp_handle_t h, struct mp_share **out);
/* A handle of the caller's own on the listening socket (sockname,
 * options); closing it leaves the listener open. */
int mp_share_dup(struct mp_share *sh, mp_handle_t *out);
/* Closes the listener: the waiting accepts complete with MP_ECLOSED,
 * connections taken for no op yet are closed, the thread ends (joined
 * here). Any thread, once; no accept may be prepared on sh afterwards.
 * The record is freed once the last op that named it has completed. */
void mp_share_close(struct mp_share *sh);
/* MP_OP_ACCEPT from sh: result is the new handle, as from
 * mp_op_prep_accept. A cancel takes the op out of the queue
 * (MP_ECANCELED); a connection already on its way to it goes to the next
 * waiting accept instead (or waits for one), never lost. */
void mp_op_prep_accept_shared(struct mp_op *op, struct mp_share *sh);
/* For tests: the accepts waiting and the connections taken for none. */
void mp_share_stats(struct mp_share *sh, int *waiting, int *held);

/* File metadata, as stat(2) gives it, in portable terms (MP_OP_STAT,
 * mp_os_fstat). mode holds the permission bits only; type the kind. */
enum { MP_FT_UNKNOWN, MP_FT_FILE, MP_FT_DIR, MP_FT_LINK, MP_FT_FIFO,
       MP_FT_SOCK, MP_FT_CHAR, MP_FT_BLOCK };
struct mp_stat {
  int64_t size;
  uint64_t ino, dev, nlink, blocks; /* blocks: 512-byte units */
  uint32_t mode, uid, gid;
  uint8_t type; /* MP_FT_* */
  struct { int64_t sec; int32_t nsec; } atime, mtime, ctime;
};

/* Addresses: an IPv4, IPv6 or Unix-domain socket address in a portable
 * box: the OS's sockaddr, len bytes of sa.b. Copy them freely; the bytes
 * may be stored and put back as they are (mp_addr_family checks them). */
enum { MP_AF_UNSPEC, MP_AF_INET, MP_AF_INET6, MP_AF_UNIX };
struct mp_addr {
  union { unsigned char b[128]; int64_t align_; } sa;
  uint32_t len;
};
/* A numeric IPv4 or IPv6 address and a port; MP_EINVAL for anything else
 * (names are mp_op_prep_getaddrinfo's). */
int mp_addr_ip(struct mp_addr *a, const char *ip, int port);
/* A Unix socket path of len bytes: MP_EINVAL if empty or holding a zero
 * byte, MP_ENAMETOOLONG if it does not fit. */
int mp_addr_unix(struct mp_addr *a, const char *path, size_t len);
/* MP_AF_*, or MP_EINVAL for bytes that are no valid address. */
int mp_addr_family(const struct mp_addr *a);
/* The host as text ("127.0.0.1", "::1", no brackets) or the Unix path
 * ("" when unnamed), and the port (-1 for Unix). Returns the family, or
 * MP_EINVAL (host then ""). */
int mp_addr_format(const struct mp_addr *a, char *host, size_t size,
                   int *port);

/* Socket ops. The address is copied into the op (mp_op_prep_connect and
 * _sendto), and buf must stay valid until completion (keep it in
 * op->owned). to NULL: the connected peer. Return 0 or MP_ENOMEM. */
int mp_op_prep_connect(struct mp_op *op, mp_handle_t h,
                       const struct mp_addr *addr);
int mp_op_prep_sendto(struct mp_op *op, mp_handle_t h, const void *buf,
                      size_t len, const struct mp_addr *to);
int mp_op_prep_recvfrom(struct mp_op *op, mp_handle_t h, void *buf,
                        size_t len);
/* RECVFROM's source, once completed. */
const struct mp_addr *mp_op_from(struct mp_op *op);
/* Resolves host (NULL or "": the wildcard with MP_AI_PASSIVE, else the
 * loopback) and port to at most MP_ADDRS_MAX distinct addresses of family
 * (MP_AF_UNSPEC: both IP families), on the threadpool. The result is the
 * count, or an MP_EAI_* / MP_E* code; the addresses are mp_op_addrs(op).
 * A host that is no valid name (RFC 1123: letters, digits, '-', '_',
 * dots; not all digits) fails here with MP_EAI_NONAME, unresolved. */
enum { MP_AI_PASSIVE = 1, MP_AI_NUMERICHOST = 2, MP_ADDRS_MAX = 16 };
int mp_op_prep_getaddrinfo(struct mp_op *op, const char *host, int port,
                           int family, int flags);
const struct mp_addr *mp_op_addrs(struct mp_op *op);

/* Watching a file or a directory tree for changes (inotify on Linux;
 * ReadDirectoryChangesW on Windows, later). The changes are read with an
 * op (mp_op_prep_watch) into a buffer of MP_WATCH_BUF bytes and decoded
 * into events with mp_watch_feed and mp_watch_take; between reads the
 * system queues them (inotify: up to fs.inotify.max_queued_events), and
 * what it or the decoded queue (MP_WATCH_QUEUE events) cannot hold is
 * reported as one MP_WEV_OVERFLOW. The record is the loop thread's once
 * opened; mp_watch_open touches no loop (it may run on the pool). */
struct mp_watch;
enum { MP_WATCH_RECURSIVE = 1 }; /* a directory's whole tree, subdirectories
                                    added as they appear */
enum { MP_WATCH_BUF = 65536, MP_WATCH_QUEUE = 4096 };
enum { MP_WEV_CREATE, MP_WEV_MODIFY, MP_WEV_DELETE, MP_WEV_RENAME,
       MP_WEV_OVERFLOW };
struct mp_watch_event {
  int type;         /* MP_WEV_* */
  const char *path; /* the watched path joined with the changed name
                       (the new name of a rename); NULL for an overflow */
  const char *from; /* MP_WEV_RENAME: the old name, else NULL */
};
/* Starts watching path (a file or a directory); 0 or an MP_E* code. */
int mp_watch_open(const char *path, int flags, struct mp_watch **out);
/* The handle the op reads; the caller closes it (after its last op). */
mp_handle_t mp_watch_handle(const struct mp_watch *w);
/* The next batch of changes into buf (len >= MP_WATCH_BUF); result is
 * the count of bytes for mp_watch_feed. */
void mp_op_prep_watch(struct mp_op *op, struct mp_watch *w, void *buf,
                      size_t len);
/* Decodes a batch (recursive watches add the new subdirectories now and
 * report what they already hold as created). */
void mp_watch_feed(struct mp_watch *w, const void *buf, size_t len);
/* The oldest decoded event into ev (its strings valid until the next
 * call); 0 when none is left. */
int mp_watch_take(struct mp_watch *w, struct mp_watch_event *ev);
/* Frees the record (not the handle). NULL is fine. */
void mp_watch_free(struct mp_watch *w);

/* Introspection, for leak checks in tests and debug tools: what the loop
 * holds right now. A quiet loop has no op in flight, no live record (every
 * mp_op_new matched by mp_op_release), no timer and no pool job. */
struct mp_loop_stats {
  size_t ops_inflight; /* submitted, callback not yet run */
  size_t ops_live;     /* records from mp_op_new not yet released */
  size_t timers;       /* armed timers */
  size_t pool_jobs;    /* threadpool jobs queued or running */
  int pool_threads;    /* threadpool threads (0 until the first job) */
};
void mp_loop_stats(struct mp_loop *loop, struct mp_loop_stats *st);

/* Allocation-failure injection, for tests. Once set, fail(ud, size) is
 * asked before every allocation made for this loop on its thread (op
 * records, path and address copies, the timer heap, the threadpool, the
 * epoll table, and the bindings' op buffers and job records, which use
 * mp_loop_malloc too); nonzero makes it fail as if memory ran out. NULL
 * removes the hook. Memory from mp_loop_malloc and friends is freed with
 * free(). */
typedef int (*mp_alloc_fail_fn)(void *ud, size_t size);
void mp_loop_set_alloc_fail(struct mp_loop *loop, mp_alloc_fail_fn fail,
                            void *ud);
void *mp_loop_malloc(struct mp_loop *loop, size_t size);
void *mp_loop_calloc(struct mp_loop *loop, size_t n, size_t size);
void *mp_loop_realloc(struct mp_loop *loop, void *p, size_t size);

/* Debug registry of buffers the kernel may write: returns nonzero when
 * [p, p+len) overlaps the buffer of any in-flight op of this loop. Used by
 * tests and debug builds to assert that nothing is freed under the kernel. */
int mp_loop_buffer_inflight(struct mp_loop *loop, const void *p, size_t len);

#ifdef __cplusplus
}
#endif
#endif
