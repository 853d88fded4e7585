/* backend_uring.c: Linux io_uring (liburing).
 *
 * The op pointer is the SQE's user_data, so a CQE leads straight back to
 * its record (the IOCP container_of pattern). SQEs are batched and
 * submitted when the loop waits. Cancel is an ASYNC_CANCEL SQE whose own CQE
 * (user_data 0) is ignored: the op is completed only by its own CQE, which
 * arrives after the cancel's, so nothing is released under the kernel.
 * No SQPOLL: an SQPOLL ring keeps the creator's credentials after setuid
 * (the CVE-2024-22017 class), and it burns a CPU. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "mp_internal.h"

#define TAG_IGNORE 0u  /* cancel CQEs */
#define TAG_POLL 1u    /* low bit of an op's address: its readiness poll */
#define TAG_RF 6u      /* READFILE's steps: op | 2, 4 or 6 (rf_cqe) */

/* Test-only fault injection (MP_FAULT_SEED, MP_FAULT_RATE, MP_FAULT_HARD,
 * read at init): a seeded share of socket and file ops is shortened (asks
 * the kernel for fewer bytes, which it may always return) or never reaches
 * the kernel and completes with MP_EINTR or MP_EAGAIN (with MP_FAULT_HARD,
 * MP_ECANCELED). Faults are made before the kernel sees the op, so no byte
 * is lost or duplicated by the injection itself. MP_FAULT_BUSY=N: the
 * first N SQEs asked for inside a reap reap first, as when the SQ is full
 * and the kernel refuses it (EBUSY with a CQ backlog). MP_FAULT_ENTER=E:
 * the next io_uring_enter reports errno E whatever it did. */
struct faults {
  uint64_t rng;          /* xorshift64 state; 0: faults off */
  uint32_t rate;         /* per 2^32 */
  int hard;
  struct mp__queue q;    /* faulted ops, completed by the next reap */
  int busy;              /* MP_FAULT_BUSY: get_sqe calls made while
                            reaping still to reap first */
  int enter;             /* MP_FAULT_ENTER: the errno the next
                            io_uring_enter reports instead (0: none) */
  const char *stats;     /* MP_FAULT_STATS: appended to at close */
  uint64_t seed, nrolls, nfaults;
};

struct uring_state {
  struct io_uring ring;
  int wakefd; /* the wake object, registered with the ring (ur_init) */
  unsigned overflows; /* times the CQ overflowed (debug counter) */
  /* Optional opcodes (file and path ops) the kernel supports; the others
   * run on the threadpool. */
  unsigned char native[MP_OP_KIND_MAX];
  struct faults fault;
  /* READFILE's direct descriptors: a sparse table registered at the
   * first READFILE (rf_ready: 1 done, -1 refused), and its free slots. */
  int rf_ready, rf_nfree;
  int *rf_free;
  int reaping; /* depth of reap() calls (a full SQ reaps inside a reap) */
};

/* Linux 6.9's ftruncate opcode (liburing 2.3 predates it). */
#define MP__IORING_OP_FTRUNCATE 55

/* Optional op kinds and the opcode each needs. */
static const struct { int kind, opcode; } optional_ops[] = {
  {MP_OP_OPEN, IORING_OP_OPENAT},     {MP_OP_STAT, IORING_OP_STATX},
  {MP_OP_FSYNC, IORING_OP_FSYNC},     {MP_OP_RENAME, IORING_OP_RENAMEAT},
  {MP_OP_UNLINK, IORING_OP_UNLINKAT}, {MP_OP_RMDIR, IORING_OP_UNLINKAT},
  {MP_OP_MKDIR, IORING_OP_MKDIRAT},
  {MP_OP_SYMLINK, IORING_OP_SYMLINKAT},
  {MP_OP_TRUNCATE, MP__IORING_OP_FTRUNCATE}, /* a handle's; paths: pool */
};

/* A file or path op the kernel has no opcode for: the threadpool's. */
static int on_pool(const struct uring_state *s, const struct mp_op *op) {
  return op->kind >= MP_OP_OPEN && op->kind <= MP_OP_WRITEFILE &&
         (!s->native[op->kind] ||
          (op->kind == MP_OP_TRUNCATE && op->handle == MP_INVALID_HANDLE));
}

/* Opcodes every op kind needs; without them, use epoll instead. */
static const int needed_ops[] = {
  IORING_OP_NOP, IORING_OP_READ, IORING_OP_WRITE, IORING_OP_SEND,
  IORING_OP_RECV, IORING_OP_ACCEPT, IORING_OP_CONNECT, IORING_OP_CLOSE,
  IORING_OP_ASYNC_CANCEL, IORING_OP_POLL_ADD, IORING_OP_SENDMSG,
  IORING_OP_RECVMSG,
};

static void reap(struct mp_loop *loop);
static int rf_submit(struct mp_loop *loop, struct mp_op *op);
static void rf_cancel(struct mp_loop *loop, struct mp_op *op, int first);
static void rf_cqe(struct mp_loop *loop, struct mp_op *op, unsigned step,
                   int res);

