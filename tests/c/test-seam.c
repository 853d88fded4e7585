/* test-seam.c: the portable seam of the core: MP_E* codes and their
 * mapping, the op's handle, owned memory with a destructor, and
 * mp_loop_wait for hosts. */
#include <errno.h>
#include <netdb.h>
#include <time.h>
#include <unistd.h>

#include "task.h"

/* Every errno with a name maps to it, and back to strerror's very text
 * (the messages Lua's io gives); the others become MP_EUNKNOWN. */
TEST_IMPL(err_errno_round_trip) {
  int named = 0;
  ASSERT_EQ(mp_err_from_errno(0), 0);
  for (int e = 1; e < 4096; e++) {
    int m = mp_err_from_errno(e);
    ASSERT_LT(m, 0);
    if (m == MP_EUNKNOWN) {
      ASSERT_EQ(strcmp(mp_errname(m), "UNKNOWN"), 0);
      continue;
    }
    named++;
    ASSERT_EQ(strcmp(mp_strerror(m), strerror(e)), 0);
    ASSERT_EQ(mp_errname(m)[0], 'E');
    ASSERT_NE(strcmp(mp_errname(m), "UNKNOWN"), 0);
  }
  ASSERT_GE(named, 60);
  ASSERT_EQ(mp_err_from_errno(ENOENT), MP_ENOENT);
  ASSERT_EQ(strcmp(mp_errname(MP_ENOENT), "ENOENT"), 0);
  ASSERT_EQ(mp_err_from_errno(EWOULDBLOCK), MP_EAGAIN);
  ASSERT_EQ(mp_err_from_errno(EPROTO), MP_EPROTO);
  ASSERT_EQ(strcmp(mp_errname(MP_EPROTO), "EPROTO"), 0);
  ASSERT_EQ(mp_err_from_errno(EDQUOT), MP_EDQUOT);
  ASSERT_EQ(strcmp(mp_strerror(MP_EDQUOT), strerror(EDQUOT)), 0);
  /* the fixed values: Linux's, whatever the platform */
  ASSERT_EQ(MP_ENOENT, -2);
  ASSERT_EQ(MP_ECONNREFUSED, -111);
  ASSERT_EQ(MP_ECANCELED, -125);
  /* the codes of moonport's own */
  ASSERT_EQ(strcmp(mp_errname(MP_EOF), "EOF"), 0);
  ASSERT_EQ(strcmp(mp_strerror(MP_EOF), "end of file"), 0);
  ASSERT_EQ(strcmp(mp_errname(MP_ECLOSED), "closed"), 0);
  ASSERT_EQ(strcmp(mp_strerror(MP_EUNKNOWN), "unknown error"), 0);
  ASSERT_EQ(strcmp(mp_strerror(0), "success"), 0);
  return 0;
}

/* On Linux no errno the C library describes loses its text: before the
 * seam every -errno reached strerror, so a code the table did not name
 * ("Host is down", "Structure needs cleaning") still read as the system
 * says, as Lua's io shows it. */
TEST_IMPL(err_linux_errnos_keep_text) {
#ifdef __linux__
  for (int e = 1; e < 4096; e++) {
    char unknown[64];
    snprintf(unknown, sizeof unknown, "Unknown error %d", e);
    if (strcmp(strerror(e), unknown) == 0) continue; /* none by that number */
    int m = mp_err_from_errno(e);
    if (m == MP_EUNKNOWN)
      fprintf(stderr, "errno %d (%s) has no MP_E* code\n", e, strerror(e));
    ASSERT_NE(m, MP_EUNKNOWN);
    ASSERT_EQ(m, -e);
    ASSERT_EQ(strcmp(mp_strerror(m), strerror(e)), 0);
  }
  ASSERT_EQ(strcmp(mp_errname(mp_err_from_errno(EHOSTDOWN)), "EHOSTDOWN"),
            0);
#endif
  return 0;
}

/* getaddrinfo's codes join the one table: a name, gai_strerror's text,
 * and EAI_SYSTEM carries its errno. */
