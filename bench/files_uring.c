/* files_uring.c: the plain C io_uring peer for bench/files.sh (b):
 * open+read+close DIR/f1..fN (4 KiB each), INFLIGHT at once, each file
 * one linked chain of three SQEs (openat into a direct descriptor, read
 * through it, close it), as a C program at the kernel's floor would.
 *   files_uring DIR N INFLIGHT
 * Prints the elapsed milliseconds and the bytes read. */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: files_uring DIR N INFLIGHT\n");
    return 2;
  }
  const char *dir = argv[1];
  int n = atoi(argv[2]), lanes = atoi(argv[3]);
  struct io_uring ring;
  if (io_uring_queue_init((unsigned)lanes * 4, &ring, 0) < 0 ||
      io_uring_register_files_sparse(&ring, (unsigned)lanes) < 0) {
    fprintf(stderr, "io_uring setup failed\n");
    return 1;
  }
  char (*paths)[4096] = malloc((size_t)lanes * 4096);
  char (*bufs)[65536] = malloc((size_t)lanes * 65536);
  int *left = calloc((size_t)lanes, sizeof *left); /* CQEs due per lane */
  long long total = 0;
  int next = 1, done = 0, active = 0;
  double t0 = now_ms();
  /* lane l uses direct descriptor slot l; user_data: lane * 4 + step */
  for (;;) {
    for (int l = 0; l < lanes && next <= n; l++) {
      if (left[l]) continue;
      snprintf(paths[l], 4096, "%s/f%d", dir, next++);
      struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
      io_uring_prep_openat_direct(sqe, AT_FDCWD, paths[l], O_RDONLY, 0,
                                  (unsigned)l);
      sqe->flags |= IOSQE_IO_LINK;
      io_uring_sqe_set_data64(sqe, (uint64_t)l * 4);
      sqe = io_uring_get_sqe(&ring);
      io_uring_prep_read(sqe, l, bufs[l], 65536, 0);
      sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK; /* short: still close */
      io_uring_sqe_set_data64(sqe, (uint64_t)l * 4 + 1);
      sqe = io_uring_get_sqe(&ring);
      io_uring_prep_close_direct(sqe, (unsigned)l);
      io_uring_sqe_set_data64(sqe, (uint64_t)l * 4 + 2);
      left[l] = 3;
      active++;
    }
    if (active == 0) break;
    struct io_uring_cqe *cqe;
    if (io_uring_submit_and_wait(&ring, 1) < 0) return 1;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      uint64_t ud = cqe->user_data;
      int l = (int)(ud / 4), step = (int)(ud % 4);
      if (cqe->res < 0) {
        fprintf(stderr, "step %d: %s\n", step, strerror(-cqe->res));
        return 1;
      }
      if (step == 1) total += cqe->res;
      if (--left[l] == 0) {
        active--;
        done++;
      }
      seen++;
    }
    io_uring_cq_advance(&ring, seen);
  }
  printf("%.1f %lld\n", now_ms() - t0, total);
  io_uring_queue_exit(&ring);
  return done == n ? 0 : 1;
}