/* What io_uring_enter answered. EINTR, EAGAIN and ENOMEM (no kernel
 * memory for a request: try again later), EBUSY (a CQ backlog: reap) and
 * ETIME pass. Anything else means ops whose completions will never come
 * (EBADR: the kernel dropped some; EEXIST: a SINGLE_ISSUER ring refusing
 * a thread other than its creator) or a ring that cannot be used at all.
 * Their records are the kernel's until then, so the loop can neither
 * finish nor free them: say so and stop, rather than spin or hang. */
static int check_enter(struct uring_state *s, int r) {
  if (s->fault.enter) { /* (test: the kernel's answer replaced) */
    r = -s->fault.enter;
    s->fault.enter = 0;
  }
  if (r >= 0 || r == -EINTR || r == -EAGAIN || r == -ENOMEM ||
      r == -EBUSY || r == -ETIME)
    return r;
  if (r == -EEXIST)
    fprintf(stderr, "moonport: an io_uring loop must be run by the thread "
                    "that created it\n");
  else if (r == -EBADR)
    fprintf(stderr, "moonport: io_uring dropped completions (the kernel "
                    "ran out of memory): in-flight ops are lost\n");
  else
    fprintf(stderr, "moonport: io_uring_enter: %s: the ring cannot be "
                    "used\n", strerror(-r));
  abort();
}

/* SQ full: hand the batch to the kernel; if the kernel pushes back
 * (EBUSY with a CQ backlog), reap completions first. This may run inside
 * a reap (a completion that submits again): reap() is reentrant. */
static void submit_full(struct mp_loop *loop) {
  struct uring_state *s = loop->bdata;
  int r = check_enter(s, io_uring_submit(&s->ring));
  if (r < 0 && r != -EINTR) reap(loop);
}

static struct io_uring_sqe *get_sqe(struct mp_loop *loop) {
  struct uring_state *s = loop->bdata;
  struct io_uring_sqe *sqe;
  if (s->fault.busy && s->reaping) { /* (test: as a refused full SQ) */
    s->fault.busy--;
    reap(loop);
  }
  while (!(sqe = io_uring_get_sqe(&s->ring))) submit_full(loop);
  return sqe;
}

static int probe(struct uring_state *s) {
  struct io_uring_probe *p = io_uring_get_probe_ring(&s->ring);
  int ok = 1;
  if (!p) return MP_ENOSYS;
  for (size_t i = 0; i < sizeof needed_ops / sizeof needed_ops[0]; i++)
    if (!io_uring_opcode_supported(p, needed_ops[i])) ok = 0;
  /* MOONPORT_URING_NOFS=1 routes file/path ops to the pool (for tests
   * of the fallback on kernels that have everything). */
  const char *nofs = getenv("MOONPORT_URING_NOFS");
  for (size_t i = 0; i < sizeof optional_ops / sizeof optional_ops[0]; i++)
    s->native[optional_ops[i].kind] =
        !(nofs && *nofs == '1') &&
        io_uring_opcode_supported(p, optional_ops[i].opcode);
  /* READFILE's chain: direct opens and closes (5.15; the sparse table it
   * needs, 5.19, is registered at first use) */
  s->native[MP_OP_READFILE] = s->native[MP_OP_OPEN];
  io_uring_free_probe(p);
  return ok ? 0 : MP_ENOSYS;
}

/* A ring can be created yet unusable (seccomp allowing io_uring_setup but
 * refusing io_uring_enter): prove it works with one NOP round trip. */
static int round_trip(struct io_uring *ring) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
  struct io_uring_cqe *cqe;
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data64(sqe, TAG_IGNORE);
  int r = io_uring_submit_and_wait(ring, 1);
  if (r < 0) return r;
  r = io_uring_peek_cqe(ring, &cqe);
  if (r < 0) return r;
  io_uring_cqe_seen(ring, cqe);
  return 0;
}

/* Socket, pipe and file IO: the ops that may be short, interrupted or
 * told to try again. */
static int is_io(int kind) {
  return (kind >= MP_OP_READ && kind <= MP_OP_CONNECT) ||
         kind == MP_OP_SENDTO || kind == MP_OP_RECVFROM;
}

static void faults_init(struct faults *f) {
  const char *seed = getenv("MP_FAULT_SEED"), *rate = getenv("MP_FAULT_RATE");
  const char *hard = getenv("MP_FAULT_HARD");
  const char *busy = getenv("MP_FAULT_BUSY");
  const char *enter = getenv("MP_FAULT_ENTER");
  double r = rate ? atof(rate) : 0;
  f->busy = busy ? atoi(busy) : 0;
  f->enter = enter ? atoi(enter) : 0;
  if (!seed || !*seed || r <= 0) return;
  f->seed = strtoull(seed, NULL, 0);
  f->rng = f->seed * 0x9e3779b97f4a7c15ull | 1;
  f->rate = r >= 1 ? UINT32_MAX : (uint32_t)(r * 4294967296.0);
  f->hard = hard && *hard == '1';
  f->stats = getenv("MP_FAULT_STATS");
}

/* "seed rate ops faults", as tests/fault/shim.c writes it. */
static void faults_report(struct faults *f) {
  FILE *out;
  if (!f->rng || !f->stats || !*f->stats || !(out = fopen(f->stats, "a")))
    return;
  fprintf(out, "%llu %g %llu %llu\n", (unsigned long long)f->seed,
          f->rate / 4294967296.0, (unsigned long long)f->nrolls,
          (unsigned long long)f->nfaults);
  fclose(out);
}

