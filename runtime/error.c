/* error.c: MP_E* names and messages, and errno mapping. */
#include <string.h>

#include "mp.h"

const char *mp_errname(int err) {
  switch (err) {
#define MP__NAME(name) case MP_##name: return #name;
    MP_ERRNO_MAP(MP__NAME)
#undef MP__NAME
    case MP_EOF: return "EOF";
    case MP_ECLOSED: return "closed";
    default: return "UNKNOWN";
  }
}

const char *mp_strerror(int err) {
  switch (err) {
    case MP_EOF: return "end of file";
    case MP_ECLOSED: return "closed";
    case 0: return "success";
    default: return err < 0 ? strerror(-err) : "unknown error";
  }
}
