/* os.h: the thin OS layer (clocks, threads, locks, wake descriptors), so
 * that the loop, timers and threadpool hold no platform code. */
#ifndef MP_OS_H
#define MP_OS_H

#include <stdint.h>

#ifdef _WIN32
/* Slim reader/writer locks and condition variables (no winpthreads:
 * the runtime links nothing but the system's DLLs). */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h> /* before windows.h, which would pull winsock 1 */
#include <windows.h>

#include "mp.h"

typedef SRWLOCK mp__mutex;
typedef CONDITION_VARIABLE mp__cond;
typedef HANDLE mp__thread;

int64_t mp__hrtime(void);          /* monotonic clock, ns */
int mp__cpu_count(void);
int mp__mutex_init(mp__mutex *m);
#define mp__mutex_lock(m) AcquireSRWLockExclusive(m)
#define mp__mutex_unlock(m) ReleaseSRWLockExclusive(m)
#define mp__mutex_destroy(m) ((void)(m)) /* SRW locks hold no resource */
int mp__cond_init(mp__cond *c);
#define mp__cond_wait(c, m) SleepConditionVariableSRW(c, m, INFINITE, 0)
#define mp__cond_signal(c) WakeConditionVariable(c)
#define mp__cond_broadcast(c) WakeAllConditionVariable(c)
#define mp__cond_destroy(c) ((void)(c))
int mp__thread_create(mp__thread *t, void *(*fn)(void *), void *arg);
void mp__thread_join(mp__thread t);

/* The IOCP backend wakes its loop with PostQueuedCompletionStatus: no
 * wake descriptor. Waits until the waitable handle h is signalled or
 * timeout_ns passes (-1: no limit); returns 1 if it is signalled. */
int mp__wakefd_wait(mp_handle_t h, int64_t timeout_ns);
void mp__close_fd(mp_handle_t h);
#else
#include <pthread.h>

typedef pthread_mutex_t mp__mutex;
typedef pthread_cond_t mp__cond;
typedef pthread_t mp__thread;

int64_t mp__hrtime(void);          /* monotonic clock, ns */
int mp__cpu_count(void);
int mp__mutex_init(mp__mutex *m);
#define mp__mutex_lock(m) pthread_mutex_lock(m)
#define mp__mutex_unlock(m) pthread_mutex_unlock(m)
#define mp__mutex_destroy(m) pthread_mutex_destroy(m)
int mp__cond_init(mp__cond *c);
#define mp__cond_wait(c, m) pthread_cond_wait(c, m)
#define mp__cond_signal(c) pthread_cond_signal(c)
#define mp__cond_broadcast(c) pthread_cond_broadcast(c)
#define mp__cond_destroy(c) pthread_cond_destroy(c)
/* Starts fn(arg) on a new thread with all signals blocked. */
int mp__thread_create(mp__thread *t, void *(*fn)(void *), void *arg);
void mp__thread_join(mp__thread t);

/* A wake descriptor (eventfd): signal is async-signal-safe and thread-safe;
 * drain resets it. */
int mp__wakefd_open(void);
void mp__wakefd_signal(int fd);
void mp__wakefd_drain(int fd);
/* Waits until fd is readable, a signal arrives or timeout_ns passes
 * (-1: no limit). Returns 1 if fd is readable. */
int mp__wakefd_wait(int fd, int64_t timeout_ns);
void mp__close_fd(int fd);
#endif /* _WIN32 */

#endif
