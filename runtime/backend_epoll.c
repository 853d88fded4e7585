/* backend_epoll.c: Linux epoll, readiness turned into completions.
 *
 * Socket ops (RECV, SEND, ACCEPT, CONNECT) are tried at once and, on
 * EAGAIN, queued on their descriptor until epoll reports it ready; READ and
 * WRITE at the current position on a pollable descriptor (pipe, tty,
 * socket) wait for readiness first so a blocking descriptor never blocks
 * the loop; everything else (regular files, positional IO, close) runs on
 * the threadpool. Level-triggered and one-shot: each event disarms its
 * descriptor, which stays in the set and is re-armed (one epoll_ctl) only
 * when an op waits on it again, so a receive that waits costs no ADD and
 * DEL pair, and a hung-up peer nobody reads cannot spin the loop. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mp_internal.h"

struct fdstate {
  struct mp__queue rq, wq; /* ops waiting for readable / writable */
  uint32_t events;         /* interest armed, 0: none (an event disarms) */
  unsigned char added;     /* in the epoll set, armed or not */
};

struct epoll_state {
  int epfd;
  int wakefd; /* the wake object: an eventfd in the epoll set */
  struct fdstate *fds;
  size_t nfds;
};

static int ep_init(struct mp_loop *loop) {
  struct epoll_state *s = calloc(1, sizeof *s);
  struct epoll_event ev = {.events = EPOLLIN};
  int r;
  if (!s) return MP_ENOMEM;
  if ((r = s->wakefd = mp__wakefd_open()) < 0) {
    free(s);
    return r;
  }
  ev.data.fd = s->wakefd;
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (s->epfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev)) {
    r = mp_err_from_errno(errno);
    mp__close_fd(s->epfd);
    mp__close_fd(s->wakefd);
    free(s);
    return r;
  }
  loop->bdata = s;
  return 0;
}

static void ep_close(struct mp_loop *loop) {
  struct epoll_state *s = loop->bdata;
  mp__close_fd(s->epfd);
  mp__close_fd(s->wakefd);
  free(s->fds);
  free(s);
}

static struct fdstate *fd_get(struct mp_loop *loop, struct epoll_state *s,
                              int fd) {
  if ((size_t)fd >= s->nfds) {
    size_t n = s->nfds ? s->nfds : 64;
    while (n <= (size_t)fd) n *= 2;
    struct fdstate *f = mp_loop_realloc(loop, s->fds, n * sizeof *f);
    if (!f) return NULL;
    memset(f + s->nfds, 0, (n - s->nfds) * sizeof *f);
    s->fds = f;
    s->nfds = n;
  }
  return &s->fds[fd];
}

/* Arms the interest the queues want. With nobody waiting it is left
 * disarmed (after an event) or removed (after a cancel: fd_drop), so a
 * descriptor closed behind the loop's back is never left armed. */
static int fd_update(struct epoll_state *s, int fd, struct fdstate *f) {
  uint32_t want = (f->rq.head ? EPOLLIN : 0) | (f->wq.head ? EPOLLOUT : 0);
  struct epoll_event ev = {.events = want | EPOLLONESHOT, .data.fd = fd};
  int r;
  if (!want || want == f->events) return 0;
  r = epoll_ctl(s->epfd, f->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
  if (r < 0 && errno == EEXIST) /* stale: added before a close */
    r = epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev);
  else if (r < 0 && errno == ENOENT) /* closed since: gone from the set */
    r = epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
  if (r < 0) return mp_err_from_errno(errno);
  f->added = 1;
  f->events = want;
  return 0;
}

/* Takes the descriptor out of the set when nobody waits on it any more
 * (a cancel, a close). */
static void fd_drop(struct epoll_state *s, int fd, struct fdstate *f) {
  if (f->rq.head || f->wq.head) {
    fd_update(s, fd, f); /* narrower interest: a failure leaves more */
    return;
  }
  if (f->added) epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
  f->added = 0;
  f->events = 0;
}

/* One non-blocking attempt. Returns the result, or MP_EAGAIN to keep
 * waiting. */
