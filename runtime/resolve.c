/* resolve.c: the portable half of name resolution: which names may reach
 * the resolver at all, and MP_OP_GETADDRINFO's record (its body,
 * mp_os_getaddrinfo, is per platform: net_unix.c, net_win.c). */
#include <string.h>

#include "mp_internal.h"
#include "mp_os.h"

enum { MAX_NAME = 253 };

/* Host names as RFC 1123 allows (letters, digits, '-', '_', dots): an
 * invalid name fails at once, never reaching the resolver (which might
 * send it to a DNS server). */
static int valid_name(const char *h) {
  size_t n = strlen(h), label = 0;
  if (n == 0 || n > MAX_NAME) return 0;
  if (strspn(h, "0123456789.") == n) return 0; /* a bad IPv4 literal */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)h[i];
    if (c == '.') {
      if (label == 0) return 0;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-' || c == '_') {
      if (++label > 63) return 0;
    } else {
      return 0;
    }
  }
  return 1;
}

/* MP_EAI_NONAME for a name the resolver must not see. */
int mp__check_name(const char *host, int flags) {
  if (!host || !host[0] || (flags & MP_AI_NUMERICHOST)) return 0;
  return valid_name(host) ? 0 : MP_EAI_NONAME;
}

int mp_op_prep_getaddrinfo(struct mp_op *op, const char *host, int port,
                           int family, int flags) {
  size_t n = host ? strlen(host) : 0;
  int err = mp__check_name(host, flags);
  if (err < 0) return err;
  if (n >= sizeof ((struct mp__gai_job *)0)->host) return MP_EAI_NONAME;
  struct mp__gai_job *j = mp__op_priv(op, sizeof *j);
  if (!j) return MP_ENOMEM;
  memcpy(j->host, n ? host : "", n + 1);
  j->port = port;
  j->family = family;
  j->flags = flags;
  op->kind = MP_OP_GETADDRINFO;
  return 0;
}

const struct mp_addr *mp_op_addrs(struct mp_op *op) {
  return ((struct mp__gai_job *)op->priv)->addrs;
}

void mp__getaddrinfo_run(struct mp_op *op) {
  struct mp__gai_job *j = op->priv;
  op->result = mp_os_getaddrinfo(j->host, j->port, j->family, j->flags,
                                 j->addrs, MP_ADDRS_MAX);
}