static uint32_t fault_rand(struct faults *f) {
  f->rng ^= f->rng << 13;
  f->rng ^= f->rng >> 7;
  f->rng ^= f->rng << 17;
  return (uint32_t)(f->rng >> 32);
}

/* Decides a fault for op about to be submitted: returns 0 (none; *len
 * may be shortened) or the error to complete it with instead. */
static int fault_roll(struct faults *f, struct mp_op *op, unsigned *len) {
  struct stat st;
  int r = 0;
  if (!f->rng || !is_io(op->kind)) return 0;
  f->nrolls++;
  if (fault_rand(f) > f->rate) return 0;
  switch (fault_rand(f) % 4) {
    case 0:
      /* Short: only where the call may return fewer bytes (not datagrams;
       * not reads of regular files, which are short only at the end). */
      if (op->kind > MP_OP_SEND || *len < 2 ||
          (op->kind == MP_OP_READ && fstat(op->handle, &st) == 0 &&
           S_ISREG(st.st_mode)))
        return 0;
      *len = 1 + fault_rand(f) % (*len - 1);
      f->nfaults++;
      return 0;
    case 1:
      r = op->kind == MP_OP_CONNECT ? 0 : MP_EINTR;
      break;
    case 2:
      r = op->kind == MP_OP_CONNECT ? 0 : MP_EAGAIN;
      break;
    default:
      r = f->hard ? MP_ECANCELED : 0;
      break;
  }
  f->nfaults += r != 0;
  return r;
}

static int ur_init(struct mp_loop *loop) {
  struct uring_state *s = calloc(1, sizeof *s);
  struct io_uring_params p;
  int r;
  if (!s) return MP_ENOMEM;
  if ((r = s->wakefd = mp__wakefd_open()) < 0) {
    free(s);
    return r;
  }
  /* The loop is the ring's only submitter, so completion work can wait
   * until the loop asks for events (SINGLE_ISSUER | DEFER_TASKRUN, 6.1+):
   * no interrupts of the loop thread, batched completion processing.
   * Older kernels get fewer flags. */
  static const unsigned flag_sets[] = {
    IORING_SETUP_CLAMP | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_CLAMP | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_CLAMP | IORING_SETUP_CQSIZE,
  };
  r = -EINVAL;
  for (size_t i = 0; i < 3 && r == -EINVAL; i++) {
    memset(&p, 0, sizeof p);
    p.flags = flag_sets[i];
    p.cq_entries = 4096;
    r = io_uring_queue_init_params(256, &s->ring, &p);
  }
  if (r < 0) {
    mp__close_fd(s->wakefd);
    free(s);
    return mp_err_from_errno(-r);
  }
  if ((r = probe(s)) == 0 && (r = round_trip(&s->ring)) < 0)
    r = mp_err_from_errno(-r);
  if (r < 0) {
    io_uring_queue_exit(&s->ring);
    mp__close_fd(s->wakefd);
    free(s);
    return r;
  }
  /* The ring fd does not turn readable when deferred completion work
   * arrives (measured on 6.18: poll on it sleeps through a finished
   * read), but a registered eventfd is signalled then, and when CQEs are
   * posted. So the loop's wake eventfd is also the ring's: the loop waits
   * on it (ppoll, not io_uring_enter) and hosts poll it (mp_loop_fd). */
  if ((r = io_uring_register_eventfd(&s->ring, s->wakefd)) < 0) {
    io_uring_queue_exit(&s->ring);
    mp__close_fd(s->wakefd);
    free(s);
    return mp_err_from_errno(-r);
  }
  loop->bdata = s;
  faults_init(&s->fault);
  return 0;
}

static void ur_close(struct mp_loop *loop) {
  struct uring_state *s = loop->bdata;
  free(s->rf_free);
  faults_report(&s->fault);
  io_uring_queue_exit(&s->ring);
  mp__close_fd(s->wakefd);
  free(s);
}