static int64_t attempt(struct mp_op *op) {
  ssize_t r;
  int fd = op->handle;
  switch (op->kind) {
    case MP_OP_READ:
      r = read(fd, op->u.rw.buf, op->u.rw.len);
      break;
    case MP_OP_WRITE: {
      /* A blocking pipe or terminal (inherited: its mode may be shared,
       * so it is left alone) takes PIPE_BUF bytes after readiness without
       * blocking, not always more: the rest is a short write. */
      size_t len = op->u.rw.len;
      if (len > PIPE_BUF && !(fcntl(fd, F_GETFL) & O_NONBLOCK))
        len = PIPE_BUF;
      r = write(fd, op->u.rw.buf, len);
      break;
    }
    case MP_OP_RECV:
      r = recv(fd, op->u.rw.buf, op->u.rw.len, MSG_DONTWAIT | op->msgflags);
      break;
    case MP_OP_SEND:
      r = send(fd, op->u.rw.buf, op->u.rw.len,
               MSG_DONTWAIT | MSG_NOSIGNAL | op->msgflags);
      break;
    case MP_OP_ACCEPT:
      r = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      break;
    case MP_OP_SENDTO:
      r = sendmsg(fd, op->u.rw.buf, MSG_DONTWAIT | MSG_NOSIGNAL | op->msgflags);
      break;
    case MP_OP_RECVFROM:
      r = recvmsg(fd, op->u.rw.buf, MSG_DONTWAIT | op->msgflags);
      break;
    case MP_OP_POLL: {
      struct pollfd p = {.fd = fd,
                         .events = op->msgflags ? POLLOUT : POLLIN};
      r = poll(&p, 1, 0);
      if (r > 0) return p.revents & POLLNVAL ? MP_EBADF : 0;
      if (r == 0) return MP_EAGAIN;
      break;
    }
    case MP_OP_SENDFILE:
      return mp__sendfile_run(op); /* MP__EWARMING: with the pool now */
    case MP_OP_CONNECT: {
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
      return mp_err_from_errno(err);
    }
    default:
      return MP_EINVAL;
  }
  if (r >= 0) return r;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    return MP_EAGAIN;
  return mp_err_from_errno(errno);
}

/* Completes the ops at the head of q that can make progress now. */
static void run_queue(struct mp_loop *loop, struct mp__queue *q) {
  struct mp_op *op;
  while ((op = q->head)) {
    int64_t r = attempt(op);
    if (r == MP_EAGAIN) break;
    mp__queue_pop(q);
    if (r != MP__EWARMING) mp__op_complete(loop, op, r);
  }
}

static int ep_submit(struct mp_loop *loop, struct mp_op *op) {
  struct epoll_state *s = loop->bdata;
  struct fdstate *f;
  struct mp__queue *q;
  int64_t r;
  if (op->handle < 0 && op->kind <= MP_OP_CLOSE) return MP_EBADF;
  switch (op->kind) {
    case MP_OP_CLOSE:
      if ((size_t)op->handle < s->nfds) {
        f = &s->fds[op->handle];
        if (f->rq.head || f->wq.head) return MP_EBUSY; /* cancel them first */
        fd_drop(s, op->handle, f);
      }
      mp__op_complete(loop, op,
                      close(op->handle) < 0 ? mp_err_from_errno(errno) : 0);
      return 0;
    case MP_OP_READ:
    case MP_OP_WRITE:
      if (op->u.rw.off >= 0) return mp__pool_submit(loop, op);
      break;
    case MP_OP_RECV: case MP_OP_SEND: case MP_OP_ACCEPT: case MP_OP_CONNECT:
    case MP_OP_SENDTO: case MP_OP_RECVFROM: case MP_OP_POLL:
    case MP_OP_SENDFILE:
      if (op->handle < 0) return MP_EBADF; /* fd_get(-1) never ends */
      break;
    default: /* path and file ops: blocking syscalls */
      return mp__pool_submit(loop, op);
  }
  if (!(f = fd_get(loop, s, op->handle))) return MP_ENOMEM;
  q = (op->kind == MP_OP_RECV || op->kind == MP_OP_ACCEPT ||
       op->kind == MP_OP_READ || op->kind == MP_OP_RECVFROM ||
       (op->kind == MP_OP_POLL && !op->msgflags)) ? &f->rq : &f->wq;
  /* Sockets: try at once unless others are queued ahead (FIFO), or a
   * receive expects nothing yet (mp_op_poll_first: the EAGAIN is a
   * syscall saved; readiness is level-triggered, so bytes that are
   * already there are reported by the next wait). */
  if (!q->head && op->kind != MP_OP_READ && op->kind != MP_OP_WRITE &&
      !(op->flags & MP__F_POLLFIRST)) {
    int wait = MP_EAGAIN; /* the result that means "wait for readiness" */
    if (op->kind == MP_OP_CONNECT) {
      /* EAGAIN from connect is a result (a Unix server's backlog is
       * full), as io_uring reports it; only EINPROGRESS waits. */
      r = connect(op->handle, op->u.sa.addr, op->u.sa.addrlen) < 0
              ? mp_err_from_errno(errno) : 0;
      if (r == MP_EINTR) r = MP_EINPROGRESS;
      wait = MP_EINPROGRESS;
    } else {
      r = attempt(op);
    }
    if (r != wait) {
      if (r != MP__EWARMING) mp__op_complete(loop, op, r);
      return 0;
    }
  }
  mp__queue_push(q, op);
  int e = fd_update(s, op->handle, f);
  if (e == MP_EPERM && (op->kind == MP_OP_READ || op->kind == MP_OP_WRITE)) {
    /* Not pollable: a regular file. Read or write it on the pool. */
    mp__queue_remove(q, op);
    return mp__pool_submit(loop, op);
  }
  if (e < 0) {
    mp__queue_remove(q, op);
    return e;
  }
  return 0;
}

