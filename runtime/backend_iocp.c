/* backend_iocp.c: Windows I/O completion ports.
 *
 * The model moonport is named for: an op's OVERLAPPED (op->ov) is handed
 * to the kernel and comes back from GetQueuedCompletionStatusEx, and its
 * address leads to the record (container_of). Only that completion ends
 * the op: cancel is CancelIoEx, whose victim still completes (aborted, or
 * with its real result if it had finished), so nothing is freed under
 * the kernel.
 *
 * A handle is associated with the port by its first op (associating again
 * fails harmlessly; handles have no per-loop object to remember it on, so
 * every op asks). Sockets are put in FILE_SKIP_COMPLETION_PORT_ON_SUCCESS
 * mode then: an op that succeeds at once is completed by submit, with no
 * packet (the mode of each handle is remembered in a table, since a reused
 * handle value is associated afresh). Handles that cannot be overlapped
 * (consoles, inherited synchronous pipes and files) and the file and path
 * ops run on the threadpool. POLL waits on a process or event handle in
 * the loop's waiter threads, which post the completion; on a socket it
 * is a zero-byte WSARecv. Wakes (posts, pool results) are
 * PostQueuedCompletionStatus packets; timers are the GQCSEx timeout. */
#include "mp_internal.h"
#include "mp_os.h"

#include <mswsock.h>
#include <stdio.h>
#include <string.h>
#include <ws2tcpip.h>

_Static_assert(sizeof(((struct mp_op *)0)->ov) == sizeof(OVERLAPPED),
               "op->ov is an OVERLAPPED");

/* Completion keys: every handle gets KEY_IO (the OVERLAPPED names the
 * op); the loop's own packets carry the others (and MP__KEY_SHARE, 3, a
 * shared listener's: share_win.c). */
enum { KEY_IO = 0, KEY_WAKE = 1, KEY_POLL = 2 };

/* Op flags private to this backend (mp_internal.h's end at 8; 16 is
 * io_uring's MP__F_POLL, unused here). */
enum {
  F_POOL = 16,    /* running on the threadpool */
  F_CLOSED = 32,  /* its handle was closed by an MP_OP_CLOSE meanwhile */
  F_ADVANCE = 64, /* at the position of an overlapped file (which the
                     kernel does not keep for it): a read moves it by
                     the count, an append to the end, as on Unix */
  F_WAIT = 128    /* POLL: in a waiter thread's table (ov.ev) */
};

/* Handle modes remembered at association (a small open-addressing set). */
enum { M_NOSKIP = 1, M_SKIP = 2 };
struct hslot {
  uintptr_t h;
  uint8_t mode;
};

typedef ULONG(WINAPI *ntstatus_fn)(LONG);
struct iosb { /* IO_STATUS_BLOCK */
  union { LONG Status; PVOID Pointer; } u;
  ULONG_PTR Information;
};
typedef LONG(WINAPI *qif_fn)(HANDLE, struct iosb *, PVOID, ULONG, int);
enum { FILE_MODE_INFORMATION = 16, SYNC_IO_FLAGS = 0x30 };

struct iocp_state {
  HANDLE port;
  ntstatus_fn ntstatus; /* RtlNtStatusToDosError */
  qif_fn qif;           /* NtQueryInformationFile */
  LPFN_ACCEPTEX acceptex;
  LPFN_CONNECTEX connectex;
  LPFN_TRANSMITFILE transmitfile;
  struct hslot *set;
  size_t nset, capset;
  struct waiter *waiters; /* POLL's threads, created on first use */
};

/* ACCEPT's op->priv: the socket AcceptEx fills, and its address space. */
struct accept_priv {
  SOCKET s;
  char addrs[2 * (sizeof(SOCKADDR_STORAGE) + 16)];
};

static OVERLAPPED *ov_of(struct mp_op *op) { return (OVERLAPPED *)&op->ov; }

static struct mp_op *op_of(OVERLAPPED *ov) {
  return (struct mp_op *)((char *)ov - offsetof(struct mp_op, ov));
}

/* A count for one call: short counts are normal for IO. */
static DWORD clamp(size_t len) {
  return len > 0x7ffff000 ? 0x7ffff000 : (DWORD)len;
}

static SOCKET sock_of(struct mp_op *op) { return (SOCKET)op->handle; }

static int last_err(void) { return mp_err_from_win(GetLastError()); }
static int wsa_err(void) { return mp_err_from_win(WSAGetLastError()); }