static int ur_submit(struct mp_loop *loop, struct mp_op *op) {
  struct io_uring_sqe *sqe;
  /* The SQE length field is 32 bits; a short count is normal for IO. */
  unsigned len = op->u.rw.len > 0x7ffff000 ? 0x7ffff000
                                            : (unsigned)op->u.rw.len;
  struct uring_state *s = loop->bdata;
  if (on_pool(s, op))
    return mp__pool_submit(loop, op); /* the kernel lacks the opcode */
  if (op->kind == MP_OP_READFILE) return rf_submit(loop, op);
  if (op->handle < 0 &&
      (op->kind <= MP_OP_CLOSE || op->kind > MP_OP_WRITEFILE))
    return MP_EBADF;
  int fault = fault_roll(&s->fault, op, &len);
  if (fault) {
    op->result = fault;
    mp__queue_push(&s->fault.q, op);
    mp_loop_wake(loop); /* a host polling mp_loop_fd must come back */
    return 0;
  }
  if (op->kind == MP_OP_SENDFILE) {
    /* No opcode: sendfile(2) here, once the socket is writable (a poll,
     * as after EAGAIN; poll_done submits again). */
    int64_t r = mp__sendfile_run(op);
    if (r == MP__EWARMING) return 0; /* the pool reads the file in */
    if (r != MP_EAGAIN) {
      mp__op_complete(loop, op, r);
      return 0;
    }
    sqe = get_sqe(loop);
    io_uring_prep_poll_add(sqe, op->handle, POLLOUT);
    io_uring_sqe_set_data64(sqe, (uintptr_t)op | TAG_POLL);
    op->flags |= MP__F_POLL;
    return 0;
  }
  sqe = get_sqe(loop);
  switch (op->kind) {
    case MP_OP_READ:
      io_uring_prep_read(sqe, op->handle, op->u.rw.buf, len,
                         (uint64_t)op->u.rw.off);
      break;
    case MP_OP_WRITE:
      io_uring_prep_write(sqe, op->handle, op->u.rw.buf, len,
                          (uint64_t)op->u.rw.off);
      break;
    case MP_OP_RECV:
      io_uring_prep_recv(sqe, op->handle, op->u.rw.buf, len, op->msgflags);
      break;
    case MP_OP_SEND:
      /* SEND, never WRITE, on sockets: WRITE raises SIGPIPE on a reset. */
      io_uring_prep_send(sqe, op->handle, op->u.rw.buf, len,
                         MSG_NOSIGNAL | op->msgflags);
      break;
    case MP_OP_ACCEPT:
      io_uring_prep_accept(sqe, op->handle, NULL, NULL,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
      break;
    case MP_OP_CONNECT:
      io_uring_prep_connect(sqe, op->handle, op->u.sa.addr, op->u.sa.addrlen);
      break;
    case MP_OP_CLOSE:
      io_uring_prep_close(sqe, op->handle);
      break;
    case MP_OP_OPEN:
      io_uring_prep_openat(sqe, mp__fs_dirfd(op), op->u.fs.path,
                           op->u.fs.flags, op->u.fs.mode);
      break;
    case MP_OP_STAT:
      io_uring_prep_statx(sqe, mp__fs_dirfd(op), op->u.fs.path,
                          op->u.fs.flags, STATX_BASIC_STATS,
                          mp__fs_statx_buf(op));
      break;
    case MP_OP_FSYNC:
      io_uring_prep_fsync(sqe, op->handle,
                          op->u.fs.flags ? IORING_FSYNC_DATASYNC : 0);
      break;
    case MP_OP_RENAME:
      io_uring_prep_renameat(sqe, AT_FDCWD, op->u.fs.path, AT_FDCWD,
                             op->u.fs.path2, 0);
      break;
    case MP_OP_UNLINK:
    case MP_OP_RMDIR:
      io_uring_prep_unlinkat(sqe, AT_FDCWD, op->u.fs.path,
                             op->kind == MP_OP_RMDIR ? AT_REMOVEDIR : 0);
      break;
    case MP_OP_MKDIR:
      io_uring_prep_mkdirat(sqe, AT_FDCWD, op->u.fs.path, op->u.fs.mode);
      break;
    case MP_OP_SYMLINK:
      io_uring_prep_symlinkat(sqe, op->u.fs.path2, AT_FDCWD, op->u.fs.path);
      break;
    case MP_OP_TRUNCATE:
      io_uring_prep_rw(MP__IORING_OP_FTRUNCATE, sqe, op->handle, NULL, 0,
                       (uint64_t)op->u.fs.len);
      break;
    case MP_OP_SENDTO:
      io_uring_prep_sendmsg(sqe, op->handle, op->u.rw.buf,
                            MSG_NOSIGNAL | op->msgflags);
      break;
    case MP_OP_RECVFROM:
      io_uring_prep_recvmsg(sqe, op->handle, op->u.rw.buf, op->msgflags);
      break;
    case MP_OP_POLL:
      io_uring_prep_poll_add(sqe, op->handle,
                             op->msgflags ? POLLOUT : POLLIN);
      break;
    default:
      io_uring_prep_nop(sqe); /* keep the SQ consistent */
      io_uring_sqe_set_data64(sqe, TAG_IGNORE);
      return MP_EINVAL;
  }
  if (op->flags & MP__F_ASYNC) sqe->flags |= IOSQE_ASYNC;
  io_uring_sqe_set_data(sqe, op);
  return 0;
}

static void ur_cancel(struct mp_loop *loop, struct mp_op *op) {
  struct uring_state *s = loop->bdata;
  if (mp__sendfile_cancel(op)) return; /* its pool job ends it */
  if (op->kind == MP_OP_READFILE && !on_pool(s, op)) {
    rf_cancel(loop, op, 1);
    return;
  }
  if (on_pool(s, op)) {
    mp__pool_cancel(loop, op); /* on the pool: a running job finishes */
    return;
  }
  struct io_uring_sqe *sqe = get_sqe(loop);
  /* An op waiting for readiness: cancel the poll; its CQE completes the
   * op. A faulted op is unknown to the kernel and completes anyway. */
  io_uring_prep_cancel64(sqe, (uintptr_t)op | (op->flags & MP__F_POLL ?
                                               TAG_POLL : 0), 0);
  io_uring_sqe_set_data64(sqe, TAG_IGNORE);
}

/* --- READFILE: open, read, read as one linked chain ---------------------
 *
 * The open puts the file into a direct descriptor (a slot of the ring's
 * table, never a process descriptor: no fstat, no fcntl, nothing to
 * inherit), and two reads at the file's position follow it through that
 * slot, as the peer C program does. Each SQE's user_data is the op with
 * its step in bits 1-2 (TAG_RF); the op completes once every CQE of its
 * steps has arrived, so nothing the kernel uses is released before.
 * Slots are ours to pick (IORING_FILE_INDEX_ALLOC would pick one too,
 * but a linked read must name its slot when it is queued).
 *
 * The second read is hard-linked: it runs whatever the first returned (a
 * short read breaks a plain link). A read of 0 is the end; a FIFO, a
 * /proc file or a growing file reads on, one read at a time (the buffer
 * doubling). The file was opened non-blocking, so a FIFO never holds the
 * open; a read of nothing at all is followed by a poll and another read
 * (a FIFO with no writer yet reads 0); an EAGAIN (a device, or a
 * filesystem without non-blocking reads) sends the next reads to io-wq
 * (IOSQE_ASYNC), a second one waits for a poll first. At the end a
 * CLOSE of the slot is queued, unlinked: SQEs are issued in ring order
 * and a direct close never goes async, so the slot is free for any SQE
 * queued after it, at once. */
enum { RF_FIRST = 16384, RF_SECOND = 16384, RF_SLOTS = 1024,
       RF_CHAIN = 0, RF_READ = 1, RF_POLL = 2 };

/* Registers the slot table at the first READFILE: RF_SLOTS, fewer if
 * the descriptor limit (which the kernel applies to it) is lower. */
static int rf_table(struct mp_loop *loop, struct uring_state *s) {
  struct rlimit rl;
  if (s->rf_ready) return s->rf_ready > 0;
  int n = RF_SLOTS;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur / 2 < (rlim_t)n)
    n = (int)(rl.rlim_cur / 2);
  if (n < 8) {
    s->rf_ready = -1;
    return 0;
  }
  if (!(s->rf_free = mp_loop_malloc(loop, (size_t)n * sizeof(int))))
    return 0; /* out of memory: the pool this time */
  s->rf_ready = -1;
  if (io_uring_register_files_sparse(&s->ring, (unsigned)n) < 0) {
    free(s->rf_free);
    s->rf_free = NULL;
    return 0;
  }
  for (int i = 0; i < n; i++) s->rf_free[i] = n - 1 - i;
  s->rf_nfree = n;
  s->rf_ready = 1;
  return 1;
}

