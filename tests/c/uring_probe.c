/* uring_probe.c: configure-time check that this kernel lets us use
 * io_uring (it may be refused by seccomp, disabled by sysctl, or too old),
 * so the io_uring test variants are only registered where they can run. */
#include <liburing.h>

int main(void) {
  struct io_uring ring;
  if (io_uring_queue_init(8, &ring, 0) < 0) return 1;
  io_uring_queue_exit(&ring);
  return 0;
}