static int is_socket(HANDLE h) {
  int type, len = sizeof type;
  return getsockopt((SOCKET)h, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0;
}

static int iocp_init(struct mp_loop *loop) {
  struct iocp_state *s = mp_loop_calloc(loop, 1, sizeof *s);
  HMODULE nt = GetModuleHandleW(L"ntdll.dll");
  if (!s) return MP_ENOMEM;
  s->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
  if (!s->port) {
    int r = last_err();
    free(s);
    return r;
  }
  if (nt) {
    s->ntstatus = (ntstatus_fn)(void (*)(void))GetProcAddress(
        nt, "RtlNtStatusToDosError");
    s->qif = (qif_fn)(void (*)(void))GetProcAddress(
        nt, "NtQueryInformationFile");
  }
  loop->bdata = s;
  return 0;
}

static void waiters_close(struct iocp_state *s);

static void iocp_close(struct mp_loop *loop) {
  struct iocp_state *s = loop->bdata;
  waiters_close(s);
  CloseHandle(s->port);
  free(s->set);
  free(s);
}

/* --- handles ------------------------------------------------------------ */

static struct hslot *slot_of(struct iocp_state *s, uintptr_t h) {
  size_t i = (h >> 2) * 0x9e3779b97f4a7c15ull & (s->capset - 1);
  while (s->set[i].h && s->set[i].h != h) i = (i + 1) & (s->capset - 1);
  return &s->set[i];
}

static int remember(struct mp_loop *loop, uintptr_t h, uint8_t mode) {
  struct iocp_state *s = loop->bdata;
  if (2 * (s->nset + 1) > s->capset) {
    size_t n = s->capset, cap = n ? 2 * n : 64;
    struct hslot *old = s->set, *set = mp_loop_calloc(loop, cap, sizeof *set);
    if (!set) return MP_ENOMEM;
    s->set = set;
    s->capset = cap;
    for (size_t i = 0; i < n; i++)
      if (old[i].h) *slot_of(s, old[i].h) = old[i];
    free(old);
  }
  struct hslot *e = slot_of(s, h);
  if (!e->h) s->nset++;
  e->h = h;
  e->mode = mode;
  return 0;
}

/* Associates h with the port (first use) and says whether an op that
 * succeeds at once also queues a packet: 1 skips it (a socket), 0 queues
 * it. A datagram socket also stops reporting ICMP port-unreachable as a
 * WSAECONNRESET on its next receive (Linux never does). MP_EBUSY: h is
 * associated with another port (association belongs to the file object:
 * a DuplicateHandle copy, or a std handle another loop uses), where its
 * packets would go; the caller runs the op on the pool or refuses it. */
static int associate(struct mp_loop *loop, HANDLE h, int sock, int dgram,
                     int *skip) {
  struct iocp_state *s = loop->bdata;
  if (!CreateIoCompletionPort(h, s->port, KEY_IO, 0)) {
    DWORD e = GetLastError();
    if (e != ERROR_INVALID_PARAMETER) return mp_err_from_win(e);
    /* already associated: with this port only if this loop did it (and
     * remembered it); never a guess */
    struct hslot *slot = s->capset ? slot_of(s, (uintptr_t)h) : NULL;
    if (!slot || !slot->h || !slot->mode) return MP_EBUSY;
    *skip = slot->mode == M_SKIP;
    return 0;
  }
  if (sock < 0) sock = is_socket(h);
  *skip = sock && SetFileCompletionNotificationModes(
                      h, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS |
                             FILE_SKIP_SET_EVENT_ON_HANDLE);
  if (dgram) {
    BOOL off = FALSE;
    DWORD n;
    WSAIoctl((SOCKET)h, SIO_UDP_CONNRESET, &off, sizeof off, NULL, 0, &n,
             NULL, NULL);
  }
  /* a table that cannot grow: this op completes on the port, the next
   * ones on h read as another port's (MP_EBUSY: the pool, or refused) */
  remember(loop, (uintptr_t)h, *skip ? M_SKIP : M_NOSKIP);
  return 0;
}

/* --- completion --------------------------------------------------------- */

/* An overlapped op's status (NTSTATUS, in ov.Internal) as an MP_E* code. */
static int status_err(struct iocp_state *s, LONG status) {
  ULONG e = s->ntstatus ? s->ntstatus(status) : ERROR_GEN_FAILURE;
  return mp_err_from_win(e);
}

static void finish(struct mp_loop *loop, struct mp_op *op, int64_t res);

static void accept_done(struct mp_loop *loop, struct mp_op *op,
                        int64_t res);

/* Ends op with res: the count or handle, or an error. Errors after a
 * cancel request read as MP_ECANCELED, after an MP_OP_CLOSE of the
 * handle as MP_ECLOSED (wine completes those with ERROR_HANDLES_CLOSED,
 * Windows with ERROR_OPERATION_ABORTED or ERROR_NETNAME_DELETED). */
static void finish(struct mp_loop *loop, struct mp_op *op, int64_t res) {
  if (res < 0) {
    switch (op->kind) {
      case MP_OP_READ: case MP_OP_RECV:
        /* end of file, a pipe's writer gone: Unix's read of 0 */
        if (res == MP_EOF || res == MP_EPIPE) res = 0;
        /* a message pipe's longer message: the buffer's worth */
        if (res == MP_EMSGSIZE) res = clamp(op->u.rw.len);
        break;
      case MP_OP_RECVFROM: /* truncated datagram: what fit, as Linux */
        if (res == MP_EMSGSIZE) res = clamp(op->u.rw.len);
        break;
      default:
        break;
    }
  }
  /* a stream with no connection (never made, or reset: wine says
   * WSAENOTCONN where Windows says WSAECONNRESET): Linux's EPIPE */
  if ((op->kind == MP_OP_SEND || op->kind == MP_OP_SENDFILE) &&
      (res == MP_ENOTCONN || res == MP_ESHUTDOWN))
    res = MP_EPIPE;
  /* a datagram to nobody on an unconnected socket: Linux's error */
  if (op->kind == MP_OP_SENDTO && (res == MP_EINVAL || res == MP_ENOTCONN) &&
      !((struct mp__dgram *)op->priv)->addr.len)
    res = MP_EDESTADDRREQ;
  /* a directory opened as a file: Linux's error */
  if ((op->kind == MP_OP_READ || op->kind == MP_OP_WRITE) &&
      (res == MP_ENOSYS || res == MP_EACCES || res == MP_EINVAL)) {
    BY_HANDLE_FILE_INFORMATION fi;
    if (GetFileInformationByHandle(op->handle, &fi) &&
        (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY))
      res = MP_EISDIR;
  }
  if (res < 0 && (op->flags & MP__F_CANCEL)) res = MP_ECANCELED;
  else if (res < 0 && (op->flags & F_CLOSED)) res = MP_ECLOSED;
  if (op->kind == MP_OP_ACCEPT) {
    accept_done(loop, op, res);
    return;
  }
  if (res >= 0 && op->kind == MP_OP_CONNECT)
    setsockopt(sock_of(op), SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0);
  if (res > 0 && (op->flags & F_ADVANCE)) {
    LARGE_INTEGER by = {.QuadPart = op->kind == MP_OP_READ ? res : 0};
    SetFilePointerEx(op->handle, by, NULL,
                     op->kind == MP_OP_READ ? FILE_CURRENT : FILE_END);
  }
  if (op->kind == MP_OP_RECVFROM && res >= 0) {
    struct mp__dgram *d = op->priv;
    d->addr.len = (uint32_t)d->addrlen;
  }
  mp__op_complete(loop, op, res);
}

/* After an overlapped call: ok, or its error (GetLastError or
 * WSAGetLastError: the same codes). Pending, its packet comes; a success
 * on a skip-on-success handle (skip) completes here (the count is in
 * InternalHigh), elsewhere its packet comes too; a failure never queues
 * one. */
static int started(struct mp_loop *loop, struct mp_op *op, BOOL ok,
                   DWORD err, int skip) {
  if ((ok && !skip) || (!ok && err == ERROR_IO_PENDING)) return 0;
  finish(loop, op, ok ? (int64_t)op->ov.b : mp_err_from_win(err));
  return 0;
}

/* --- ops ---------------------------------------------------------------- */

static int to_pool(struct mp_loop *loop, struct mp_op *op) {
  op->flags |= F_POOL;
  return mp__pool_submit(loop, op);
}

static void set_offset(struct mp_op *op, uint64_t off) {
  OVERLAPPED *ov = ov_of(op);
  ov->Offset = (DWORD)off;
  ov->OffsetHigh = (DWORD)(off >> 32);
}

/* READ and WRITE: overlapped at the op's offset on files, ignored by
 * pipes and sockets; handles that cannot be overlapped go to the pool. */
static int rw_submit(struct mp_loop *loop, struct mp_op *op) {
  struct iocp_state *s = loop->bdata;
  HANDLE h = op->handle;
  DWORD type = GetFileType(h);
  int skip, r;
  if (type == FILE_TYPE_UNKNOWN && GetLastError() != NO_ERROR)
    return MP_EBADF;
  if (type == FILE_TYPE_CHAR) return to_pool(loop, op); /* a console */
  if (s->qif) {
    struct iosb io;
    ULONG mode = 0;
    if (s->qif(h, &io, &mode, sizeof mode, FILE_MODE_INFORMATION) >= 0 &&
        (mode & SYNC_IO_FLAGS))
      return to_pool(loop, op); /* opened without FILE_FLAG_OVERLAPPED */
  }
  r = associate(loop, h, type == FILE_TYPE_PIPE ? -1 : 0, 0, &skip);
  if (r == MP_EBUSY) return to_pool(loop, op); /* another loop's port */
  if (r) return r;
  if (type == FILE_TYPE_DISK && op->u.rw.off < 0) {
    op->flags |= F_ADVANCE;
    if (op->kind == MP_OP_WRITE) {
      set_offset(op, UINT64_MAX); /* FILE_WRITE_TO_END_OF_FILE: append */
    } else {
      /* an overlapped file has no position of its own: keep it here */
      LARGE_INTEGER zero = {.QuadPart = 0}, pos;
      if (!SetFilePointerEx(h, zero, &pos, FILE_CURRENT)) return last_err();
      set_offset(op, (uint64_t)pos.QuadPart);
    }
  } else if (op->u.rw.off >= 0) {
    set_offset(op, (uint64_t)op->u.rw.off);
  }
  DWORD len = clamp(op->u.rw.len);
  BOOL ok = op->kind == MP_OP_READ || op->kind == MP_OP_RECV
                ? ReadFile(h, op->u.rw.buf, len, NULL, ov_of(op))
                : WriteFile(h, op->u.rw.buf, len, NULL, ov_of(op));
  return started(loop, op, ok, ok ? 0 : GetLastError(), skip);
}

/* RECV, SEND, and POLL on a socket (a zero-byte receive: it completes
 * when data is there, and takes none). */
static int stream_submit(struct mp_loop *loop, struct mp_op *op) {
  int skip, r;
  if ((r = associate(loop, op->handle, 1, 0, &skip))) return r;
  WSABUF b = {.len = clamp(op->u.rw.len), .buf = op->u.rw.buf};
  DWORD flags = op->msgflags, n = 0;
  if (op->kind == MP_OP_POLL) b.len = 0;
  r = op->kind == MP_OP_SEND
          ? WSASend(sock_of(op), &b, 1, &n, flags, ov_of(op), NULL)
          : WSARecv(sock_of(op), &b, 1, &n, &flags, ov_of(op), NULL);
  if (r == 0) op->ov.b = n; /* (pending, the kernel owns ov) */
  return started(loop, op, r == 0, r == 0 ? 0 : WSAGetLastError(), skip);
}

static int dgram_submit(struct mp_loop *loop, struct mp_op *op) {
  struct mp__dgram *d = op->priv;
  int skip, r;
  if (!d) return MP_EINVAL;
  if ((r = associate(loop, op->handle, 1, 1, &skip))) return r;
  WSABUF b = {.len = clamp(op->u.rw.len), .buf = op->u.rw.buf};
  DWORD n = 0;
  if (op->kind == MP_OP_SENDTO) {
    r = WSASendTo(sock_of(op), &b, 1, &n, op->msgflags,
                  d->addr.len ? (struct sockaddr *)d->addr.sa.b : NULL,
                  (int)d->addr.len, ov_of(op), NULL);
  } else {
    d->addrlen = (int)sizeof d->addr.sa.b;
    d->flags = op->msgflags;
    r = WSARecvFrom(sock_of(op), &b, 1, &n, &d->flags,
                    (struct sockaddr *)d->addr.sa.b, &d->addrlen, ov_of(op),
                    NULL);
  }
  if (r == 0) op->ov.b = n;
  return started(loop, op, r == 0, r == 0 ? 0 : WSAGetLastError(), skip);
}

/* A Winsock extension function (AcceptEx and friends), loaded once. */
static int extension(SOCKET sock, GUID id, void *fn, size_t size) {
  DWORD n;
  if (*(void **)fn) return 0;
  if (WSAIoctl(sock, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id, fn,
               (DWORD)size, &n, NULL, NULL) != 0)
    return wsa_err();
  return 0;
}

static int family_of(SOCKET sock, SOCKADDR_STORAGE *ss, int *len) {
  *len = sizeof *ss;
  memset(ss, 0, sizeof *ss);
  if (getsockname(sock, (struct sockaddr *)ss, len) != 0) return wsa_err();
  return ss->ss_family == AF_INET6 ? MP_AF_INET6
       : ss->ss_family == AF_UNIX ? MP_AF_UNIX : MP_AF_INET;
}

static int accept_submit(struct mp_loop *loop, struct mp_op *op) {
  struct iocp_state *s = loop->bdata;
  SOCKADDR_STORAGE ss;
  mp_handle_t h;
  int len, skip, r, family;
  if ((r = extension(sock_of(op), (GUID)WSAID_ACCEPTEX, &s->acceptex,
                     sizeof s->acceptex)))
    return r;
  if ((family = family_of(sock_of(op), &ss, &len)) < 0) return family;
  if ((r = associate(loop, op->handle, 1, 0, &skip))) return r;
  struct accept_priv *a = mp__op_priv(op, sizeof *a);
  if (!a) return MP_ENOMEM;
  if ((r = mp_os_socket(family, MP_SOCK_STREAM, &h)) < 0) return r;
  a->s = (SOCKET)h;
  DWORD n = 0, alen = sizeof(SOCKADDR_STORAGE) + 16;
  BOOL ok = s->acceptex(sock_of(op), a->s, a->addrs, 0, alen, alen, &n,
                        ov_of(op));
  return started(loop, op, ok, ok ? 0 : WSAGetLastError(), skip);
}

/* A connection reset before AcceptEx took it is the next one's turn, as
 * Linux's accept never reports it; anything else ends the op. */
static void accept_done(struct mp_loop *loop, struct mp_op *op,
                        int64_t res) {
  struct accept_priv *a = op->priv;
  SOCKET ls = sock_of(op);
  if (res >= 0 &&
      setsockopt(a->s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&ls,
                 sizeof ls) != 0)
    res = wsa_err();
  if (res >= 0) {
    mp__op_complete(loop, op, (int64_t)a->s);
    return;
  }
  closesocket(a->s);
  a->s = INVALID_SOCKET;
  if (res == MP_ECONNRESET && !(op->flags & (MP__F_CANCEL | F_CLOSED))) {
    memset(&op->ov, 0, sizeof op->ov);
    if ((res = accept_submit(loop, op)) == 0) return;
  }
  mp__op_complete(loop, op, res);
}

static int connect_submit(struct mp_loop *loop, struct mp_op *op) {
  struct iocp_state *s = loop->bdata;
  SOCKADDR_STORAGE ss;
  int len, skip, r;
  const struct sockaddr *to = op->u.sa.addr;
  if (!to) return MP_EINVAL;
  if ((r = extension(sock_of(op), (GUID)WSAID_CONNECTEX, &s->connectex,
                     sizeof s->connectex)))
    return r;
  /* ConnectEx wants a bound socket: the wildcard, as connect() would */
  len = sizeof ss;
  if ((to->sa_family == AF_INET || to->sa_family == AF_INET6) &&
      getsockname(sock_of(op), (struct sockaddr *)&ss, &len) != 0) {
    memset(&ss, 0, sizeof ss);
    ss.ss_family = to->sa_family;
    len = to->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                    : sizeof(struct sockaddr_in);
    if (bind(sock_of(op), (struct sockaddr *)&ss, len) != 0) return wsa_err();
  }
  if ((r = associate(loop, op->handle, 1, 0, &skip))) return r;
  BOOL ok = s->connectex(sock_of(op), to, (int)op->u.sa.addrlen, NULL, 0,
                         NULL, ov_of(op));
  return started(loop, op, ok, ok ? 0 : WSAGetLastError(), skip);
}

/* SENDFILE: TransmitFile, which reads the file in the kernel from the
 * OVERLAPPED's offset, SENDFILE_MAX bytes at most: it completes only once
 * all is sent, so a bounded op gives what Linux's sendfile gives on a
 * socket that fills up, a short count to go on from. */
enum { SENDFILE_MAX = 1 << 16 };
static int sendfile_submit(struct mp_loop *loop, struct mp_op *op) {
  struct iocp_state *s = loop->bdata;
  int skip, r;
  if (op->u.sf.len == 0 || op->u.sf.off < 0) {
    if (op->u.sf.off < 0) return MP_EINVAL;
    mp__op_complete(loop, op, 0);
    return 0;
  }
  if ((r = extension(sock_of(op), (GUID)WSAID_TRANSMITFILE,
                     &s->transmitfile, sizeof s->transmitfile)))
    return r;
  /* past the end TransmitFile would fail: there, as sendfile, 0 */
  LARGE_INTEGER size;
  if (!GetFileSizeEx(op->u.sf.from, &size)) return last_err();
  if (op->u.sf.off >= size.QuadPart) {
    mp__op_complete(loop, op, 0);
    return 0;
  }
  size_t len = op->u.sf.len < SENDFILE_MAX ? op->u.sf.len : SENDFILE_MAX;
  if ((uint64_t)len > (uint64_t)(size.QuadPart - op->u.sf.off))
    len = (size_t)(size.QuadPart - op->u.sf.off);
  if ((r = associate(loop, op->handle, 1, 0, &skip))) return r;
  set_offset(op, (uint64_t)op->u.sf.off);
  BOOL ok = s->transmitfile(sock_of(op), op->u.sf.from, clamp(len), 0,
                            ov_of(op), NULL, 0);
  return started(loop, op, ok, ok ? 0 : WSAGetLastError(), skip);
}

/* POLL on a waitable handle (a process, an event): the loop's waiter
 * threads, each in WaitForMultipleObjects on up to 63 handles and its
 * control event, post the op's packet when its handle is signalled (the
 * count says how: 0, or the Win32 error of a handle it cannot wait on).
 * An op is in a waiter's table until it is posted or cancelled, under
 * the waiter's lock: a cancel that finds it there completes it, one that
 * does not knows its packet is on the way. Threads of the loop's own,
 * joined when it closes (the system's thread pool keeps its threads). */
enum { WAIT_MAX = MAXIMUM_WAIT_OBJECTS - 1 };
struct waiter {
  mp__mutex lock;
  mp__thread thread;
  HANDLE ctl; /* set when the table changed or on stop */
  int n, stop;
  HANDLE h[WAIT_MAX];
  struct mp_op *op[WAIT_MAX];
  struct iocp_state *s;
  struct waiter *next;
};

/* Takes entry i out (under the lock). */
static void waiter_remove(struct waiter *w, int i) {
  w->n--;
  w->h[i] = w->h[w->n];
  w->op[i] = w->op[w->n];
}

/* Posts entry i's op with how it ended (under the lock). */
static void waiter_post(struct waiter *w, int i, DWORD how) {
  struct mp_op *op = w->op[i];
  waiter_remove(w, i);
  PostQueuedCompletionStatus(w->s->port, how, KEY_POLL, ov_of(op));
}

static void *waiter_main(void *arg) {
  struct waiter *w = arg;
  HANDLE h[WAIT_MAX + 1];
  struct mp_op *op[WAIT_MAX + 1];
  for (;;) {
    mp__mutex_lock(&w->lock);
    int n = w->n, stop = w->stop;
    memcpy(h + 1, w->h, (size_t)n * sizeof *h);
    memcpy(op + 1, w->op, (size_t)n * sizeof *op);
    mp__mutex_unlock(&w->lock);
    if (stop) return NULL;
    h[0] = w->ctl;
    DWORD r = WaitForMultipleObjects((DWORD)n + 1, h, FALSE, INFINITE);
    DWORD i = r >= WAIT_ABANDONED_0 && r <= WAIT_ABANDONED_0 + (DWORD)n
                  ? r - WAIT_ABANDONED_0 : r - WAIT_OBJECT_0;
    mp__mutex_lock(&w->lock);
    if (r == WAIT_FAILED) {
      /* a handle that cannot be waited on (closed meanwhile): it fails */
      DWORD all = GetLastError(), was = (DWORD)w->n;
      for (int k = w->n - 1; k >= 0; k--)
        if (WaitForSingleObject(w->h[k], 0) == WAIT_FAILED)
          waiter_post(w, k, GetLastError() ? GetLastError()
                                           : ERROR_INVALID_HANDLE);
      /* none fails alone (the table changed meanwhile, or the wait
       * failed as a whole): all fail with its error, or the thread
       * would spin on the same failing wait */
      if ((DWORD)w->n == was)
        while (w->n > 0)
          waiter_post(w, w->n - 1, all ? all : ERROR_INVALID_HANDLE);
    } else if (i >= 1 && i <= (DWORD)n) {
      /* unless cancelled meanwhile: a record reused by a new POLL (on
       * another handle) is not the one signalled */
      for (int k = 0; k < w->n; k++)
        if (w->op[k] == op[i] && w->h[k] == h[i]) {
          waiter_post(w, k, 0);
          break;
        }
    }
    mp__mutex_unlock(&w->lock);
  }
}

static void waiters_close(struct iocp_state *s) {
  while (s->waiters) {
    struct waiter *w = s->waiters;
    s->waiters = w->next;
    mp__mutex_lock(&w->lock);
    w->stop = 1;
    mp__mutex_unlock(&w->lock);
    SetEvent(w->ctl);
    mp__thread_join(w->thread);
    CloseHandle(w->ctl);
    mp__mutex_destroy(&w->lock);
    free(w);
  }
}

static struct waiter *waiter_new(struct mp_loop *loop) {
  struct iocp_state *s = loop->bdata;
  struct waiter *w = mp_loop_calloc(loop, 1, sizeof *w);
  if (!w) return NULL;
  w->s = s;
  w->ctl = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (!w->ctl || mp__mutex_init(&w->lock) < 0) {
    if (w->ctl) CloseHandle(w->ctl);
    free(w);
    return NULL;
  }
  if (mp__thread_create(&w->thread, waiter_main, w) < 0) {
    CloseHandle(w->ctl);
    mp__mutex_destroy(&w->lock);
    free(w);
    return NULL;
  }
  w->next = s->waiters;
  s->waiters = w;
  return w;
}

static int poll_submit(struct mp_loop *loop, struct mp_op *op) {
  struct iocp_state *s = loop->bdata;
  struct waiter *w;
  if (is_socket(op->handle)) return stream_submit(loop, op);
  /* a waiter with room that does not wait on this handle yet (a handle
   * may not appear twice in one WaitForMultipleObjects) */
  for (w = s->waiters; w; w = w->next) {
    int ok;
    mp__mutex_lock(&w->lock);
    ok = w->n < WAIT_MAX;
    for (int k = 0; ok && k < w->n; k++) ok = w->h[k] != op->handle;
    if (ok) break;
    mp__mutex_unlock(&w->lock);
  }
  if (!w) {
    if (!(w = waiter_new(loop))) return MP_ENOMEM;
    mp__mutex_lock(&w->lock);
  }
  w->h[w->n] = op->handle;
  w->op[w->n++] = op;
  op->flags |= F_WAIT;
  op->ov.ev = w;
  mp__mutex_unlock(&w->lock);
  SetEvent(w->ctl);
  return 0;
}

/* Cancel of a POLL in a waiter: 1 if it was still there (taken out now),
 * 0 if its packet is on the way. */
static int poll_unwait(struct mp_op *op) {
  struct waiter *w = op->ov.ev;
  int found = 0;
  mp__mutex_lock(&w->lock);
  for (int k = 0; k < w->n && !found; k++)
    if (w->op[k] == op) {
      waiter_remove(w, k);
      found = 1;
    }
  mp__mutex_unlock(&w->lock);
  if (found) SetEvent(w->ctl);
  return found;
}

/* MP_OP_CLOSE, at once: ops pending on the handle complete with errors
 * (they read MP_ECLOSED). */
static int close_submit(struct mp_loop *loop, struct mp_op *op) {
  struct iocp_state *s = loop->bdata;
  struct mp_op *o, *next;
  for (o = loop->inflight; o; o = next) {
    next = o->next;
    if (o == op || o->handle != op->handle || !(o->flags & MP__F_BACKEND))
      continue;
    o->flags |= F_CLOSED;
    /* a waiter would wait on the closed handle (for ever, an event
     * nobody sets): taken out, it ends here */
    if ((o->flags & F_WAIT) && poll_unwait(o))
      mp__op_complete(loop, o, MP_ECLOSED);
  }
  /* the value may come back for another file object: forgotten (a slot
   * keeps its place in the probe chain, with a mode nobody can have) */
  struct hslot *slot = s->capset ? slot_of(s, (uintptr_t)op->handle) : NULL;
  if (slot && slot->h) slot->mode = 0;
  mp__op_complete(loop, op, mp_os_close(op->handle));
  return 0;
}

static int iocp_submit(struct mp_loop *loop, struct mp_op *op) {
  struct iocp_state *s = loop->bdata;
  op->flags &= (uint8_t)~(F_POOL | F_CLOSED | F_ADVANCE | F_WAIT);
  memset(&op->ov, 0, sizeof op->ov);
  if (op->kind >= MP_OP_OPEN && op->kind <= MP_OP_WRITEFILE)
    return to_pool(loop, op); /* files and paths: blocking calls */
  if (op->handle == MP_INVALID_HANDLE || !op->handle) return MP_EBADF;
  switch (op->kind) {
    case MP_OP_READ: case MP_OP_WRITE: return rw_submit(loop, op);
    case MP_OP_RECV: case MP_OP_SEND:
      /* a child's pipe (mp_os_spawn's are named pipes) reads as a file */
      return is_socket(op->handle) ? stream_submit(loop, op)
                                   : rw_submit(loop, op);
    case MP_OP_SENDTO: case MP_OP_RECVFROM: return dgram_submit(loop, op);
    case MP_OP_ACCEPT: /* from a shared listener: its thread accepts */
      return op->u.sa.addr ? mp__share_submit(op, s->port)
                           : accept_submit(loop, op);
    case MP_OP_CONNECT: return connect_submit(loop, op);
    case MP_OP_SENDFILE: return sendfile_submit(loop, op);
    case MP_OP_POLL: return poll_submit(loop, op);
    case MP_OP_CLOSE: return close_submit(loop, op);
    default: return MP_EINVAL;
  }
}

/* A READ or WRITE blocked on a pool thread (fsio_win.c's mp__sync_io, whose
 * call_enter is the other half): the request first, which a call not
 * yet made sees; then, while the thread is in the call (ov.ev 1), the
 * interruption, holding it there (ov.ev 3) so that the call aborted is
 * this op's and not the next op's of that thread. Between publishing
 * "in the call" and entering it there is nothing to interrupt yet: the
 * cancel tries again, with no bound, until the call is interrupted or
 * over. (A race too narrow to force in a test: iocp_sync_handle_on_pool
 * and iocp_foreign_port cancel blocked and unblocked calls.) */
static void pool_io_cancel(struct mp_op *op) {
  InterlockedExchangePointer((void *volatile *)&op->ov.a, (void *)1);
  for (;;) {
    if (InterlockedCompareExchangePointer(&op->ov.ev, (void *)3,
                                          (void *)1) != (void *)1)
      return; /* not in the call (it sees the request), or done */
    HANDLE t = OpenThread(THREAD_TERMINATE, FALSE, (DWORD)op->ov.b);
    OVERLAPPED *ov = (OVERLAPPED *)(uintptr_t)op->ov.off;
    BOOL ok = (t && CancelSynchronousIo(t)) ||
              (ov && CancelIoEx(op->handle, ov)); /* an overlapped wait */
    if (t) CloseHandle(t);
    InterlockedExchangePointer(&op->ov.ev, (void *)1);
    if (ok) return;
    Sleep(1); /* about to enter the call: let it */
  }
}

static void iocp_cancel(struct mp_loop *loop, struct mp_op *op) {
  if (op->flags & F_POOL) {
    if (!mp__pool_cancel(loop, op) && op->kind >= MP_OP_READ &&
        op->kind <= MP_OP_SEND)
      pool_io_cancel(op); /* running: interrupt its blocking call */
    return; /* other jobs, once running, finish */
  }
  if (op->flags & F_WAIT) {
    if (poll_unwait(op)) mp__op_complete(loop, op, MP_ECANCELED);
    return; /* else its packet is queued: it completes with its result */
  }
  if (op->kind == MP_OP_ACCEPT && op->u.sa.addr) {
    mp__share_cancel(loop, op);
    return;
  }
  /* not found: it finished, its packet is on the way */
  CancelIoEx(op->handle, ov_of(op));
}

/* One dequeued packet. */
static void take(struct mp_loop *loop, OVERLAPPED_ENTRY *e) {
  struct iocp_state *s = loop->bdata;
  if (e->lpCompletionKey == KEY_WAKE) {
    mp__drain_posted(loop);
    return;
  }
  struct mp_op *op = op_of(e->lpOverlapped);
  if (e->lpCompletionKey == MP__KEY_SHARE) {
    mp__share_done(loop, op);
    return;
  }
  if (e->lpCompletionKey == KEY_POLL) { /* from a waiter */
    DWORD how = e->dwNumberOfBytesTransferred;
    finish(loop, op, how ? mp_err_from_win(how) : 0);
    return;
  }
  LONG status = (LONG)e->lpOverlapped->Internal;
  op->ov.b = e->dwNumberOfBytesTransferred;
  /* bytes out before a cancel or an error: a short count, as a send
   * interrupted on Unix (they are gone, the caller must know) */
  if (status < 0 && e->dwNumberOfBytesTransferred > 0 &&
      (op->kind == MP_OP_SEND || op->kind == MP_OP_WRITE ||
       op->kind == MP_OP_SENDFILE))
    status = 0;
  if (op->kind == MP_OP_POLL) { /* a socket's: an error is readable too */
    finish(loop, op, (op->flags & (MP__F_CANCEL | F_CLOSED)) && status < 0
                         ? MP_ECANCELED : 0);
    return;
  }
  finish(loop, op, status >= 0 ? (int64_t)e->dwNumberOfBytesTransferred
                               : status_err(s, status));
}

/* Dequeues what completes within ms (INFINITE: no limit). */
static void dequeue(struct mp_loop *loop, DWORD ms) {
  struct iocp_state *s = loop->bdata;
  OVERLAPPED_ENTRY ev[128];
  ULONG n = 0;
  if (!GetQueuedCompletionStatusEx(s->port, ev, 128, &n, ms, FALSE)) return;
  for (ULONG i = 0; i < n; i++) take(loop, &ev[i]);
}

static void iocp_wait(struct mp_loop *loop, int64_t timeout_ns) {
  DWORD ms = INFINITE;
  if (timeout_ns >= 0) {
    int64_t t = (timeout_ns + 999999) / 1000000; /* never early */
    ms = t >= INFINITE ? INFINITE - 1 : (DWORD)t;
  }
  dequeue(loop, ms);
}

/* Before a host sleeps: what has completed is taken now. */
static void iocp_arm(struct mp_loop *loop) { dequeue(loop, 0); }

static void iocp_wake(struct mp_loop *loop) {
  struct iocp_state *s = loop->bdata;
  PostQueuedCompletionStatus(s->port, 0, KEY_WAKE, NULL);
}

/* No .fd: a completion port cannot be polled (mp_loop_fd is
 * MP_INVALID_HANDLE and mp_loop_wait sleeps in wait(), which only
 * queues completions). */
const struct mp_backend mp__backend_iocp = {
  .name = "iocp", .init = iocp_init, .close = iocp_close,
  .submit = iocp_submit, .cancel = iocp_cancel, .wait = iocp_wait,
  .arm = iocp_arm, .wake = iocp_wake,
};
