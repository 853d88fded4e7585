/* uring_probe.c: configure-time check that this kernel lets us use
 * io_uring (it may be refused by seccomp, disabled by sysctl, or too old),
 * so the io_uring test variants are only registered where they can run.
 * Exit 1: refused (ENOSYS, EPERM, EACCES), final; anything else (ENOMEM,
 * EAGAIN: rings of tests running meanwhile) is retried for two seconds,
 * then exit 2, and the variants are kept (tests/CMakeLists.txt): a busy
 * machine must not drop every io_uring variant. */
#include <errno.h>
#include <liburing.h>
#include <time.h>

int main(void) {
  struct timespec pause = {0, 100 * 1000 * 1000};
  for (int i = 0; i < 20; i++) {
    struct io_uring ring;
    int r = io_uring_queue_init(8, &ring, 0);
    if (r == 0) {
      io_uring_queue_exit(&ring);
      return 0;
    }
    if (r == -ENOSYS || r == -EPERM || r == -EACCES) return 1;
    nanosleep(&pause, NULL);
  }
  return 2;
}