TEST_IMPL(err_eai_mapping) {
  static const struct { int gai, mp; const char *name; } map[] = {
    {EAI_NONAME, MP_EAI_NONAME, "EAI_NONAME"},
    {EAI_AGAIN, MP_EAI_AGAIN, "EAI_AGAIN"},
    {EAI_FAIL, MP_EAI_FAIL, "EAI_FAIL"},
    {EAI_MEMORY, MP_EAI_MEMORY, "EAI_MEMORY"},
    {EAI_FAMILY, MP_EAI_FAMILY, "EAI_FAMILY"},
    {EAI_SERVICE, MP_EAI_SERVICE, "EAI_SERVICE"},
    {EAI_NODATA, MP_EAI_NODATA, "EAI_NODATA"},
    {EAI_ADDRFAMILY, MP_EAI_ADDRFAMILY, "EAI_ADDRFAMILY"},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
    int m = mp_err_from_eai(map[i].gai, 0);
    ASSERT_EQ(m, map[i].mp);
    ASSERT_EQ(strcmp(mp_errname(m), map[i].name), 0);
    ASSERT_EQ(strcmp(mp_strerror(m), gai_strerror(map[i].gai)), 0);
  }
  ASSERT_EQ(mp_err_from_eai(0, 0), 0);
  ASSERT_EQ(mp_err_from_eai(EAI_SYSTEM, ECONNREFUSED), MP_ECONNREFUSED);
  ASSERT_EQ(mp_err_from_eai(EAI_SYSTEM, 0), MP_EAI_FAIL);
  ASSERT_EQ(mp_err_from_eai(12345, 0), MP_EAI_FAIL); /* no name: FAIL */
  /* no resolver code collides with an errno code */
  for (int e = 1; e < 4096; e++)
    ASSERT(mp_err_from_errno(e) > MP_EAI_ADDRFAMILY ||
           mp_err_from_errno(e) == MP_EUNKNOWN);
  return 0;
}

static void read_cb(struct mp_op *op) {
  *(int64_t *)op->data = op->result;
  mp_op_release(op);
}

/* An op carries its handle in op->handle: unset it is invalid, the prep
 * functions set it, and the backend works on it. */
TEST_IMPL(op_handle_field) {
  struct mp_loop *loop = test_loop();
  int64_t got = 1;
  int p[2];
  char buf[8];
  ASSERT_EQ(pipe(p), 0);
  struct mp_op *op = mp_op_new(loop, read_cb, &got);
  ASSERT_EQ(op->handle, MP_INVALID_HANDLE);
  mp_op_prep_read(op, p[0], buf, sizeof buf, -1);
  ASSERT_EQ(op->handle, p[0]);
  ASSERT_EQ(write(p[1], "hey", 3), 3);
  ASSERT_EQ(mp_op_submit(op), 0);
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_DEFAULT), 0);
  ASSERT_EQ(got, 3);
  ASSERT_EQ(memcmp(buf, "hey", 3), 0);
  /* an op left with no handle fails cleanly, through the MP_E* codes */
  op = mp_op_new(loop, read_cb, &got);
  mp_op_prep_read(op, MP_INVALID_HANDLE, buf, sizeof buf, -1);
  int r = mp_op_submit(op);
  if (r == 0) ASSERT_EQ(mp_loop_run(loop, MP_RUN_DEFAULT), 0);
  else mp_op_release(op), got = r;
  ASSERT_EQ(got, MP_EBADF);
  close(p[0]);
  close(p[1]);
  CLOSE_LOOP(loop);
  return 0;
}

struct owned_count {
  int freed;
  void *last;
};
static struct owned_count owned_counts;

static void count_free(void *p) {
  owned_counts.freed++;
  owned_counts.last = p;
}

static void nop_cb(struct mp_op *op) {
  *(int64_t *)op->data = op->result;
  mp_op_release(op);
}