/* n SQEs in a row: a chain split by a submit would lose its links. */
static void rf_room(struct mp_loop *loop, unsigned n) {
  struct uring_state *s = loop->bdata;
  while (io_uring_sq_space_left(&s->ring) < n) submit_full(loop);
}

static void rf_sqe(struct io_uring_sqe *sqe, struct mp_op *op, unsigned tag,
                   unsigned flags) {
  struct mp__rf *rf = op->u.fs.buf;
  sqe->flags |= (uint8_t)flags;
  io_uring_sqe_set_data64(sqe, (uintptr_t)op | tag);
  rf->out |= (uint8_t)(1u << (tag >> 1));
  rf->pending++;
}

/* One more read (phase RF_READ) or readiness poll (RF_POLL). */
static int rf_next(struct mp_loop *loop, struct mp_op *op, int phase) {
  struct mp__rf *rf = op->u.fs.buf;
  if (phase == RF_READ && rf->cap - rf->len < RF_FIRST / 2) {
    size_t cap = rf->cap * 2;
    char *p = cap > rf->cap ? mp_loop_realloc(loop, rf->buf, cap) : NULL;
    if (!p) return MP_ENOMEM;
    rf->buf = p;
    rf->cap = cap;
  }
  size_t want = rf->cap - rf->len > 0x7ffff000 ? 0x7ffff000
                                               : rf->cap - rf->len;
  struct io_uring_sqe *sqe = get_sqe(loop);
  rf->phase = (uint8_t)phase;
  if (phase == RF_POLL) {
    io_uring_prep_poll_add(sqe, rf->slot, POLLIN);
    rf_sqe(sqe, op, 2, IOSQE_FIXED_FILE);
  } else {
    io_uring_prep_read(sqe, rf->slot, rf->buf + rf->len, (unsigned)want,
                       (uint64_t)-1);
    rf_sqe(sqe, op, 4, IOSQE_FIXED_FILE | (rf->async ? IOSQE_ASYNC : 0));
  }
  return 0;
}

