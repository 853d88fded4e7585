/* mp_internal.h: declarations shared by the runtime's files (mp__*). */
#ifndef MP_INTERNAL_H
#define MP_INTERNAL_H

#include <stdatomic.h>
#include <stdlib.h>

#include "backend.h"
#include "mp.h"
#include "os.h"

/* Op states. An op is FREE in the loop's pool, IDLE while its owner holds
 * it, INFLIGHT from submit until the backend reports it, DONE while it
 * waits in the completion queue, then IDLE again when its callback runs. */
enum { MP__FREE, MP__IDLE, MP__INFLIGHT, MP__DONE };

/* Op flags. */
enum {
  MP__F_CANCEL = 1,   /* cancellation requested */
  MP__F_EXTERNAL = 2, /* caller-owned memory (mp_op_init), not pooled */
  MP__F_BACKEND = 4,  /* handed to the backend (vs heap/pool/nop) */
  MP__F_PROTECT = 8,  /* mp_loop_drain waits for it instead of cancelling */
  MP__F_POLL = 16,    /* io_uring: waiting for readiness after EAGAIN */
  MP__F_ASYNC = 32,   /* io_uring: issued to io-wq (a positional READ of
                         a non-blocking file answered EAGAIN) */
  MP__F_POLLFIRST = 64 /* RECV: mp_op_poll_first (not on Windows, where
                          backend_iocp.c's own flags use the bit) */
};

/* Debug buffer checks (MOONPORT_DEBUG_BUFFERS=1, always in MP_DEBUG
 * builds): op-owned memory is poisoned on release and kept a while; a
 * changed byte when it is finally freed means something (the kernel) wrote
 * into it after its op was released. ASan cannot see kernel writes. */
enum { MP__QUARANTINE = 32, MP__POISON = 0xdb };
struct mp__quarantine {
  unsigned char *p[MP__QUARANTINE];
  size_t len[MP__QUARANTINE];
  int kind[MP__QUARANTINE];
  unsigned next;
};
void mp__quarantine_flush(struct mp_loop *loop);

struct mp_pool; /* threadpool.c */
struct mp__timer_slot; /* timer.c */

/* A FIFO of ops linked through link. */
struct mp__queue {
  struct mp_op *head, *tail;
};

static inline void mp__queue_push(struct mp__queue *q, struct mp_op *op) {
  op->link = NULL;
  if (q->tail) q->tail->link = op; else q->head = op;
  q->tail = op;
}

static inline struct mp_op *mp__queue_pop(struct mp__queue *q) {
  struct mp_op *op = q->head;
  if (op) {
    q->head = op->link;
    if (!q->head) q->tail = NULL;
  }
  return op;
}

/* Removes op from q (O(n)); returns 1 if it was there. */
int mp__queue_remove(struct mp__queue *q, struct mp_op *op);

struct mp_loop {
  const struct mp_backend *backend;
  void *bdata;                 /* backend state */
  const char *fallback_reason; /* why io_uring was not used */
  int64_t now;                 /* cached monotonic time, ns */
  int stop;

  /* Every op between submit and dispatch, doubly linked through next/prev
   * (a DONE op moves to done and out of this list). */
  struct mp_op *inflight;
  size_t ninflight;   /* INFLIGHT + DONE: what keeps the loop alive */
  struct mp__queue done;

  /* Timer min-heap ordered by (due, seq). */
  struct mp__timer_slot *heap;
  size_t nheap, capheap;
  uint64_t timer_seq;

  /* Cross-thread completions: mp_loop_post and threadpool results. */
  mp__mutex post_lock;
  struct mp__queue posted;
  atomic_int wake_pending; /* the backend's wake object is signalled */

  struct mp_pool *pool; /* created on first MP_OP_WORK */

  /* Free op records, allocated in blocks that live as long as the loop. */
  struct mp_op *free_ops;
  void *blocks;

  struct mp__quarantine *quarantine; /* debug buffer checks, else NULL */
  size_t nlive; /* records handed out by mp_op_new, not yet released */