static void own_destructor_run(void) {
  struct mp_loop *loop = test_loop();
  static char a[32], b[32];
  int64_t got = -1;
  memset(&owned_counts, 0, sizeof owned_counts);
  /* released: the destructor runs once, with the pointer */
  struct mp_op *op = mp_op_new(loop, nop_cb, &got);
  mp_op_own(op, a, count_free);
  mp_op_own(op, a, count_free); /* the same memory again: kept */
  ASSERT_EQ(owned_counts.freed, 0);
  mp_op_prep_nop(op);
  op->result = 42; /* submit zeroes it */
  ASSERT_EQ(mp_op_submit(op), 0);
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_DEFAULT), 0);
  ASSERT_EQ(got, 0);
  ASSERT_EQ(owned_counts.freed, 1);
  ASSERT(owned_counts.last == (void *)a);
  /* owning something else frees the old at once, through its own
   * destructor; plain malloc memory (NULL) goes to free */
  op = mp_op_new(loop, nop_cb, &got);
  mp_op_own(op, a, count_free);
  mp_op_own(op, b, count_free);
  ASSERT_EQ(owned_counts.freed, 2);
  ASSERT(owned_counts.last == (void *)a);
  mp_op_own(op, malloc(100), NULL);
  ASSERT_EQ(owned_counts.freed, 3);
  ASSERT(owned_counts.last == (void *)b);
  mp_op_own(op, a, count_free);
  /* a prep that copies (paths) keeps its copy apart: owned memory stays
   * the submitter's, whatever preps follow one another */
  ASSERT_EQ(mp_op_prep_unlink(op, "x"), 0);
  ASSERT_EQ(mp_op_prep_rename(op, "x", "y"), 0);
  ASSERT_EQ(mp_op_prep_readdir(op, "."), 0);
  ASSERT_EQ(mp_op_prep_writefile(op, "x", "data", 4), 0);
  ASSERT_EQ(mp_op_prep_stat(op, "x", 0), 0);
  ASSERT_EQ(owned_counts.freed, 3);
  ASSERT(op->owned == a && op->owned_free == count_free);
  mp_op_own(op, b, count_free); /* a goes through its destructor */
  ASSERT_EQ(owned_counts.freed, 4);
  mp_op_release(op);
  ASSERT_EQ(owned_counts.freed, 5);
  ASSERT(owned_counts.last == (void *)b);
  /* an op from mp_op_init (a post) frees its owned memory the same way */
  struct mp_op post;
  mp_op_init(&post, nop_cb, &got);
  mp_op_own(&post, a, count_free);
  mp_op_release(&post);
  ASSERT_EQ(owned_counts.freed, 6);
  CLOSE_LOOP(loop);
}

/* op->owned with a destructor: called exactly once, on release or when
 * the op comes to own something else (mp_op_own); never by a prep. */
