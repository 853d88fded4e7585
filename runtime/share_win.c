/* share_win.c: shared listeners (mp.h, issue 16), Windows' stand-in for
 * SO_REUSEPORT: the workers of moonport --workers each run a loop with a
 * completion port of its own, and a socket belongs to one port only.
 *
 * So the listening socket belongs to the listener's own private port and
 * thread: while accept ops wait (more of them than connections taken for
 * nobody), one AcceptEx is pending there; each connection it completes
 * goes to the op that has waited longest, whatever its loop, through a
 * packet posted to that op's loop (MP__KEY_SHARE; the OVERLAPPED is the
 * op's, which the kernel never had: ov.a holds an error, ov.b the
 * socket, ov.ev the port). The accepted socket is associated with no
 * port: the receiving loop's first op on it associates it as usual.
 *
 * Every op that waits holds a reference (sh->refs, with the creator's), so
 * a packet on its way never finds the record freed. A cancel takes a
 * waiting op out of the queue; one whose connection is already on its way
 * hands it back when its packet is taken (the next op gets it, or it
 * waits in `held` for one). Close completes the waiters with MP_ECLOSED,
 * closes what is held, and stops and joins the thread, which cancels its
 * AcceptEx and closes the listening socket. */
#include "mp_internal.h"
#include "mp_os.h"

#include <mswsock.h>
#include <string.h>

enum { KEY_ACCEPT = 1, KEY_CTL = 2 }; /* on the private port */

struct mp_share {
  mp__mutex lock;
  SOCKET ls;          /* the listening socket (the thread's) */
  int family;         /* MP_AF_* of ls */
  HANDLE port;        /* private: AcceptEx completions, KEY_CTL pokes */
  mp__thread thread;
  LPFN_ACCEPTEX acceptex;
  /* under lock */
  struct mp__queue wait; /* the accept ops waiting, oldest first */
  int nwait;
  SOCKET *held;       /* connections taken for no op, oldest first */
  int nheld, capheld;
  int refs;           /* the creator's (until close) + waiting ops */
  int closed, accepting, poked;
  /* the thread's AcceptEx */
  OVERLAPPED ov;
  SOCKET as;
  char addrs[2 * (sizeof(SOCKADDR_STORAGE) + 16)];
};

static void unref(struct mp_share *sh) {
  mp__mutex_lock(&sh->lock);
  int last = --sh->refs == 0;
  mp__mutex_unlock(&sh->lock);
  if (!last) return;
  /* (close closed them; any held since would be lost with the record) */
  while (sh->nheld > 0) closesocket(sh->held[--sh->nheld]);
  CloseHandle(sh->port);
  free(sh->held);
  mp__mutex_destroy(&sh->lock);
  free(sh);
}

/* Under the lock: the oldest waiting op's packet to its loop, with a
 * socket or an error; the op leaves the queue but keeps its reference.
 * 0, or -1 with none waiting or the packet not posted (out of memory):
 * then the op stays first in the queue. (It leaves before the post: once
 * posted, its loop may use its link.) */
static int post(struct mp_share *sh, SOCKET s, int err) {
  struct mp_op *op = mp__queue_pop(&sh->wait);
  if (!op) return -1;
  op->ov.a = (uintptr_t)(intptr_t)err;
  op->ov.b = (uintptr_t)s;
  if (!PostQueuedCompletionStatus((HANDLE)op->ov.ev, 0, MP__KEY_SHARE,
                                  (OVERLAPPED *)&op->ov)) {
    op->link = sh->wait.head; /* back in front */
    sh->wait.head = op;
    if (!sh->wait.tail) sh->wait.tail = op;
    return -1;
  }
  sh->nwait--;
  return 0;
}

/* Under the lock: a connection (or an accept's error) to the oldest
 * waiting op; with none (or its packet not posted), a connection is held
 * for the next, an error forgotten. */
static void hand(struct mp_share *sh, SOCKET s, int err) {
  if (post(sh, s, err) == 0) return;
  if (s == INVALID_SOCKET) return;
  if (sh->nheld == sh->capheld) {
    int cap = sh->capheld ? 2 * sh->capheld : 4;
    SOCKET *h = realloc(sh->held, (size_t)cap * sizeof *h);
    if (!h) {
      closesocket(s); /* out of memory: the peer sees a reset */
      return;
    }
    sh->held = h;
    sh->capheld = cap;
  }
  sh->held[sh->nheld++] = s;
}