  mp_alloc_fail_fn alloc_fail; /* tests: allocation-failure injection */
  void *alloc_ud;
  void *data; /* the user's: mp_loop_set_data */
};

/* loop.c */
void mp__op_complete(struct mp_loop *loop, struct mp_op *op, int64_t res);
void mp__drain_posted(struct mp_loop *loop);

/* timer.c */
int mp__timer_start(struct mp_loop *loop, struct mp_op *op);
int mp__timer_stop(struct mp_loop *loop, struct mp_op *op);
void mp__timer_run(struct mp_loop *loop);
int64_t mp__timer_next(struct mp_loop *loop); /* ns until due, -1 if none */

/* op.c: replaces op->priv with size fresh bytes (NULL: out of memory,
 * op->priv unchanged). */
void *mp__op_priv(struct mp_op *op, size_t size);

/* watchq.c: a watcher's queue of decoded events, bounded by
 * MP_WATCH_QUEUE; once events are dropped (the queue full, or the
 * watcher setting lost), one MP_WEV_OVERFLOW stands for all of them.
 * push takes path and from (malloc'd: freed when dropped); take hands
 * out the next event, valid until the next take; free empties it. */
struct mp__wev {
  int type;
  char *path, *from;
};
struct mp__wq {
  struct mp__wev *q; /* q[head..len) */
  size_t head, len, cap;
  int lost;          /* events were dropped: report an overflow next */
  struct mp__wev cur; /* the event take handed out */
};
void mp__wq_push(struct mp__wq *w, int type, char *path, char *from);
int mp__wq_take(struct mp__wq *w, struct mp_watch_event *ev);
void mp__wq_free(struct mp__wq *w);

/* resolve.c: MP_EAI_NONAME for a host name the resolver must not see
 * (invalid by RFC 1123, so never sent to a DNS server), else 0. */
int mp__check_name(const char *host, int flags);
/* resolve.c: MP_OP_GETADDRINFO's op->priv, and its body, on a pool
 * thread (which writes the addresses). */
struct mp__gai_job {
  char host[256];
  int port, family, flags;
  struct mp_addr addrs[MP_ADDRS_MAX];
};
void mp__getaddrinfo_run(struct mp_op *op);

#ifdef _WIN32
/* error_win.c: a Win32 or Winsock error code (GetLastError,
 * WSAGetLastError) as an MP_E* code; 0 -> 0, unknown -> MP_EUNKNOWN. */
int mp_err_from_win(unsigned long code);

/* net_win.c: op->priv of SENDTO / RECVFROM (the data is u.rw.buf and
 * u.rw.len). SENDTO: addr is the destination, addr.len 0 the connected
 * peer. RECVFROM: the backend gives WSARecvFrom addr.sa.b, addrlen and
 * flags, which must live until the completion, and sets addr.len. */
struct mp__dgram {
  struct mp_addr addr;
  int addrlen;
  unsigned long flags;
};

/* share_win.c: MP_OP_ACCEPT from a shared listener (op->u.sa.addr set),
 * for backend_iocp.c: submit (port: the loop's, where the op's packet
 * comes with key MP__KEY_SHARE), cancel, and that packet taken. */
enum { MP__KEY_SHARE = 3 };
int mp__share_submit(struct mp_op *op, void *port);
void mp__share_cancel(struct mp_loop *loop, struct mp_op *op);
void mp__share_done(struct mp_loop *loop, struct mp_op *op);

/* fsio_win.c: one blocking ReadFile or WriteFile of h at off (-1: the
 * position), interruptible by op's cancel (op NULL: none); READFILE and
 * WRITEFILE (fs_win.c) use it. fs_win.c: a FILETIME as seconds and ns
 * since 1970. */
int64_t mp__sync_io(HANDLE h, int write, void *buf, size_t size,
                    int64_t off, struct mp_op *op);
void mp__time_of(const FILETIME *ft, int64_t *sec, int32_t *nsec);
#endif

