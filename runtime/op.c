/* op.c: struct mp_op: allocate, prepare, submit, cancel, release. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "mp_internal.h"

#ifdef _WIN32
#define malloc_usable_size _msize
#endif

enum { BLOCK_OPS = 128 };

struct mp_op *mp_op_new(struct mp_loop *loop, mp_op_cb cb, void *data) {
  struct mp_op *op = loop->free_ops;
  if (!op) {
    /* One block of records; the first slot links the block list. */
    struct mp_op *block = mp_loop_malloc(loop, BLOCK_OPS * sizeof *block);
    if (!block) return NULL;
    block[0].next = loop->blocks;
    loop->blocks = block;
    for (int i = BLOCK_OPS - 1; i >= 1; i--) {
      block[i].next = loop->free_ops;
      loop->free_ops = &block[i];
    }
    op = loop->free_ops;
  }
  loop->free_ops = op->next;
  loop->nlive++;
  memset(op, 0, sizeof *op);
  op->cb = cb;
  op->data = data;
  op->loop = loop;
  op->handle = MP_INVALID_HANDLE;
  op->state = MP__IDLE;
  return op;
}

void mp_op_init(struct mp_op *op, mp_op_cb cb, void *data) {
  memset(op, 0, sizeof *op);
  op->cb = cb;
  op->data = data;
  op->handle = MP_INVALID_HANDLE;
  op->kind = MP_OP_POST;
  op->state = MP__IDLE;
  op->flags = MP__F_EXTERNAL;
}

/* Frees entry i of the quarantine after checking that its poison is
 * intact. */
static void quarantine_free(struct mp__quarantine *q, unsigned i) {
  unsigned char *p = q->p[i];
  if (!p) return;
  size_t k = 0, n = q->len[i], head = n < 64 ? n : 64;
  while (k < head && p[k] == MP__POISON) k++;
  /* the head is poison, so the rest is iff it equals the bytes 64 before
   * it: one memcmp (a byte loop is slow under coverage instrumentation) */
  if (k == head && (n == head || !memcmp(p + head, p, n - head))) k = n;
  for (; k < n; k++) {
    if (p[k] == MP__POISON) continue;
    fprintf(stderr, "moonport: byte %zu of the %zu-byte buffer of a "
            "released op (kind %d) changed after release: written under "
            "the kernel\n", k, q->len[i], q->kind[i]);
    abort();
  }
  free(p);
  q->p[i] = NULL;
}

void mp__quarantine_flush(struct mp_loop *loop) {
  for (unsigned i = 0; i < MP__QUARANTINE; i++)
    quarantine_free(loop->quarantine, i);
}

/* Debug: op-owned memory must not be under another op; it is poisoned
 * and kept (if small) so a late write into it is caught. */
static void quarantine_put(struct mp_loop *loop, unsigned char *p, int kind) {
  struct mp__quarantine *q = loop->quarantine;
  size_t len = malloc_usable_size(p);
  if (mp_loop_buffer_inflight(loop, p, len)) {
    fprintf(stderr, "moonport: mp_op_release (kind %d): its buffer is "
            "still in flight in another op\n", kind);
    abort();
  }
  memset(p, MP__POISON, len);
  if (len > (1u << 20)) {
    free(p);
    return;
  }
  unsigned i = q->next++ % MP__QUARANTINE;
  quarantine_free(q, i);
  q->p[i] = p;
  q->len[i] = len;
  q->kind[i] = kind;
}

/* Frees what the op owns. Memory with a destructor of its own may not
 * come from malloc (its size is unknown) and its destructor may still
 * read it (a reference count, a link): the debug checks only ask that
 * its first byte is under no other op, and neither poison nor keep it.
 * An op in flight is a work job calling mp_op_own on a pool thread: the
 * debug checks read the loop, which belongs to its thread, so they are
 * skipped then. */