static int rf_submit(struct mp_loop *loop, struct mp_op *op) {
  struct uring_state *s = loop->bdata;
  struct mp__rf *rf = op->u.fs.buf;
  struct io_uring_sqe *sqe;
  rf->slot = -1;
  rf->len = 0;
  rf->out = rf->pending = rf->async = rf->waited = 0;
  op->handle = MP_INVALID_HANDLE; /* an output (a pool's hand-back) */
  if (!rf_table(loop, s) || !s->rf_nfree)
    return mp__pool_submit(loop, op); /* no table, or every slot busy */
  if (!rf->buf || rf->cap < RF_FIRST + RF_SECOND) {
    /* (an op submitted again may hold a pool job's smaller buffer) */
    char *p = mp_loop_realloc(loop, rf->buf, RF_FIRST + RF_SECOND);
    if (!p) return MP_ENOMEM;
    rf->buf = p;
    rf->cap = RF_FIRST + RF_SECOND;
  }
  rf_room(loop, 3);
  rf->slot = s->rf_free[--s->rf_nfree];
  rf->phase = RF_CHAIN;
  rf->open = rf->r[0] = rf->r[1] = 0;
  sqe = io_uring_get_sqe(&s->ring);
  io_uring_prep_openat_direct(sqe, AT_FDCWD, op->u.fs.path,
                              O_RDONLY | O_NONBLOCK, 0, (unsigned)rf->slot);
  rf_sqe(sqe, op, 2, IOSQE_IO_LINK);
  sqe = io_uring_get_sqe(&s->ring);
  io_uring_prep_read(sqe, rf->slot, rf->buf, RF_FIRST, (uint64_t)-1);
  rf_sqe(sqe, op, 4, IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK);
  sqe = io_uring_get_sqe(&s->ring);
  io_uring_prep_read(sqe, rf->slot, rf->buf + RF_FIRST, RF_SECOND,
                     (uint64_t)-1);
  rf_sqe(sqe, op, 6, IOSQE_FIXED_FILE);
  return 0;
}

/* Asks the kernel to cancel every step still with it. A step queued
 * behind another in the chain is not found yet: rf_cqe asks again at
 * each CQE while the op is cancelled, and by the time a CQE is seen the
 * kernel has issued the step that follows it. */
static void rf_cancel(struct mp_loop *loop, struct mp_op *op, int first) {
  struct mp__rf *rf = op->u.fs.buf;
  struct io_uring_sqe *sqe;
  if (rf->slot < 0) {
    mp__pool_cancel(loop, op); /* on the pool: a running job finishes */
    return;
  }
  /* get_sqe may reap (a full SQ the kernel refuses), and the op may end
   * there (rf_finish: slot -1): its SQE is then a NOP, never a close of
   * slot -1, which liburing would encode as a close of descriptor 0. */
  for (unsigned step = 1; step <= 3; step++) {
    if (!(rf->out & (1u << step))) continue;
    sqe = get_sqe(loop);
    if (rf->slot < 0) io_uring_prep_nop(sqe);
    else io_uring_prep_cancel64(sqe, (uintptr_t)op | (step << 1), 0);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
  }
  /* A linked read not issued yet (its open completed in this very
   * submit; it runs later, as task work) is found by no cancel: with
   * the slot emptied it fails with EBADF when issued, rather than wait
   * on a silent FIFO or terminal. The slot stays ours (rf_finish). */
  if (first && rf->phase == RF_CHAIN) {
    sqe = get_sqe(loop);
    if (rf->slot < 0) io_uring_prep_nop(sqe);
    else io_uring_prep_close_direct(sqe, (unsigned)rf->slot);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
  }
}

/* The end: the slot is closed (queued) and free, the op completes. */
static void rf_finish(struct mp_loop *loop, struct mp_op *op, int64_t res) {
  struct uring_state *s = loop->bdata;
  struct mp__rf *rf = op->u.fs.buf;
  if (rf->open >= 0) {
    struct io_uring_sqe *sqe = get_sqe(loop);
    io_uring_prep_close_direct(sqe, (unsigned)rf->slot);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
    if (s->ring.features & IORING_FEAT_CQE_SKIP)
      sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  }
  s->rf_free[s->rf_nfree++] = rf->slot;
  rf->slot = -1;
  mp__op_complete(loop, op, res);
}

/* A read's result: restart codes leaked by an interrupted worker and
 * EINTR moved nothing, as EAGAIN. */
static int64_t rf_res(struct mp_op *op, int res) {
  if (res >= 0) return res;
  if (res <= -512 && res >= -514)
    return op->flags & MP__F_CANCEL ? MP_ECANCELED : MP_EAGAIN;
  int64_t r = mp_err_from_errno(-res);
  return r == MP_EINTR ? MP_EAGAIN : r;
}

