/* error.c: MP_E* names and messages, and the mapping from errno and
 * getaddrinfo's EAI_* codes (Unix). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* EAI_NODATA, EAI_ADDRFAMILY */
#endif
#include <errno.h>
#include <netdb.h>
#include <string.h>

#include "mp.h"

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
    MP_ERRNO_MAP(MP__FROM)
#ifdef __linux__
    MP_ERRNO_MORE_MAP(MP__FROM)
#endif
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

/* The platform's code for an MP_E* errno code, 0 if none. */
static int to_errno(int err) {
  switch (err) {
#define MP__TO(name, num) case MP_##name: return name;
    MP_ERRNO_MAP(MP__TO)
#ifdef __linux__
    MP_ERRNO_MORE_MAP(MP__TO)
#endif
#undef MP__TO
    default: return 0;
  }
}

int mp_err_from_eai(int gai, int sys_errno) {
  switch (gai) {
    case 0: return 0;
    case EAI_SYSTEM:
      return sys_errno ? mp_err_from_errno(sys_errno) : MP_EAI_FAIL;
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

const char *mp_strerror(int err) {
  switch (err) {
    case MP_EOF: return "end of file";
    case MP_ECLOSED: return "closed";
    case MP_EUNKNOWN: return "unknown error";
    case 0: return "success";
    default: break;
  }
  if (err <= MP_EAI_ADDRFAMILY && err >= MP_EAI_SERVICE)
    return gai_strerror(to_eai(err));
  int e = to_errno(err);
  return e ? strerror(e) : "unknown error";
}