static void owned_drop(struct mp_op *op) {
  struct mp_loop *loop = op->loop;
  void *p = op->owned;
  void (*fn)(void *) = op->owned_free;
  op->owned = NULL;
  op->owned_free = NULL;
  if (!p) return;
  if (!loop || !loop->quarantine || op->state == MP__INFLIGHT) {
    if (fn) fn(p); else free(p);
    return;
  }
  if (!fn) {
    quarantine_put(loop, p, op->kind);
    return;
  }
  if (mp_loop_buffer_inflight(loop, p, 1)) {
    fprintf(stderr, "moonport: mp_op_release (kind %d): its buffer is "
            "still in flight in another op\n", op->kind);
    abort();
  }
  fn(p);
}

void mp_op_own(struct mp_op *op, void *p, void (*free_fn)(void *)) {
  if (p != op->owned) owned_drop(op);
  op->owned = p;
  op->owned_free = free_fn;
}

static void priv_drop(struct mp_op *op, void *p) {
  /* READDIR's head points at the names its pool job collected */
  if (p && op->kind == MP_OP_READDIR) free(*(char **)p);
  if (p && op->kind == MP_OP_READFILE) free(((struct mp__rf *)p)->buf);
  if (p && op->loop && op->loop->quarantine)
    quarantine_put(op->loop, p, op->kind);
  else
    free(p);
}

void mp_op_release(struct mp_op *op) {
  if (op->state != MP__IDLE) {
    /* Freeing an op the kernel may still write to is never recoverable. */
    fprintf(stderr, "moonport: mp_op_release of an op in flight (kind %d)\n",
            op->kind);
    abort();
  }
  owned_drop(op);
  priv_drop(op, op->priv);
  op->priv = NULL;
  if (op->flags & MP__F_EXTERNAL) return;
  struct mp_loop *loop = op->loop;
  loop->nlive--;
  op->state = MP__FREE;
  op->next = loop->free_ops;
  loop->free_ops = op;
}

static void inflight_add(struct mp_loop *loop, struct mp_op *op) {
  op->prev = NULL;
  op->next = loop->inflight;
  if (loop->inflight) loop->inflight->prev = op;
  loop->inflight = op;
  loop->ninflight++;
  op->state = MP__INFLIGHT;
}

static void inflight_unlink(struct mp_loop *loop, struct mp_op *op) {
  if (op->prev) op->prev->next = op->next; else loop->inflight = op->next;
  if (op->next) op->next->prev = op->prev;
  op->next = op->prev = NULL;
}

int mp_op_submit(struct mp_op *op) {
  struct mp_loop *loop = op->loop;
  int r = 0;
  if (op->state != MP__IDLE || op->kind == MP_OP_POST) return MP_EINVAL;
  op->flags &= (uint8_t)~(MP__F_CANCEL | MP__F_BACKEND);
  op->result = 0;
  inflight_add(loop, op);
  switch (op->kind) {
    case MP_OP_NOP:
      mp__op_complete(loop, op, 0);
      break;
    case MP_OP_TIMER:
      op->u.timer.due += loop->now; /* prep stored the relative timeout */
      r = mp__timer_start(loop, op);
      break;
    case MP_OP_WORK: case MP_OP_GETADDRINFO:
      r = mp__pool_submit(loop, op);
      break;
    default:
      op->flags |= MP__F_BACKEND;
      r = loop->backend->submit(loop, op);
      break;
  }
  if (r < 0) {
    inflight_unlink(loop, op);
    loop->ninflight--;
    op->state = MP__IDLE;
  }
  return r;
}

void mp_op_protect(struct mp_op *op) { op->flags |= MP__F_PROTECT; }

int mp_op_protected(const struct mp_op *op) {
  return (op->flags & MP__F_PROTECT) != 0;
}

void mp_op_cancel(struct mp_op *op) {
  struct mp_loop *loop = op->loop;
  if (op->state != MP__INFLIGHT || (op->flags & MP__F_CANCEL)) return;
  op->flags |= MP__F_CANCEL;
  switch (op->kind) {
    case MP_OP_TIMER:
      if (mp__timer_stop(loop, op)) mp__op_complete(loop, op, MP_ECANCELED);
      break;
    case MP_OP_WORK: case MP_OP_GETADDRINFO:
      mp__pool_cancel(loop, op);
      break;
    case MP_OP_NOP:
      break; /* already complete */
    default:
      loop->backend->cancel(loop, op);
      break;
  }
}