TEST_IMPL(op_own_destructor) {
  own_destructor_run();
  /* the same with the debug buffer checks (poison, quarantine), which
   * must not poison or free memory that has a destructor of its own */
  setenv("MOONPORT_DEBUG_BUFFERS", "1", 1);
  own_destructor_run();
  return 0;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct poster {
  struct mp_loop *loop;
  struct mp_op op;
  int ms;
};

static void *post_later(void *arg) {
  struct poster *p = arg;
  usleep((useconds_t)p->ms * 1000);
  mp_loop_post(p->loop, &p->op);
  return NULL;
}

static int posted;
static void post_cb(struct mp_op *op) {
  posted++;
  mp_op_release(op);
}

/* A host sleeps in mp_loop_wait: a post from another thread wakes it
 * long before its timeout, and the next run takes the post. */
TEST_IMPL(loop_wait_post) {
  struct mp_loop *loop = test_loop();
  struct poster p = {.loop = loop, .ms = 50};
  pthread_t t;
  posted = 0;
  mp_op_init(&p.op, post_cb, NULL);
  /* nothing pending: the timeout ends the wait */
  double t0 = now_ms();
  ASSERT_EQ(mp_loop_wait(loop, 30), 0);
  ASSERT_GE(now_ms() - t0, 25);
  ASSERT_EQ(pthread_create(&t, NULL, post_later, &p), 0);
  t0 = now_ms();
  ASSERT_EQ(mp_loop_wait(loop, 20000), 1);
  ASSERT_LT(now_ms() - t0, 10000);
  pthread_join(t, NULL);
  ASSERT_EQ(posted, 0); /* waiting runs nothing */
  mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(posted, 1);
  /* the post is taken: the next wait sleeps again (no spin) */
  ASSERT_EQ(mp_loop_wait(loop, 20), 0);
  /* a wake alone wakes it too */
  mp_loop_wake(loop);
  ASSERT_EQ(mp_loop_wait(loop, 20000), 1);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  CLOSE_LOOP(loop);
  return 0;
}

static void timer_cb(struct mp_op *op) {
  (*(int *)op->data)++;
  mp_op_release(op);
}

/* A pending timer ends an unlimited wait when it is due, and a
 * completion (a pipe turning readable under a read) ends it too. */
TEST_IMPL(loop_wait_timer) {
  struct mp_loop *loop = test_loop();
  int fired = 0;
  struct mp_op *op = mp_op_new(loop, timer_cb, &fired);
  double t0 = now_ms();
  mp_loop_update_time(loop); /* the timer counts from now, not creation */
  mp_op_prep_timer(op, 40 * 1000000);
  ASSERT_EQ(mp_op_submit(op), 0);
  ASSERT_EQ(mp_loop_wait(loop, -1), 1);
  ASSERT_GE(now_ms() - t0, 35);
  ASSERT_LT(now_ms() - t0, 10000);
  mp_loop_run(loop, MP_RUN_NOWAIT);
  ASSERT_EQ(fired, 1);
  /* a shorter limit than the timer wins, and says so */
  op = mp_op_new(loop, timer_cb, &fired);
  mp_op_prep_timer(op, 10000 * 1000000LL);
  ASSERT_EQ(mp_op_submit(op), 0);
  ASSERT_EQ(mp_loop_wait(loop, 20), 0);
  mp_op_cancel(op);
  ASSERT_EQ(mp_loop_run(loop, MP_RUN_DEFAULT), 0);
  /* a completion */
  int p[2];
  char buf[4];
  int64_t got = 0;
  ASSERT_EQ(pipe(p), 0);
  op = mp_op_new(loop, read_cb, &got);
  mp_op_prep_read(op, p[0], buf, sizeof buf, -1);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_run(loop, MP_RUN_NOWAIT); /* hands it to the kernel */
  ASSERT_EQ(mp_loop_wait(loop, 20), 0);
  ASSERT_EQ(write(p[1], "x", 1), 1);
  ASSERT_EQ(mp_loop_wait(loop, 20000), 1);
  for (int i = 0; i < 100 && mp_loop_run(loop, MP_RUN_NOWAIT) > 0; i++)
    mp_loop_wait(loop, 100);
  ASSERT_EQ(got, 1);
  /* taken: the handle is reset, no spare wake (io_uring's eventfd stays
   * signalled after a turn that took a completion until armed again) */
  ASSERT_EQ(mp_loop_wait(loop, 20), 0);
  close(p[0]);
  close(p[1]);
  CLOSE_LOOP(loop);
  return 0;
}

static void own_in_job(struct mp_op *op) {
  /* on a pool thread: replace owned memory several times */
  for (int i = 0; i < 50; i++) {
    mp_op_own(op, malloc(64), NULL);
    mp_op_own(op, &owned_counts, count_free);
  }
  op->result = 7;
}

static void job_cb(struct mp_op *op) {
  *(int64_t *)op->data = op->result;
  mp_op_release(op);
}

static void nop_release(struct mp_op *op) { mp_op_release(op); }

/* A work job may own memory from its pool thread, even with the debug
 * buffer checks on (which read the loop: they must not from there; TSan
 * sees it while the loop thread keeps submitting). */
TEST_IMPL(op_own_in_work) {
  setenv("MOONPORT_DEBUG_BUFFERS", "1", 1);
  struct mp_loop *loop = test_loop();
  int64_t got = 0;
  memset(&owned_counts, 0, sizeof owned_counts);
  struct mp_op *op = mp_op_new(loop, job_cb, &got);
  mp_op_prep_work(op, own_in_job, NULL);
  ASSERT_EQ(mp_op_submit(op), 0);
  while (got == 0) {
    struct mp_op *nop = mp_op_new(loop, nop_release, NULL);
    mp_op_prep_nop(nop);
    ASSERT_EQ(mp_op_submit(nop), 0);
    mp_loop_run(loop, MP_RUN_ONCE);
  }
  ASSERT_EQ(got, 7);
  ASSERT_EQ(owned_counts.freed, 50); /* 49 replaced, 1 released */
  CLOSE_LOOP(loop);
  return 0;
}
