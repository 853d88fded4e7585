/* error.c: MP_E* names and messages, and the mapping from errno and
 * getaddrinfo's EAI_* codes (Unix; on Windows the C runtime's errno and
 * Winsock's EAI_*, with Linux's texts from strerror_win.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* EAI_NODATA, EAI_ADDRFAMILY */
#endif
#include <errno.h>
#include <string.h>
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netdb.h>
#endif

#include "mp.h"

#ifdef _WIN32
/* The C runtime's errno names (mingw-w64's errno.h), all of them that
 * have an MP_E* twin. */
#define MP__ERRNO_NATIVE(X)                                                  \
  X(EPERM, 1) X(ENOENT, 2) X(ESRCH, 3) X(EINTR, 4) X(EIO, 5) X(ENXIO, 6)     \
  X(E2BIG, 7) X(ENOEXEC, 8) X(EBADF, 9) X(ECHILD, 10) X(EAGAIN, 11)          \
  X(ENOMEM, 12) X(EACCES, 13) X(EFAULT, 14) X(EBUSY, 16) X(EEXIST, 17)       \
  X(EXDEV, 18) X(ENODEV, 19) X(ENOTDIR, 20) X(EISDIR, 21) X(EINVAL, 22)      \
  X(ENFILE, 23) X(EMFILE, 24) X(ENOTTY, 25) X(ETXTBSY, 26) X(EFBIG, 27)      \
  X(ENOSPC, 28) X(ESPIPE, 29) X(EROFS, 30) X(EMLINK, 31) X(EPIPE, 32)        \
  X(ERANGE, 34) X(EDEADLK, 35) X(ENAMETOOLONG, 36) X(ENOLCK, 37)             \
  X(ENOSYS, 38) X(ENOTEMPTY, 39) X(ELOOP, 40) X(EPROTO, 71)                  \
  X(EOVERFLOW, 75) X(EILSEQ, 84) X(ENOTSOCK, 88) X(EDESTADDRREQ, 89)         \
  X(EMSGSIZE, 90) X(EPROTOTYPE, 91) X(ENOPROTOOPT, 92)                       \
  X(EPROTONOSUPPORT, 93) X(EOPNOTSUPP, 95) X(EAFNOSUPPORT, 97)               \
  X(EADDRINUSE, 98) X(EADDRNOTAVAIL, 99) X(ENETDOWN, 100)                    \
  X(ENETUNREACH, 101) X(ECONNABORTED, 103) X(ECONNRESET, 104)                \
  X(ENOBUFS, 105) X(EISCONN, 106) X(ENOTCONN, 107) X(ETIMEDOUT, 110)         \
  X(ECONNREFUSED, 111) X(EHOSTUNREACH, 113) X(EALREADY, 114)                 \
  X(EINPROGRESS, 115) X(ECANCELED, 125) X(EDOM, 33) X(ENOMSG, 42)            \
  X(EIDRM, 43) X(ENODATA, 61) X(ETIME, 62) X(ENOSR, 63) X(ENOSTR, 60)        \
  X(ENOLINK, 67) X(EBADMSG, 74) X(ENETRESET, 102) X(EOWNERDEAD, 130)         \
  X(ENOTRECOVERABLE, 131)
const char *mp__strerror_text(int err); /* strerror_win.c */
#elif defined(__linux__)
#define MP__ERRNO_NATIVE(X) MP_ERRNO_MAP(X) MP_ERRNO_MORE_MAP(X)
#else
#define MP__ERRNO_NATIVE(X) MP_ERRNO_MAP(X)
#endif

#ifdef __linux__
/* The MP_E* values are Linux's errno values: mapping is the identity. */
#define MP__SAME(name, num) _Static_assert(MP_##name == -(name), #name);
MP_ERRNO_MAP(MP__SAME)
MP_ERRNO_MORE_MAP(MP__SAME)
#undef MP__SAME
#endif

#ifndef EAI_NODATA
#define EAI_NODATA EAI_NONAME
#endif
#ifndef EAI_ADDRFAMILY
#define EAI_ADDRFAMILY EAI_FAMILY
#endif

const char *mp_errname(int err) {
  switch (err) {
#define MP__NAME(name, num) case MP_##name: return #name;
    MP_ERRNO_MAP(MP__NAME)
    MP_ERRNO_MORE_MAP(MP__NAME)
    MP_EAI_MAP(MP__NAME)
#undef MP__NAME
    case MP_EOF: return "EOF";
    case MP_ECLOSED: return "closed";
    default: return "UNKNOWN";
  }
}

int mp_err_from_errno(int e) {
  switch (e) {
    case 0: return 0;
#define MP__FROM(name, num) case name: return MP_##name;
    MP__ERRNO_NATIVE(MP__FROM)
#undef MP__FROM
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK: return MP_EAGAIN;
#endif
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
    case ENOTSUP: return MP_EOPNOTSUPP;
#endif
    default: return MP_EUNKNOWN;
  }
}

#ifndef _WIN32
/* The platform's code for an MP_E* errno code, 0 if none. */
static int to_errno(int err) {
  switch (err) {
#define MP__TO(name, num) case MP_##name: return name;
    MP__ERRNO_NATIVE(MP__TO)
#undef MP__TO
    default: return 0;
  }
}
#endif

int mp_err_from_eai(int gai, int sys_errno) {
  (void)sys_errno; /* no EAI_SYSTEM on Windows */
  switch (gai) {
    case 0: return 0;
#ifdef EAI_SYSTEM
    case EAI_SYSTEM:
      return sys_errno ? mp_err_from_errno(sys_errno) : MP_EAI_FAIL;
#endif
    case EAI_NONAME: return MP_EAI_NONAME;
    case EAI_AGAIN: return MP_EAI_AGAIN;
    case EAI_MEMORY: return MP_EAI_MEMORY;
    case EAI_FAMILY: return MP_EAI_FAMILY;
    case EAI_SERVICE: return MP_EAI_SERVICE;
#if EAI_NODATA != EAI_NONAME
    case EAI_NODATA: return MP_EAI_NODATA;
#endif
#if EAI_ADDRFAMILY != EAI_FAMILY
    case EAI_ADDRFAMILY: return MP_EAI_ADDRFAMILY;
#endif
    default: return MP_EAI_FAIL; /* EAI_FAIL, and codes with no name */
  }
}

#ifndef _WIN32
static int to_eai(int err) {
  switch (err) {
    case MP_EAI_NONAME: return EAI_NONAME;
    case MP_EAI_AGAIN: return EAI_AGAIN;
    case MP_EAI_MEMORY: return EAI_MEMORY;
    case MP_EAI_FAMILY: return EAI_FAMILY;
    case MP_EAI_SERVICE: return EAI_SERVICE;
    case MP_EAI_NODATA: return EAI_NODATA;
    case MP_EAI_ADDRFAMILY: return EAI_ADDRFAMILY;
    default: return EAI_FAIL;
  }
}
#endif

const char *mp_strerror(int err) {
  switch (err) {
    case MP_EOF: return "end of file";
    case MP_ECLOSED: return "closed";
    case MP_EUNKNOWN: return "unknown error";
    case 0: return "success";
    default: break;
  }
#ifdef _WIN32
  return mp__strerror_text(err); /* the C runtime's texts differ */
#else
  if (err <= MP_EAI_ADDRFAMILY && err >= MP_EAI_SERVICE)
    return gai_strerror(to_eai(err));
  int e = to_errno(err);
  return e ? strerror(e) : "unknown error";
#endif
}