int mp_op_inflight(const struct mp_op *op) {
  return op->state == MP__INFLIGHT || op->state == MP__DONE;
}

struct mp_loop *mp_op_loop(const struct mp_op *op) { return op->loop; }

/* Called by backends, timers and the pool: the op leaves the in-flight list
 * and waits for dispatch. It still counts in ninflight until its callback
 * has run, so the loop stays alive for it. */
void mp__op_complete(struct mp_loop *loop, struct mp_op *op, int64_t res) {
  if (op->state != MP__INFLIGHT) {
    /* A second completion, or one for a released record: the op's memory
     * may already belong to someone else. */
    fprintf(stderr, "moonport: completion of an op not in flight (kind %d, "
            "state %d)\n", op->kind, op->state);
    abort();
  }
  inflight_unlink(loop, op);
  op->result = res;
  op->state = MP__DONE;
  mp__queue_push(&loop->done, op);
}

int mp__queue_remove(struct mp__queue *q, struct mp_op *op) {
  struct mp_op *prev = NULL;
  for (struct mp_op *it = q->head; it; prev = it, it = it->link) {
    if (it != op) continue;
    if (prev) prev->link = it->link; else q->head = it->link;
    if (q->tail == it) q->tail = prev;
    it->link = NULL;
    return 1;
  }
  return 0;
}

void mp_op_prep_nop(struct mp_op *op) { op->kind = MP_OP_NOP; }

void mp_op_prep_timer(struct mp_op *op, int64_t timeout_ns) {
  op->kind = MP_OP_TIMER;
  op->u.timer.due = timeout_ns < 0 ? 0 : timeout_ns;
}

void mp_op_prep_work(struct mp_op *op, mp_work_fn fn, void *arg) {
  op->kind = MP_OP_WORK;
  op->u.work.fn = fn;
  op->u.work.arg = arg;
}

static void prep_rw(struct mp_op *op, int kind, mp_handle_t h,
                    const void *buf, size_t len, int64_t off) {
  op->kind = (uint8_t)kind;
  op->handle = h;
  op->u.rw.buf = (void *)buf;
  op->u.rw.len = len;
  op->u.rw.off = off;
}

void mp_op_prep_read(struct mp_op *op, mp_handle_t h, void *buf, size_t len,
                     int64_t off) {
  prep_rw(op, MP_OP_READ, h, buf, len, off);
}

void mp_op_prep_write(struct mp_op *op, mp_handle_t h, const void *buf,
                      size_t len, int64_t off) {
  prep_rw(op, MP_OP_WRITE, h, buf, len, off);
}

void mp_op_prep_recv(struct mp_op *op, mp_handle_t h, void *buf, size_t len) {
  prep_rw(op, MP_OP_RECV, h, buf, len, -1);
#ifndef _WIN32 /* (IOCP's private flags use the bit) */
  op->flags &= (uint8_t)~MP__F_POLLFIRST;
#endif
}

void mp_op_poll_first(struct mp_op *op) {
#ifndef _WIN32
  if (op->kind == MP_OP_RECV && op->state == MP__IDLE)
    op->flags |= MP__F_POLLFIRST;
#else
  (void)op;
#endif
}

void mp_op_prep_send(struct mp_op *op, mp_handle_t h, const void *buf,
                     size_t len) {
  prep_rw(op, MP_OP_SEND, h, buf, len, -1);
}

void mp_op_prep_accept(struct mp_op *op, mp_handle_t h) {
  op->kind = MP_OP_ACCEPT;
  op->handle = h;
  op->u.sa.addr = NULL; /* no shared listener (mp_op_prep_accept_shared) */
}

void *mp__op_priv(struct mp_op *op, size_t size) {
  void *p = mp_loop_malloc(op->loop, size);
  if (!p) return NULL;
  priv_drop(op, op->priv);
  return op->priv = p;
}