static void ep_cancel(struct mp_loop *loop, struct mp_op *op) {
  struct epoll_state *s = loop->bdata;
  if (mp__sendfile_cancel(op)) return; /* its pool job ends it */
  /* (file and path ops are pool jobs: a READFILE's may be writing
   * op->handle right now) */
  int path_op = op->kind >= MP_OP_OPEN && op->kind <= MP_OP_WRITEFILE;
  if (!path_op && op->handle >= 0 && (size_t)op->handle < s->nfds) {
    struct fdstate *f = &s->fds[op->handle];
    if (mp__queue_remove(&f->rq, op) || mp__queue_remove(&f->wq, op)) {
      fd_drop(s, op->handle, f);
      mp__op_complete(loop, op, MP_ECANCELED);
      return;
    }
  }
  mp__pool_cancel(loop, op); /* else running: it completes normally */
}

static void ep_wait(struct mp_loop *loop, int64_t timeout_ns) {
  struct epoll_state *s = loop->bdata;
  struct epoll_event evs[256];
  int ms = timeout_ns < 0 ? -1
         : (int)((timeout_ns + 999999) / 1000000 > 0x7fffffff
                     ? 0x7fffffff : (timeout_ns + 999999) / 1000000);
  int n = epoll_wait(s->epfd, evs, 256, ms);
  for (int i = 0; i < n; i++) {
    int fd = evs[i].data.fd;
    if (fd == s->wakefd) {
      mp__wakefd_drain(fd);
      mp__drain_posted(loop);
      continue;
    }
    if ((size_t)fd >= s->nfds) continue;
    struct fdstate *f = &s->fds[fd];
    uint32_t e = evs[i].events;
    f->events = 0; /* one-shot: disarmed */
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) run_queue(loop, &f->rq);
    if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) run_queue(loop, &f->wq);
    fd_update(s, fd, f);
  }
}

static void ep_wake(struct mp_loop *loop) {
  mp__wakefd_signal(((struct epoll_state *)loop->bdata)->wakefd);
}

static void ep_unwake(struct mp_loop *loop) {
  mp__wakefd_drain(((struct epoll_state *)loop->bdata)->wakefd);
}

static mp_handle_t ep_fd(struct mp_loop *loop) {
  return ((struct epoll_state *)loop->bdata)->epfd;
}

const struct mp_backend mp__backend_epoll = {
  .name = "epoll", .init = ep_init, .close = ep_close, .submit = ep_submit,
  .cancel = ep_cancel, .wait = ep_wait, .wake = ep_wake,
  .unwake = ep_unwake, .fd = ep_fd,
};