/* Starts the AcceptEx: 0, or an error for the oldest waiter. */
static int start(struct mp_share *sh) {
  mp_handle_t h;
  DWORD n = 0, alen = sizeof(SOCKADDR_STORAGE) + 16;
  int r = mp_os_socket(sh->family, MP_SOCK_STREAM, &h);
  if (r < 0) return r;
  sh->as = (SOCKET)h;
  memset(&sh->ov, 0, sizeof sh->ov);
  if (sh->acceptex(sh->ls, sh->as, sh->addrs, 0, alen, alen, &n, &sh->ov) ||
      WSAGetLastError() == ERROR_IO_PENDING)
    return 0; /* (no skip-on-success here: the packet comes either way) */
  r = mp_err_from_win(WSAGetLastError());
  closesocket(sh->as);
  sh->as = INVALID_SOCKET;
  return r;
}

static void *share_main(void *arg) {
  struct mp_share *sh = arg;
  for (;;) {
    mp__mutex_lock(&sh->lock);
    int stop = sh->closed;
    int want = !stop && !sh->accepting && sh->nwait > sh->nheld;
    if (want) sh->accepting = 1;
    mp__mutex_unlock(&sh->lock);
    if (stop) break;
    if (want) {
      int r = start(sh);
      if (r < 0) { /* no socket (out of handles): the oldest op says so */
        mp__mutex_lock(&sh->lock);
        sh->accepting = 0;
        if (r != MP_ECONNRESET) hand(sh, INVALID_SOCKET, r);
        mp__mutex_unlock(&sh->lock);
        continue;
      }
    }
    DWORD n;
    ULONG_PTR key;
    OVERLAPPED *ov = NULL;
    BOOL ok = GetQueuedCompletionStatus(sh->port, &n, &key, &ov, INFINITE);
    if (ov != &sh->ov) { /* a poke: the queue changed, or close */
      mp__mutex_lock(&sh->lock);
      sh->poked = 0;
      mp__mutex_unlock(&sh->lock);
      continue;
    }
    int err = ok ? 0 : mp_err_from_win(GetLastError());
    SOCKET s = sh->as;
    sh->as = INVALID_SOCKET;
    if (!err && setsockopt(s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                           (char *)&sh->ls, sizeof sh->ls) != 0)
      err = mp_err_from_win(WSAGetLastError());
    if (err) closesocket(s);
    mp__mutex_lock(&sh->lock);
    sh->accepting = 0;
    /* a reset before it was taken is the next one's turn (as Linux's
     * accept never reports it); closed meanwhile, nobody takes it */
    if (sh->closed) {
      if (!err) closesocket(s);
    } else if (err != MP_ECONNRESET) {
      hand(sh, err ? INVALID_SOCKET : s, err);
    }
    mp__mutex_unlock(&sh->lock);
  }
  if (sh->as != INVALID_SOCKET) { /* pending: cancelled, then taken */
    DWORD n;
    ULONG_PTR key;
    OVERLAPPED *ov = NULL;
    CancelIoEx((HANDLE)sh->ls, &sh->ov);
    while (ov != &sh->ov)
      if (!GetQueuedCompletionStatus(sh->port, &n, &key, &ov, INFINITE) &&
          !ov)
        break; /* the port itself failed: nothing more will come */
    closesocket(sh->as);
  }
  closesocket(sh->ls);
  return NULL;
}

/* The thread looks at the queue again (under the lock). */
static void poke(struct mp_share *sh) {
  if (sh->poked) return;
  sh->poked = 1;
  PostQueuedCompletionStatus(sh->port, 0, KEY_CTL, NULL);
}

int mp_share_new(mp_handle_t h, struct mp_share **out) {
  struct mp_share *sh = calloc(1, sizeof *sh);
  SOCKADDR_STORAGE ss;
  int len = sizeof ss, r;
  GUID id = WSAID_ACCEPTEX;
  DWORD n;
  if (!sh) return MP_ENOMEM;
  sh->ls = (SOCKET)h;
  sh->as = INVALID_SOCKET;
  sh->refs = 1;
  if ((r = mp__mutex_init(&sh->lock)) < 0) {
    free(sh);
    return r;
  }
  if (getsockname(sh->ls, (struct sockaddr *)&ss, &len) != 0 ||
      WSAIoctl(sh->ls, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id,
               &sh->acceptex, sizeof sh->acceptex, &n, NULL, NULL) != 0) {
    r = mp_err_from_win(WSAGetLastError());
    mp__mutex_destroy(&sh->lock);
    free(sh);
    return r;
  }
  sh->family = ss.ss_family == AF_INET6 ? MP_AF_INET6
             : ss.ss_family == AF_UNIX ? MP_AF_UNIX : MP_AF_INET;
  if (!(sh->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0,
                                          1))) {
    r = mp_err_from_win(GetLastError());
    mp__mutex_destroy(&sh->lock);
    free(sh);
    return r;
  }
  /* a socket some loop has associated already sends its packets there */
  if (!CreateIoCompletionPort(h, sh->port, KEY_ACCEPT, 0)) {
    DWORD e = GetLastError();
    CloseHandle(sh->port);
    mp__mutex_destroy(&sh->lock);
    free(sh);
    return e == ERROR_INVALID_PARAMETER ? MP_EBUSY : mp_err_from_win(e);
  }
  if ((r = mp__thread_create(&sh->thread, share_main, sh)) < 0) {
    /* h stays the caller's, associated with a port that is gone: no
     * loop can use it for overlapped ops any more; it can only close */
    CloseHandle(sh->port);
    mp__mutex_destroy(&sh->lock);
    free(sh);
    return r;
  }
  *out = sh;
  return 0;
}