void mp_op_prep_close(struct mp_op *op, mp_handle_t h) {
  op->kind = MP_OP_CLOSE;
  op->handle = h;
}

void mp_op_prep_poll(struct mp_op *op, mp_handle_t h) {
  op->kind = MP_OP_POLL;
  op->handle = h;
  op->msgflags = 0;
}

void mp_op_prep_poll_out(struct mp_op *op, mp_handle_t h) {
  mp_op_prep_poll(op, h);
  op->msgflags = 1; /* the backends read it as "writable" */
}

/* Path ops keep [head bytes][path\0][path2\0] in op->priv, so the
 * strings outlive the caller's (a Lua string may be collected while the
 * kernel still reads it), and op->owned stays the submitter's. */
static int prep_path(struct mp_op *op, int kind, mp_handle_t h, size_t head,
                     const char *path, const char *path2, size_t extra) {
  size_t n1 = path ? strlen(path) + 1 : 0, n2 = path2 ? strlen(path2) + 1 : 0;
  head = (head + 15) & ~(size_t)15;
  char *m = mp__op_priv(op, head + n1 + n2 + extra + 1);
  if (!m) return MP_ENOMEM;
  memset(&op->u, 0, sizeof op->u);
  op->kind = (uint8_t)kind;
  op->handle = h;
  op->u.fs.buf = head ? m : NULL;
  if (path) op->u.fs.path = memcpy(m + head, path, n1);
  if (path2) op->u.fs.path2 = memcpy(m + head + n1, path2, n2);
  return 0;
}

int mp_op_prep_open(struct mp_op *op, const char *path, int mpflags,
                    uint32_t mode) {
  int r = prep_path(op, MP_OP_OPEN, MP_INVALID_HANDLE, 0, path, NULL, 0);
  if (r < 0) return r;
  op->u.fs.flags = mpflags;
  op->u.fs.mode = mode;
  mp__fs_translate(op);
  return 0;
}

/* STAT's private memory: the struct mp_stat, then the platform's scratch
 * (io_uring's struct statx), then the path. */
static int prep_stat(struct mp_op *op, mp_handle_t h, const char *path,
                     int flags) {
  int r = prep_path(op, MP_OP_STAT, h, MP__STAT_HEAD, path, NULL, 0);
  if (r < 0) return r;
  op->u.fs.flags = flags;
  mp__fs_translate(op);
  return 0;
}

int mp_op_prep_stat(struct mp_op *op, const char *path, int flags) {
  return prep_stat(op, MP_INVALID_HANDLE, path, flags);
}

int mp_op_prep_fstat(struct mp_op *op, mp_handle_t h) {
  return prep_stat(op, h, "", 0);
}

const struct mp_stat *mp_op_stat(const struct mp_op *op) {
  return op->u.fs.buf;
}

void mp_op_prep_fsync(struct mp_op *op, mp_handle_t h, int datasync) {
  memset(&op->u, 0, sizeof op->u);
  op->kind = MP_OP_FSYNC;
  op->handle = h;
  op->u.fs.flags = datasync;
}

int mp_op_prep_rename(struct mp_op *op, const char *from, const char *to) {
  return prep_path(op, MP_OP_RENAME, MP_INVALID_HANDLE, 0, from, to, 0);
}

int mp_op_prep_unlink(struct mp_op *op, const char *path) {
  return prep_path(op, MP_OP_UNLINK, MP_INVALID_HANDLE, 0, path, NULL, 0);
}

int mp_op_prep_rmdir(struct mp_op *op, const char *path) {
  return prep_path(op, MP_OP_RMDIR, MP_INVALID_HANDLE, 0, path, NULL, 0);
}

int mp_op_prep_mkdir(struct mp_op *op, const char *path, uint32_t mode) {
  int r = prep_path(op, MP_OP_MKDIR, MP_INVALID_HANDLE, 0, path, NULL, 0);
  op->u.fs.mode = mode;
  return r;
}

