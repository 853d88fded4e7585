/* zerocopy_c.c: the C peers of bench/zerocopy.sh, the same syscalls
 * moonport makes, in plain loops:
 *   zerocopy_c copy SRC DST        copy_file_range until the end
 *   zerocopy_c sendfile FILE PORT  connect to 127.0.0.1:PORT, sendfile
 *                                  until the end
 *   zerocopy_c drain PORT          accept one connection on 127.0.0.1:PORT
 *                                  (prints "ready"), read until EOF,
 *                                  print the byte count */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct sockaddr_in addr(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "copy") == 0) {
    int in = open(argv[2], O_RDONLY), out;
    struct stat st;
    if (in < 0 || fstat(in, &st) < 0) return perror(argv[2]), 1;
    out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, st.st_mode & 0777);
    if (out < 0) return perror(argv[3]), 1;
    ssize_t n;
    while ((n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0)) > 0) {}
    if (n < 0) return perror("copy_file_range"), 1;
    return close(out) < 0;
  }
  if (argc == 4 && strcmp(argv[1], "sendfile") == 0) {
    int in = open(argv[2], O_RDONLY);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = addr(atoi(argv[3]));
    if (in < 0 || s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0)
      return perror("sendfile setup"), 1;
    off_t off = 0;
    ssize_t n;
    while ((n = sendfile(s, in, &off, 1 << 30)) > 0) {}
    if (n < 0) return perror("sendfile"), 1;
    return close(s) < 0;
  }
  if (argc == 3 && strcmp(argv[1], "drain") == 0) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = addr(atoi(argv[2]));
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0)
      return perror("drain"), 1;
    printf("ready\n");
    fflush(stdout);
    int c = accept(l, NULL, NULL);
    static char buf[1 << 20];
    long long total = 0;
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) total += n;
    printf("%lld\n", total);
    return 0;
  }
  fprintf(stderr, "usage: see zerocopy_c.c\n");
  return 2;
}