int mp_share_dup(struct mp_share *sh, mp_handle_t *out) {
  WSAPROTOCOL_INFOW pi;
  if (WSADuplicateSocketW(sh->ls, GetCurrentProcessId(), &pi) != 0)
    return mp_err_from_win(WSAGetLastError());
  SOCKET s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
                        FROM_PROTOCOL_INFO, &pi, 0,
                        WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET) return mp_err_from_win(WSAGetLastError());
  *out = (mp_handle_t)s;
  return 0;
}

void mp_share_close(struct mp_share *sh) {
  mp__mutex_lock(&sh->lock);
  sh->closed = 1;
  /* one not posted stays in the queue, for its cancel (a loop's drain) */
  struct mp__queue left = {NULL, NULL};
  while (sh->wait.head)
    if (post(sh, INVALID_SOCKET, MP_ECLOSED) < 0)
      mp__queue_push(&left, mp__queue_pop(&sh->wait));
  sh->wait = left;
  while (sh->nheld > 0) closesocket(sh->held[--sh->nheld]);
  sh->poked = 0;
  poke(sh);
  mp__mutex_unlock(&sh->lock);
  mp__thread_join(sh->thread);
  unref(sh);
}

void mp_op_prep_accept_shared(struct mp_op *op, struct mp_share *sh) {
  op->kind = MP_OP_ACCEPT;
  op->handle = (mp_handle_t)sh->ls;
  op->u.sa.addr = sh;
}

void mp_share_stats(struct mp_share *sh, int *waiting, int *held) {
  mp__mutex_lock(&sh->lock);
  *waiting = sh->nwait;
  *held = sh->nheld;
  mp__mutex_unlock(&sh->lock);
}

/* ---- the backend's side (backend_iocp.c), on the op's loop thread ---- */

int mp__share_submit(struct mp_op *op, void *port) {
  struct mp_share *sh = op->u.sa.addr;
  mp__mutex_lock(&sh->lock);
  if (sh->closed || sh->nheld > 0) {
    /* (a closed listener still answers, though no op should ask) */
    int64_t res = sh->closed ? MP_ECLOSED : (int64_t)sh->held[0];
    if (!sh->closed)
      memmove(sh->held, sh->held + 1, (size_t)--sh->nheld * sizeof *sh->held);
    mp__mutex_unlock(&sh->lock);
    mp__op_complete(op->loop, op, res);
    return 0;
  }
  op->ov.ev = port;
  mp__queue_push(&sh->wait, op);
  sh->nwait++;
  sh->refs++;
  if (!sh->accepting) poke(sh);
  mp__mutex_unlock(&sh->lock);
  return 0;
}

void mp__share_cancel(struct mp_loop *loop, struct mp_op *op) {
  struct mp_share *sh = op->u.sa.addr;
  mp__mutex_lock(&sh->lock);
  int found = mp__queue_remove(&sh->wait, op);
  if (found) sh->nwait--;
  mp__mutex_unlock(&sh->lock);
  if (!found) return; /* its packet is on the way */
  mp__op_complete(loop, op, MP_ECANCELED);
  unref(sh);
}

void mp__share_done(struct mp_loop *loop, struct mp_op *op) {
  struct mp_share *sh = op->u.sa.addr;
  int err = (int)(intptr_t)op->ov.a;
  SOCKET s = (SOCKET)op->ov.b;
  if (!err && (op->flags & MP__F_CANCEL)) {
    /* the op left as its connection came: the next one's */
    mp__mutex_lock(&sh->lock);
    if (sh->closed) closesocket(s);
    else hand(sh, s, 0);
    mp__mutex_unlock(&sh->lock);
    err = MP_ECANCELED;
  } else if (err && (op->flags & MP__F_CANCEL)) {
    err = MP_ECANCELED;
  }
  mp__op_complete(loop, op, err ? err : (int64_t)s);
  unref(sh);
}
