/* adopt_win.c: handles a process inherited (a parent's socket or pipe),
 * for mp.net.wrap, on Windows. A socket answers getsockopt (a pipe does
 * not, though GetFileType calls both FILE_TYPE_PIPE); its family comes
 * from its protocol info. An inherited pipe may have been opened for
 * synchronous IO only: then the IOCP backend cannot read it. */
#include <winsock2.h>
#include <windows.h>

#include "mp_internal.h"
#include "mp_os.h"

int mp__net_init(void); /* net_win.c */


static int getint(SOCKET s, int opt, int *v) {
  int len = sizeof *v;
  return getsockopt(s, SOL_SOCKET, opt, (char *)v, &len)
             ? mp_err_from_win((unsigned long)WSAGetLastError()) : 0;
}

int mp_os_adopt(mp_handle_t h, int *kind, int *family) {
  SOCKET s = (SOCKET)(uintptr_t)h;
  WSAPROTOCOL_INFOW pi;
  int type, listening, r, len = sizeof pi;
  *family = MP_AF_UNSPEC;
  if (h == NULL || h == MP_INVALID_HANDLE) return MP_EBADF;
  if ((r = mp__net_init()) < 0) return r;
  if (getint(s, SO_TYPE, &type) == 0) {
    if ((r = getint(s, SO_ACCEPTCONN, &listening)) < 0) return r;
    if (getsockopt(s, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&pi, &len))
      return mp_err_from_win((unsigned long)WSAGetLastError());
    if (pi.iAddressFamily == AF_INET) *family = MP_AF_INET;
    else if (pi.iAddressFamily == AF_INET6) *family = MP_AF_INET6;
    else if (pi.iAddressFamily == AF_UNIX) *family = MP_AF_UNIX;
    else return MP_EAFNOSUPPORT;
    if (type == SOCK_STREAM) *kind = listening ? MP_HK_LISTENER
                                               : MP_HK_STREAM;
    else if (type == SOCK_DGRAM) *kind = MP_HK_DGRAM;
    else return MP_EPROTOTYPE;
  } else {
    DWORD t = GetFileType(h), f;
    if (!GetHandleInformation(h, &f)) return MP_EBADF; /* none at all */
    if (t != FILE_TYPE_PIPE) return MP_ENOTSOCK; /* a file, an event */
    *kind = MP_HK_PIPE;
  }
  /* Not inherited by our own children (the flag is the handle's own). */
  if (!SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0))
    return mp_err_from_win(GetLastError());
  return 0;
}