/* READDIR's priv is [char *names][path]: the pool job stores the names
 * it collects (NUL-terminated, one after the other, u.fs.len bytes) in the
 * head and in u.fs.buf; priv_drop frees both. */
int mp_op_prep_readdir(struct mp_op *op, const char *path) {
  int r = prep_path(op, MP_OP_READDIR, MP_INVALID_HANDLE, sizeof(char *),
                    path, NULL, 0);
  if (r < 0) return r;
  *(char **)op->priv = NULL;
  return 0;
}

const char *mp_op_readdir_next(const struct mp_op *op, const char *prev) {
  const char *names = op->u.fs.buf;
  if (op->kind != MP_OP_READDIR || op->result <= 0 || !op->priv ||
      names != *(char **)op->priv)
    return NULL;
  const char *p = prev ? prev + strlen(prev) + 1 : names;
  return p < names + op->u.fs.len ? p : NULL;
}

int mp_op_prep_writefile(struct mp_op *op, const char *path,
                         const void *data, size_t len) {
  int r = prep_path(op, MP_OP_WRITEFILE, MP_INVALID_HANDLE, 0, path, NULL,
                    len);
  if (r < 0) return r;
  char *d = (char *)op->priv + strlen(path) + 1;
  if (len) memcpy(d, data, len);
  op->u.fs.buf = d;
  op->u.fs.len = len;
  return 0;
}

/* READFILE's priv: [struct mp__rf][path]; the buffer comes at submit
 * (io_uring) or in the pool's job, which knows the size. */
int mp_op_prep_readfile(struct mp_op *op, const char *path) {
  int r = prep_path(op, MP_OP_READFILE, MP_INVALID_HANDLE,
                    sizeof(struct mp__rf), path, NULL, 0);
  if (r < 0) return r;
  struct mp__rf *rf = op->u.fs.buf;
  memset(rf, 0, sizeof *rf);
  rf->slot = -1;
  return 0;
}

/* The pool's READFILE body after the open, for both platforms: reads
 * with rd(h, buf, len, off) (bytes, 0 at the end, < 0 an MP_E* code)
 * into a buffer of size + 1 bytes (a read of 0 proves the end; 4096 when
 * the size says nothing, as /proc's), doubling it while the file grows.
 * The result is the length, or an error with nothing kept. */
int64_t mp__readfile_all(struct mp__rf *rf, uint64_t size,
                         int64_t (*rd)(void *h, void *buf, size_t len,
                                       int64_t off),
                         void *h) {
  size_t cap = size > 0 && size < SIZE_MAX / 2 ? (size_t)size + 1 : 4096;
  size_t len = 0;
  int64_t e = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      e = MP_ENOMEM;
      break;
    }
    if (len == cap) { /* it grew, or its size said 0 */
      char *q = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
      if (!q) {
        e = MP_ENOMEM;
        break;
      }
      buf = q;
      cap *= 2;
    }
    size_t want = cap - len > 0x7ffff000 ? 0x7ffff000 : cap - len;
    int64_t n = rd(h, buf + len, want, (int64_t)len);
    if (n <= 0) {
      e = n;
      break;
    }
    len += (size_t)n;
  }
  if (e < 0) {
    free(buf);
    return e;
  }
  rf->buf = buf;
  rf->cap = cap;
  rf->len = len;
  return (int64_t)len;
}

const char *mp_op_readfile_data(const struct mp_op *op) {
  const struct mp__rf *rf = op->u.fs.buf;
  if (op->kind != MP_OP_READFILE || op->result < 0 || !op->priv ||
      (void *)rf != op->priv)
    return NULL;
  return rf->buf ? rf->buf : "";
}

/* --- more paths and files (issue 14) --------------------------------------
 * READLINK and REALPATH keep [MP__PATH_MAX result][path] in op->priv;
 * MKDTEMP its template, which the job fills in place; UTIME the two times
 * ahead of the path. */

