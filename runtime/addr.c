/* addr.c: struct mp_addr, the same on every system (the socket address
 * structures are; only the type names and Winsock's start differ). */
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
typedef u_short PORT_T;
typedef ADDRESS_FAMILY FAMILY_T;
int mp__net_init(void); /* net_win.c: Winsock started, once */
#define NET_READY() mp__net_init()
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
typedef uint16_t PORT_T;
typedef sa_family_t FAMILY_T;
#define NET_READY() 0
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mp_internal.h"
#include "mp_os.h"

int mp_addr_ip(struct mp_addr *a, const char *ip, int port) {
  memset(a, 0, sizeof *a);
  if (port < 0 || port > 65535 || NET_READY() < 0) return MP_EINVAL;
  struct sockaddr_in *in = (struct sockaddr_in *)a->sa.b;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)a->sa.b;
  if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons((PORT_T)port);
    a->len = sizeof *in;
    return 0;
  }
  if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((PORT_T)port);
    a->len = sizeof *in6;
    return 0;
  }
  memset(a, 0, sizeof *a);
  return MP_EINVAL;
}

int mp_addr_unix(struct mp_addr *a, const char *path, size_t len) {
  struct sockaddr_un *un = (struct sockaddr_un *)a->sa.b;
  memset(a, 0, sizeof *a);
  if (len == 0 || memchr(path, '\0', len)) return MP_EINVAL;
  if (len >= sizeof un->sun_path) return MP_ENAMETOOLONG;
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, path, len);
  a->len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
  return 0;
}

int mp_addr_family(const struct mp_addr *a) {
  FAMILY_T f;
  if (a->len < sizeof f || a->len > sizeof a->sa.b) return MP_EINVAL;
  memcpy(&f, a->sa.b + offsetof(struct sockaddr, sa_family), sizeof f);
  if (f == AF_INET && a->len == sizeof(struct sockaddr_in))
    return MP_AF_INET;
  if (f == AF_INET6 && a->len == sizeof(struct sockaddr_in6))
    return MP_AF_INET6;
  if (f == AF_UNIX && a->len <= sizeof(struct sockaddr_un))
    return MP_AF_UNIX;
  return MP_EINVAL;
}

int mp_addr_format(const struct mp_addr *a, char *host, size_t size,
                   int *port) {
  int family = mp_addr_family(a);
  char text[INET6_ADDRSTRLEN] = "";
  *port = -1;
  if (size) host[0] = '\0';
  if (family == MP_AF_INET) {
    struct sockaddr_in in;
    memcpy(&in, a->sa.b, sizeof in);
    if (NET_READY() == 0)
      inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
    *port = ntohs(in.sin_port);
  } else if (family == MP_AF_INET6) {
    struct sockaddr_in6 in6;
    memcpy(&in6, a->sa.b, sizeof in6);
    if (NET_READY() == 0)
      inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    *port = ntohs(in6.sin6_port);
  } else if (family == MP_AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)a->sa.b;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = a->len > off ? a->len - off : 0;
    n = strnlen(un->sun_path, n); /* an abstract name reads as unnamed */
    if (size) snprintf(host, size, "%.*s", (int)n, un->sun_path);
    return family;
  } else {
    return MP_EINVAL;
  }
  if (size) snprintf(host, size, "%s", text);
  return family;
}
