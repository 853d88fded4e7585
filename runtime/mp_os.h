/* mp_os.h: the synchronous OS calls the bindings need, in portable terms.
 *
 * The bindings include no OS header: what they cannot do with an op
 * (mp.h) they do here. Every function returns >= 0 or an MP_E* code and
 * never sets or needs errno; handles are mp_handle_t. Implemented per
 * platform (runtime/..._unix.c). Each section has an owner on issue 9: add
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

/* Closes h (EINTR counts as closed: the descriptor is gone on Linux). */
int mp_os_close(mp_handle_t h);
/* The open handle's metadata (no disk IO: the in-memory inode). */
int mp_os_fstat(mp_handle_t h, struct mp_stat *st);
enum { MP_SEEK_SET, MP_SEEK_CUR, MP_SEEK_END };
/* Moves the handle's own position; returns the new offset. */
int64_t mp_os_seek(mp_handle_t h, int64_t off, int whence);
/* Blocking write of up to len bytes at off (-1: at the handle's position);
 * returns the count written (retries EINTR). For __gc flushes only. */
int64_t mp_os_pwrite(mp_handle_t h, const void *buf, size_t len,
                     int64_t off);
/* 1 if h is a terminal, else 0. */
int mp_os_isatty(mp_handle_t h);
/* The process's standard handle 0, 1 or 2 (stdin, stdout, stderr). */
mp_handle_t mp_os_stdhandle(int which);

/* ---- Sockets and names (H3 net: runtime/net_unix.c) ---- */

/* ---- Memory, handles, threads, terminal (H4 tasks) ---- */

#ifdef __cplusplus
}
#endif
#endif
