/* mp_os.h: the synchronous OS calls the bindings need, in portable terms.
 *
 * The bindings include no OS header: what they cannot do with an op
 * (mp.h) they do here. Every function returns >= 0 or an MP_E* code and
 * never sets or needs errno; handles are mp_handle_t. Implemented per
 * platform (runtime/*_unix.c). Each section has an owner on issue 9: add
 * to your own section only, so branches merge cleanly.
 */
#ifndef MP_OS_H_PUBLIC
#define MP_OS_H_PUBLIC

#include <stddef.h>
#include <stdint.h>

#include "mp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Files and paths (H2 files: runtime/fs_unix.c) ---- */

/* ---- Sockets and names (H3 net: runtime/net_unix.c) ---- */

/* ---- Memory, handles, threads, terminal (H4 tasks) ---- */

#ifdef __cplusplus
}
#endif
#endif
