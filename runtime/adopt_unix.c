/* adopt_unix.c: handles a process inherited (socket activation, a
 * parent's pipe), for mp.net.wrap. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "mp_internal.h"
#include "mp_os.h"

static int getint(int fd, int opt, int *v) {
  socklen_t len = sizeof *v;
  return getsockopt(fd, SOL_SOCKET, opt, v, &len) < 0
             ? mp_err_from_errno(errno) : 0;
}

int mp_os_adopt(mp_handle_t h, int *kind, int *family) {
  struct stat st;
  int type, domain, listening, r;
  if (fstat(h, &st) < 0) return mp_err_from_errno(errno);
  *family = MP_AF_UNSPEC;
  if (S_ISFIFO(st.st_mode)) {
    *kind = MP_HK_PIPE;
  } else if (S_ISSOCK(st.st_mode)) {
    if ((r = getint(h, SO_TYPE, &type)) < 0 ||
        (r = getint(h, SO_DOMAIN, &domain)) < 0 ||
        (r = getint(h, SO_ACCEPTCONN, &listening)) < 0)
      return r;
    if (domain == AF_INET) *family = MP_AF_INET;
    else if (domain == AF_INET6) *family = MP_AF_INET6;
    else if (domain == AF_UNIX) *family = MP_AF_UNIX;
    else return MP_EAFNOSUPPORT;
    if (type == SOCK_STREAM) *kind = listening ? MP_HK_LISTENER
                                               : MP_HK_STREAM;
    else if (type == SOCK_DGRAM) *kind = MP_HK_DGRAM;
    else return MP_EPROTOTYPE;
  } else {
    return MP_ENOTSOCK;
  }
  /* The close-on-exec flag is the descriptor's own, never shared. */
  if (fcntl(h, F_SETFD, FD_CLOEXEC) < 0) return mp_err_from_errno(errno);
  return 0;
}