static void rf_cqe(struct mp_loop *loop, struct mp_op *op, unsigned step,
                   int res) {
  struct mp__rf *rf = op->u.fs.buf;
  int64_t r = rf_res(op, res), last, err = 0;
  rf->out &= (uint8_t)~(1u << step);
  if (rf->phase == RF_CHAIN && step == 1)
    rf->open = r == MP_EAGAIN && res != -EAGAIN ? MP_EINTR : r;
  else if (step == 3) rf->r[1] = r;
  else rf->r[0] = r;
  if (--rf->pending) {
    if (op->flags & MP__F_CANCEL) rf_cancel(loop, op, 0);
    return;
  }
  if (rf->phase == RF_CHAIN) {
    if (rf->open < 0) { /* the reads were cancelled by the link */
      rf_finish(loop, op, rf->open);
      return;
    }
    /* both reads' bytes, the second's after the first's */
    int64_t r1 = rf->r[0], r2 = rf->r[1];
    rf->len = r1 > 0 ? (size_t)r1 : 0;
    if (r2 > 0) {
      if (rf->len != RF_FIRST)
        memmove(rf->buf + rf->len, rf->buf + RF_FIRST, (size_t)r2);
      rf->len += (size_t)r2;
    }
    err = r1 < 0 && r1 != MP_EAGAIN ? r1 : r2 < 0 && r2 != MP_EAGAIN ? r2 : 0;
    last = r2;
  } else if (rf->phase == RF_POLL) {
    err = r < 0 && r != MP_EAGAIN ? r : 0;
    last = MP_EAGAIN; /* ready: read again */
    if (!err && !(op->flags & MP__F_CANCEL)) err = rf_next(loop, op, RF_READ);
    if (err || (op->flags & MP__F_CANCEL))
      rf_finish(loop, op, err ? err : MP_ECANCELED);
    return;
  } else {
    if (r > 0) rf->len += (size_t)r;
    err = r < 0 && r != MP_EAGAIN ? r : 0;
    last = r;
  }
  if (!err && last == 0 && rf->len == 0 && !rf->waited &&
      !(op->flags & MP__F_CANCEL)) {
    /* Nothing at all: an empty file, or a FIFO no writer has opened yet,
     * which reads 0 when non-blocking but polls as not ready until a
     * writer comes (as fs.open's file waits): poll once, read again. */
    rf->waited = 1;
    err = rf_next(loop, op, RF_POLL);
  } else if (!err && last == 0) {
    rf_finish(loop, op, (int64_t)rf->len); /* the end, even if cancelled */
    return;
  } else if (!err && (op->flags & MP__F_CANCEL)) {
    err = MP_ECANCELED;
  } else if (!err && last == MP_EAGAIN) {
    /* to io-wq first; then, told again, wait for readiness */
    int polled = rf->async;
    rf->async = 1; /* (every read from now on goes to io-wq) */
    err = rf_next(loop, op, polled ? RF_POLL : RF_READ);
  } else if (!err) {
    err = rf_next(loop, op, RF_READ);
  }
  if (err && (op->flags & MP__F_CANCEL)) err = MP_ECANCELED; /* (EBADF) */
  if (err) rf_finish(loop, op, err);
}

/* The kernel (or the fault injector) answered EINTR or EAGAIN: nothing was
 * transferred, so socket and file IO is started again, after a readiness
 * poll for EAGAIN (a non-blocking pipe or tty). A cancelled op ends. */
static void complete(struct mp_loop *loop, struct mp_op *op, int res) {
  /* an io-wq worker interrupted by a cancel may leak the kernel's internal
   * restart codes (-ERESTARTSYS .. -ERESTARTNOHAND); unasked, an EINTR */
  if (res <= -512 && res >= -514)
    res = op->flags & MP__F_CANCEL ? MP_ECANCELED : MP_EINTR;
  /* a connect is never retried: a second one answers EALREADY/EISCONN */
  int again = res == MP_EAGAIN && op->kind != MP_OP_CONNECT;
  int intr = res == MP_EINTR && op->kind != MP_OP_CONNECT;
  if ((intr || again) && is_io(op->kind)) {
    if (op->flags & MP__F_CANCEL) {
      res = MP_ECANCELED;
    } else if (again && op->kind == MP_OP_READ && op->u.rw.off >= 0 &&
               !(op->flags & MP__F_ASYNC)) {
      /* A file (positional): polling it says ready at once. A file kept
       * non-blocking (lfile.c) on a filesystem without non-blocking
       * reads answers EAGAIN: io-wq reads it blocking. */
      op->flags |= MP__F_ASYNC;
      if ((res = ur_submit(loop, op)) == 0) return;
    } else if (again) {
      int in = op->kind == MP_OP_READ || op->kind == MP_OP_RECV ||
               op->kind == MP_OP_ACCEPT || op->kind == MP_OP_RECVFROM;
      struct io_uring_sqe *sqe = get_sqe(loop);
      io_uring_prep_poll_add(sqe, op->handle, in ? POLLIN : POLLOUT);
      io_uring_sqe_set_data64(sqe, (uintptr_t)op | TAG_POLL);
      op->flags |= MP__F_POLL;
      return;
    } else if ((res = ur_submit(loop, op)) == 0) {
      return;
    }
  }
  op->flags &= (uint8_t)~MP__F_ASYNC;
  if (op->kind == MP_OP_STAT) mp__fs_complete(op, res); /* statx: portable */
  if (op->kind == MP_OP_POLL && res > 0)
    res = res & POLLNVAL ? MP_EBADF : 0; /* the event mask: ready */
  mp__op_complete(loop, op, res);
}

/* The readiness poll after EAGAIN finished: try the op again (a poll
 * that failed ends the op with its error rather than poll again). */
static void poll_done(struct mp_loop *loop, struct mp_op *op, int res) {
  int r;
  op->flags &= (uint8_t)~MP__F_POLL;
  if (op->flags & MP__F_CANCEL) r = MP_ECANCELED;
  else if (res < 0 && !(res <= -512 && res >= -514)) r = res;
  else r = ur_submit(loop, op); /* ready, or a poll's restart code leaked
                                   by an interrupted worker: try again */
  if (r < 0) {
    op->flags &= (uint8_t)~MP__F_ASYNC;
    mp__op_complete(loop, op, r);
  }
}