int mp_op_prep_chmod(struct mp_op *op, const char *path, uint32_t mode) {
  int r = prep_path(op, MP_OP_CHMOD, MP_INVALID_HANDLE, 0, path, NULL, 0);
  op->u.fs.mode = mode;
  return r;
}

int mp_op_prep_chown(struct mp_op *op, const char *path, uint32_t uid,
                     uint32_t gid) {
  int r = prep_path(op, MP_OP_CHOWN, MP_INVALID_HANDLE, 0, path, NULL, 0);
  op->u.fs.mode = uid;
  op->u.fs.flags = (int)gid;
  return r;
}

int mp_op_prep_utime(struct mp_op *op, const char *path, int64_t atime,
                     int64_t mtime) {
  int r = prep_path(op, MP_OP_UTIME, MP_INVALID_HANDLE, 2 * sizeof(int64_t),
                    path, NULL, 0);
  if (r < 0) return r;
  int64_t *t = op->u.fs.buf;
  t[0] = atime;
  t[1] = mtime;
  return 0;
}

int mp_op_prep_symlink(struct mp_op *op, const char *target,
                       const char *path) {
  /* path first, as every path op names the file it makes or changes */
  return prep_path(op, MP_OP_SYMLINK, MP_INVALID_HANDLE, 0, path, target, 0);
}

int mp_op_prep_readlink(struct mp_op *op, const char *path) {
  return prep_path(op, MP_OP_READLINK, MP_INVALID_HANDLE, MP__PATH_MAX,
                   path, NULL, 0);
}

int mp_op_prep_realpath(struct mp_op *op, const char *path) {
  return prep_path(op, MP_OP_REALPATH, MP_INVALID_HANDLE, MP__PATH_MAX,
                   path, NULL, 0);
}

int mp_op_prep_mkdtemp(struct mp_op *op, const char *prefix) {
  char dflt[MP__PATH_MAX];
  if (!prefix) {
    snprintf(dflt, sizeof dflt, "%s/moonport-", mp__fs_tmpdir());
    prefix = dflt;
  }
  int r = prep_path(op, MP_OP_MKDTEMP, MP_INVALID_HANDLE, 0, prefix, NULL,
                    sizeof MP__TEMPLATE);
  if (r < 0) return r;
  strcat((char *)op->u.fs.path, MP__TEMPLATE);
  op->u.fs.buf = (void *)op->u.fs.path;
  return 0;
}

const char *mp_op_path_result(const struct mp_op *op) {
  if ((op->kind != MP_OP_READLINK && op->kind != MP_OP_REALPATH &&
       op->kind != MP_OP_MKDTEMP) || op->result < 0 || !op->priv)
    return NULL;
  return op->u.fs.buf;
}

int mp_op_prep_truncate(struct mp_op *op, const char *path, mp_handle_t h,
                        int64_t size) {
  int r = prep_path(op, MP_OP_TRUNCATE, path ? MP_INVALID_HANDLE : h, 0,
                    path, NULL, 0);
  op->u.fs.len = size < 0 ? 0 : (size_t)size;
  if (r == 0 && size < 0) r = MP_EINVAL;
  return r;
}

/* TMPFILE's path is the directory, with room for a template after it
 * where the system has no unnamed files. */
int mp_op_prep_tmpfile(struct mp_op *op) {
  int r = prep_path(op, MP_OP_TMPFILE, MP_INVALID_HANDLE, 0,
                    mp__fs_tmpdir(), NULL, sizeof "/moonport-" MP__TEMPLATE);
  return r;
}

int mp_op_prep_copyfile(struct mp_op *op, const char *from, const char *to) {
  return prep_path(op, MP_OP_COPYFILE, MP_INVALID_HANDLE, 0, from, to, 0);
}

void mp_op_prep_sendfile(struct mp_op *op, mp_handle_t h, mp_handle_t from,
                         int64_t off, size_t len) {
  op->kind = MP_OP_SENDFILE;
  op->handle = h;
  op->u.sf.from = from;
  op->u.sf.off = off;
  op->u.sf.len = len;
  op->u.sf.warm = NULL;
  op->u.sf.warmed = 0;
}
