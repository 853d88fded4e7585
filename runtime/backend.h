/* backend.h: the seam every backend implements.
 *
 * Completion-shaped so that io_uring and IOCP fit directly and epoll can
 * emulate it: a backend starts ops, cancels them, and in wait() reports
 * each finished op exactly once through mp__op_complete. Timers, NOPs and
 * threadpool work never reach a backend; the loop handles them.
 */
#ifndef MP_BACKEND_H
#define MP_BACKEND_H

#include <stdint.h>

#include "mp.h"

struct mp_loop;
struct mp_op;

struct mp_backend {
  const char *name;
  /* Sets loop->bdata. Returns 0 or an MP_E* code (nothing left allocated). */
  int (*init)(struct mp_loop *loop);
  /* Called only when no op is in flight. */
  void (*close)(struct mp_loop *loop);
  /* Starts op (kind READ..CLOSE). 0, or an MP_E* code with op not started. */
  int (*submit)(struct mp_loop *loop, struct mp_op *op);
  /* Requests cancellation; the op still completes through wait(). */
  void (*cancel)(struct mp_loop *loop, struct mp_op *op);
  /* Waits up to timeout_ns (-1: forever, 0: poll) for completions and for
   * a wake; reports completions with mp__op_complete. */
  void (*wait)(struct mp_loop *loop, int64_t timeout_ns);
  /* Hands queued work to the kernel before the loop returns to its host,
   * which may sleep in poll(mp_loop_fd) rather than in wait(). May be NULL. */
  void (*flush)(struct mp_loop *loop);
  /* Before the host sleeps on mp_loop_fd (mp_loop_timeout): resets the
   * descriptor and reports what has completed meanwhile, so it turns
   * readable for anything later and stays quiet otherwise. May be NULL. */
  void (*arm)(struct mp_loop *loop);
  /* The backend's wake object. wake signals it: thread-safe and
   * async-signal-safe (mp_loop_wake calls it once per coalesced wake).
   * unwake resets it, before the loop takes posts; may be NULL. */
  void (*wake)(struct mp_loop *loop);
  void (*unwake)(struct mp_loop *loop);
  /* The handle hosts sleep on (mp_loop_fd): it turns readable when the
   * loop has work, a wake included. NULL when there is none (IOCP: a
   * completion port cannot be polled): mp_loop_fd is MP_INVALID_HANDLE,
   * and mp_loop_wait sleeps in wait(), which then must only queue
   * completions (never run callbacks). */
  mp_handle_t (*fd)(struct mp_loop *loop);
};

#ifdef _WIN32
extern const struct mp_backend mp__backend_iocp; /* backend_iocp.c */
#else
extern const struct mp_backend mp__backend_epoll;
#endif
#ifdef MP_WITH_URING
extern const struct mp_backend mp__backend_uring;
#endif

#endif