/* A CQE's result as an MP_E* code (the kernel's restart codes, which
 * complete() handles, pass through). */
static int cqe_res(int res) {
  return res >= 0 || (res <= -512 && res >= -514)
             ? res : mp_err_from_errno(-res);
}

/* The oldest CQE not consumed, or NULL (no syscall, unlike
 * io_uring_peek_cqe with task work pending). */
static struct io_uring_cqe *next_cqe(struct io_uring *ring) {
  unsigned head;
  struct io_uring_cqe *cqe;
  io_uring_for_each_cqe(ring, head, cqe) return cqe;
  return NULL;
}

static void reap(struct mp_loop *loop) {
  struct uring_state *s = loop->bdata;
  struct io_uring_cqe *cqe;
  struct mp__queue faulted = s->fault.q;
  struct mp_op *op;
  s->reaping++;
  s->fault.q.head = s->fault.q.tail = NULL;
  while ((op = mp__queue_pop(&faulted))) complete(loop, op, (int)op->result);
  for (;;) {
    /* Each CQE is consumed before it is handled: handling one may fill
     * the SQ and reap inside this reap (get_sqe), which must not see it
     * again. */
    while ((cqe = next_cqe(&s->ring))) {
      uint64_t ud = cqe->user_data;
      int res = cqe->res;
      io_uring_cq_advance(&s->ring, 1);
      if (ud == TAG_IGNORE || ud == LIBURING_UDATA_TIMEOUT) continue;
      if (ud & TAG_RF)
        rf_cqe(loop, (struct mp_op *)(uintptr_t)(ud & ~(uint64_t)TAG_RF),
               (unsigned)(ud & TAG_RF) >> 1, res);
      else if (ud & TAG_POLL)
        poll_done(loop, (struct mp_op *)(uintptr_t)(ud & ~(uint64_t)TAG_POLL),
                  cqe_res(res));
      else
        complete(loop, (struct mp_op *)(uintptr_t)ud, cqe_res(res));
    }
    /* With NODROP, overflowed CQEs wait in the kernel until asked for. */
    if (!io_uring_cq_has_overflow(&s->ring)) break;
    s->overflows++;
    io_uring_get_events(&s->ring);
  }
  s->reaping--;
}

static void ur_wait(struct mp_loop *loop, int64_t timeout_ns) {
  struct uring_state *s = loop->bdata;
  if (s->fault.q.head) timeout_ns = 0; /* faulted ops complete now */
  /* Before a sleep, reset the eventfd, then look (GETEVENTS: with
   * DEFER_TASKRUN completions are only posted when asked): whatever
   * arrives after the look signals it again, so the sleep cannot miss
   * it. A turn that does not sleep leaves the eventfd alone (one read
   * less per turn); ur_arm resets it before the host sleeps. */
  if (timeout_ns != 0) mp__wakefd_drain(s->wakefd);
  check_enter(s, io_uring_submit_and_get_events(&s->ring));
  if (timeout_ns != 0 && !io_uring_cq_ready(&s->ring) &&
      !io_uring_cq_has_overflow(&s->ring) &&
      !atomic_load(&loop->wake_pending)) {
    mp__wakefd_wait(s->wakefd, timeout_ns);
    check_enter(s, io_uring_submit_and_get_events(&s->ring));
  }
  reap(loop);
}

static void ur_flush(struct mp_loop *loop) {
  struct uring_state *s = loop->bdata;
  if (io_uring_sq_ready(&s->ring)) check_enter(s, io_uring_submit(&s->ring));
}

/* Resets the eventfd, then looks, as before a sleep in ur_wait; what the
 * look finds, and a post whose signal the reset took, signal it again. */
static void ur_arm(struct mp_loop *loop) {
  struct uring_state *s = loop->bdata;
  mp__wakefd_drain(s->wakefd);
  check_enter(s, io_uring_submit_and_get_events(&s->ring));
  reap(loop);
  ur_flush(loop); /* retries reap queued (EAGAIN polls, EINTR resubmits) */
  if (loop->done.head || atomic_load(&loop->wake_pending))
    mp__wakefd_signal(s->wakefd);
}

static void ur_wake(struct mp_loop *loop) {
  mp__wakefd_signal(((struct uring_state *)loop->bdata)->wakefd);
}

static void ur_unwake(struct mp_loop *loop) {
  mp__wakefd_drain(((struct uring_state *)loop->bdata)->wakefd);
}

/* The ring's own descriptor does not turn readable for deferred work
 * (ur_init): hosts sleep on the eventfd. */
static mp_handle_t ur_fd(struct mp_loop *loop) {
  return ((struct uring_state *)loop->bdata)->wakefd;
}

const struct mp_backend mp__backend_uring = {
  .name = "io_uring", .init = ur_init, .close = ur_close,
  .submit = ur_submit, .cancel = ur_cancel, .wait = ur_wait,
  .flush = ur_flush, .arm = ur_arm, .wake = ur_wake, .unwake = ur_unwake,
  .fd = ur_fd,
};
