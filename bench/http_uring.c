/* bench/http_uring.c: the http_hello responder as a plain C io_uring loop
 * (the floor moonport is measured against in bench/http.sh).
 *
 * One accept in flight; per connection one recv or one send in flight.
 * A request ends at "\r\n\r\n"; each complete request gets the same
 * keep-alive response. Build: cc -O2 http_uring.c -luring
 *
 * URING_MULTISHOT=1: one multishot receive per connection into a ring of
 * provided buffers (IORING_RECV_MULTISHOT, Linux 6.0), armed at accept
 * and again only when the kernel ends it, instead of a receive per
 * request: what such a receive would save in the kernel
 * (docs/performance.md, "Live-stream check, ... (httpcpu3)"). */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY "Hello, World!"
#define RESPONSE "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" \
                 "Content-Length: 13\r\n\r\n" BODY
enum { T_ACCEPT = 0, T_RECV = 1, T_SEND = 2, BUFSZ = 4096, MAXREP = 16 };

struct conn {
  int fd;
  int sending, dead;     /* multishot: a send in flight; the recv ended */
  size_t len;            /* bytes in buf */
  size_t out_off, out_len;
  char buf[BUFSZ];
};

static struct io_uring ring;
static int multishot;
static struct io_uring_buf_ring *br;
static char *bufs;
enum { NBUF = 1024, BSZ = 2048, BGID = 1 };
static char reply[sizeof RESPONSE * MAXREP];

static void *tag(void *p, int t) { return (void *)((uintptr_t)p | t); }

static void submit_recv(struct conn *c) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  if (multishot) {
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
  } else {
    io_uring_prep_recv(sqe, c->fd, c->buf + c->len, BUFSZ - c->len, 0);
  }
  io_uring_sqe_set_data(sqe, tag(c, T_RECV));
}

/* Multishot: the ring of provided buffers the receives pick from. */
static void setup_buffers(void) {
  struct io_uring_buf_reg reg = {0};
  if (posix_memalign((void **)&br, 4096, NBUF * sizeof(struct io_uring_buf)) ||
      !(bufs = malloc((size_t)NBUF * BSZ))) {
    perror("malloc");
    exit(1);
  }
  reg.ring_addr = (unsigned long)br;
  reg.ring_entries = NBUF;
  reg.bgid = BGID;
  if (io_uring_register_buf_ring(&ring, &reg, 0)) {
    fprintf(stderr, "io_uring_register_buf_ring failed\n");
    exit(1);
  }
  io_uring_buf_ring_init(br);
  for (int i = 0; i < NBUF; i++)
    io_uring_buf_ring_add(br, bufs + (size_t)i * BSZ, BSZ, (unsigned short)i,
                          io_uring_buf_ring_mask(NBUF), i);
  io_uring_buf_ring_advance(br, NBUF);
}

/* Multishot: copies a completion's bytes into c->buf and gives its
 * buffer back to the ring. */
static int take_buffer(struct conn *c, struct io_uring_cqe *cqe) {
  int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
  size_t n = (size_t)cqe->res;
  if (n > BUFSZ - c->len) n = BUFSZ - c->len;
  memcpy(c->buf + c->len, bufs + (size_t)bid * BSZ, n);
  io_uring_buf_ring_add(br, bufs + (size_t)bid * BSZ, BSZ, (unsigned short)bid,
                        io_uring_buf_ring_mask(NBUF), 0);
  io_uring_buf_ring_advance(br, 1);
  return (int)n;
}

/* The send is linked to the next recv: one ring round trip per request.
 * A short send breaks the link (the recv completes -ECANCELED) and is
 * resubmitted with a new linked recv. */
static void submit_send(struct conn *c) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  io_uring_prep_send(sqe, c->fd, reply + c->out_off, c->out_len - c->out_off,
                     MSG_NOSIGNAL);
  io_uring_sqe_set_data(sqe, tag(c, T_SEND));
  if (multishot) {
    c->sending = 1; /* the receive stays armed */
    return;
  }
  sqe->flags |= IOSQE_IO_LINK;
  submit_recv(c);
}

static void submit_accept(int lfd) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  io_uring_prep_accept(sqe, lfd, NULL, NULL, 0);
  io_uring_sqe_set_data(sqe, tag(NULL, T_ACCEPT));
}

static void drop(struct conn *c) {
  if (c->sending) { /* multishot: its send completes first */
    c->dead = 1;
    return;
  }
  close(c->fd);
  free(c);
}

/* Counts complete request heads, keeps the rest; 0 means read more. */
static int requests(struct conn *c) {
  int n = 0;
  size_t at = 0;
  for (;;) {
    char *e = memmem(c->buf + at, c->len - at, "\r\n\r\n", 4);
    if (!e) break;
    n++;
    at = (size_t)(e - c->buf) + 4;
  }
  memmove(c->buf, c->buf + at, c->len - at);
  c->len -= at;
  if (c->len == BUFSZ) c->len = 0; /* a huge head: drop it */
  return n;
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 8080, one = 1;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1024)) {
    perror("listen");
    return 1;
  }
  for (int i = 0; i < MAXREP; i++)
    memcpy(reply + i * (sizeof RESPONSE - 1), RESPONSE, sizeof RESPONSE - 1);
  /* Task work runs when we wait, on this thread only: the cheapest setup
   * for a single-threaded loop (falls back on older kernels).
   * URING_PLAIN=1 uses default flags, as moonport's ring does. */
  const char *plain = getenv("URING_PLAIN");
  if ((plain && *plain == '1') ||
      io_uring_queue_init(1024, &ring, IORING_SETUP_SINGLE_ISSUER |
                                           IORING_SETUP_DEFER_TASKRUN) < 0)
    io_uring_queue_init(1024, &ring, 0);
  const char *ms = getenv("URING_MULTISHOT");
  if ((multishot = ms && *ms == '1')) setup_buffers();
  submit_accept(lfd);
  for (;;) {
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_submit_and_wait(&ring, 1);
    io_uring_for_each_cqe(&ring, head, cqe) {
      n++;
      int t = (int)(cqe->user_data & 7), res = cqe->res;
      struct conn *c = (struct conn *)(uintptr_t)(cqe->user_data & ~7ull);
      if (t == T_ACCEPT) {
        if (res >= 0) {
          c = calloc(1, sizeof *c);
          c->fd = res;
          setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          submit_recv(c);
        }
        submit_accept(lfd);
      } else if (t == T_RECV) {
        if (res == -ECANCELED) continue; /* a short send re-arms it */
        if (res == -ENOBUFS) { /* multishot: no buffer left, it ended */
          submit_recv(c);
          continue;
        }
        if (res <= 0) {
          drop(c);
          continue;
        }
        if (multishot) {
          res = take_buffer(c, cqe);
          if (!(cqe->flags & IORING_CQE_F_MORE)) submit_recv(c);
        }
        c->len += (size_t)res;
        int k = requests(c);
        if (k == 0) {
          if (!multishot) submit_recv(c);
          continue;
        }
        if (k > MAXREP) k = MAXREP;
        c->out_off = 0;
        c->out_len = (size_t)k * (sizeof RESPONSE - 1);
        submit_send(c);
      } else {
        if (multishot) {
          c->sending = 0;
          if (c->dead || res < 0) { /* the receive has ended, or will */
            if (c->dead) drop(c);
            continue;
          }
        }
        /* On failure the linked recv fails too (or sees EOF): it drops. */
        if (res < 0) continue;
        c->out_off += (size_t)res;
        if (c->out_off < c->out_len) submit_send(c);
      }
    }
    io_uring_cq_advance(&ring, n);
  }
}
