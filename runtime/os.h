/* os.h: the thin OS layer (clocks, threads, locks, wake descriptors), so
 * that the loop, timers and threadpool hold no platform code. */
#ifndef MP_OS_H
#define MP_OS_H

#include <stdint.h>
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

#endif