/* threadpool.c */
int mp__pool_submit(struct mp_loop *loop, struct mp_op *op);
int mp__pool_cancel(struct mp_loop *loop, struct mp_op *op);
void mp__pool_close(struct mp_loop *loop);
int mp__pool_default_size(void);
void mp__pool_stats(struct mp_loop *loop, struct mp_loop_stats *st);

/* fs_unix.c: files and paths. A STAT op owns MP__STAT_HEAD bytes for
 * the struct mp_stat and the platform's native result (io_uring's struct
 * statx, translated when it completes: mp__fs_complete). */
enum { MP__STAT_HEAD = 512 };
struct stat;
void mp__stat_from_stat(struct mp_stat *o, const struct stat *st);
/* At prep: portable flags (MP_O_*, MP_STAT_*) to the platform's. */
void mp__fs_translate(struct mp_op *op);
/* The directory handle a path op names (the current directory). */
int mp__fs_dirfd(const struct mp_op *op);
/* io_uring: the native scratch of a STAT op, and its translation once
 * the kernel has filled it (res >= 0). */
void *mp__fs_statx_buf(struct mp_op *op);
void mp__fs_complete(struct mp_op *op, int64_t res);
/* The blocking body of a file or path op (OPEN..WRITEFILE, FSYNC). */
void mp__fs_blocking(struct mp_op *op);

/* fs_unix.c, issue 14: the longest path READLINK and REALPATH return
 * (with its NUL), the suffix mkdtemp fills in, the system's temporary
 * directory (TMPDIR, else /tmp), the bodies of CHMOD..COPYFILE; and
 * fsio_unix.c's one non-blocking SENDFILE attempt (the count, or
 * MP_EAGAIN: wait for the socket to be writable). */
enum { MP__PATH_MAX = 4096 };
#define MP__TEMPLATE "XXXXXX"
const char *mp__fs_tmpdir(void);
int64_t mp__fsx_blocking(struct mp_op *op);
int64_t mp__sendfile_try(struct mp_op *op);
/* The backends' SENDFILE attempt: mp__sendfile_try, and when the range
 * is not in the page cache, a pool job that reads it in (MP__EWARMING:
 * the op is with that job, which submits it to the backend again when
 * done). A cancel of the op while it warms: mp__sendfile_cancel. */
enum { MP__EWARMING = -5200, MP__ECOLD = -5201 };
int64_t mp__sendfile_run(struct mp_op *op);
int mp__sendfile_cancel(struct mp_op *op); /* 1 if it was warming */

/* READFILE's head of op->priv (op.c), the path after it; u.fs.buf
 * points here. buf (malloc'd, freed with the op) holds len bytes read,
 * cap allocated. slot: the direct descriptor of io_uring's chain, -1 when
 * the op is not (or no longer) in a chain (the pool's job never touches
 * it, so the loop thread may read the rest then). The pool's body is
 * mp__readfile_blocking (fs_unix.c; fs_win.c's readfile_op); the ring's
 * chain is in backend_uring.c. */
struct mp__rf {
  char *buf;
  size_t cap, len;
  int64_t open, r[2]; /* the chain's results (io_uring) */
  int slot;
  uint8_t pending;    /* CQEs due for the current step (io_uring) */
  uint8_t out;        /* bits: which tags are with the kernel (io_uring) */
  uint8_t phase;      /* io_uring: chain, read or poll */
  uint8_t async;      /* io_uring: reads go to io-wq after an EAGAIN */
  uint8_t waited;     /* io_uring: polled after an empty first read */
};
int64_t mp__readfile_blocking(struct mp_op *op);
int64_t mp__readfile_all(struct mp__rf *rf, uint64_t size,
                         int64_t (*rd)(void *h, void *buf, size_t len,
                                       int64_t off),
                         void *h);

/* os_unix.c: the blocking body of an op a backend sends to the
 * threadpool (file and path ops on epoll, opcodes io_uring lacks); sets
 * op->result. */
void mp__os_blocking(struct mp_op *op);

#endif
