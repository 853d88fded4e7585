/* files_c.c: the plain C baselines for bench/files.sh.
 *   files_c read PATH        read PATH in 64 KiB chunks with read(2)
 *   files_c readcopy PATH    the same, each chunk then copied into a fresh
 *                            malloc'd block (what a string API must do)
 *   files_c small DIR N      open+read+close DIR/f<i> (4 KiB), sequential
 * Prints the elapsed milliseconds. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  static char buf[65536];
  long long total = 0;
  double t0 = now_ms();
  if (argc == 3 && strcmp(argv[1], "read") == 0) {
    int fd = open(argv[2], O_RDONLY);
    ssize_t n;
    if (fd < 0) return perror(argv[2]), 1;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
    close(fd);
  } else if (argc == 3 && strcmp(argv[1], "readcopy") == 0) {
    int fd = open(argv[2], O_RDONLY);
    ssize_t n;
    if (fd < 0) return perror(argv[2]), 1;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
      char *copy = malloc((size_t)n);
      if (!copy) return perror("malloc"), 1;
      memcpy(copy, buf, (size_t)n);
      __asm__ volatile("" : : "r"(copy) : "memory"); /* the copy is kept */
      free(copy);
      total += n;
    }
    close(fd);
  } else if (argc == 4 && strcmp(argv[1], "small") == 0) {
    int n = atoi(argv[3]);
    char path[4096];
    for (int i = 1; i <= n; i++) {
      snprintf(path, sizeof path, "%s/f%d", argv[2], i);
      int fd = open(path, O_RDONLY);
      if (fd < 0) return perror(path), 1;
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) total += r;
      close(fd);
    }
  } else {
    fprintf(stderr, "usage: files_c read|readcopy PATH | small DIR N\n");
    return 2;
  }
  printf("%.1f %lld\n", now_ms() - t0, total);
  return 0;
}
