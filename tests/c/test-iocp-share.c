/* test-iocp-share.c: shared listeners (mp_share_*, runtime/share_win.c),
 * the accept handle moonport --workers shares on Windows: loops on
 * threads of their own accept from one listening socket, each connection
 * going to the accept that has waited longest; accepted sockets work on
 * the loop that got them (its port, not the listener's); cancels never
 * lose or leak a connection; close ends the waiting accepts. */
#ifdef _WIN32
#include "task.h"

#include "mp_internal.h"
#include "mp_os.h"

static mp_handle_t listener(struct mp_addr *at) {
  mp_handle_t l;
  struct mp_addr any;
  ASSERT_EQ(mp_os_socket(MP_AF_INET, MP_SOCK_STREAM, &l), 0);
  ASSERT_EQ(mp_addr_ip(&any, "127.0.0.1", 0), 0);
  ASSERT_EQ(mp_os_bind(l, &any), 0);
  ASSERT_EQ(mp_os_listen(l, 128), 0);
  ASSERT_EQ(mp_os_sockname(l, at, 0), 0);
  return l;
}

/* A blocking client connection that sends one byte; its local port. */
static SOCKET client(const struct mp_addr *at, int *port) {
  SOCKET c = socket(AF_INET, SOCK_STREAM, 0);
  struct mp_addr me;
  char host[64];
  ASSERT(c != INVALID_SOCKET);
  ASSERT_EQ(connect(c, (const struct sockaddr *)at->sa.b, (int)at->len), 0);
  ASSERT_EQ(send(c, "x", 1, 0), 1);
  ASSERT_EQ(mp_os_sockname((mp_handle_t)c, &me, 0), 0);
  ASSERT_EQ(mp_addr_format(&me, host, sizeof host, port), MP_AF_INET);
  return c;
}

static int peer_port(mp_handle_t h) {
  struct mp_addr a;
  char host[64];
  int port;
  ASSERT_EQ(mp_os_sockname(h, &a, 1), 0);
  ASSERT_EQ(mp_addr_format(&a, host, sizeof host, &port), MP_AF_INET);
  return port;
}

/* Waits (10 s at most) until sh has this many waiting and held. */
static void await_stats(struct mp_share *sh, int waiting, int held) {
  int w, h;
  for (int i = 0; i < 10000; i++) {
    mp_share_stats(sh, &w, &h);
    if (w == waiting && h == held) return;
    Sleep(1);
  }
  ASSERT_EQ(w, waiting);
  ASSERT_EQ(h, held);
}

/* ---- loops on threads ---- */

enum { LOOPS = 3, ROUNDS = 10, BURST = 30 };

struct worker {
  struct mp_share *sh;
  volatile LONG served; /* connections whose byte came on this loop */
  int64_t end;          /* the result that ended its accepts */
  char buf[LOOPS][1];
};

static volatile LONG served_total;

static void recv_cb(struct mp_op *op) {
  struct worker *w = op->data;
  ASSERT_EQ(op->result, 1); /* the client's byte, through this loop */
  mp_os_close(op->handle);
  mp_op_release(op);
  InterlockedIncrement(&w->served);
  InterlockedIncrement(&served_total);
}

static void accept_cb(struct mp_op *op) {
  struct worker *w = op->data;
  if (op->result < 0) {
    w->end = op->result;
    mp_op_release(op);
    return;
  }
  mp_handle_t h = (mp_handle_t)op->result;
  mp_op_prep_accept_shared(op, w->sh); /* back in the queue first */
  ASSERT_EQ(mp_op_submit(op), 0);
  struct mp_op *r = mp_op_new(op->loop, recv_cb, w);
  mp_op_prep_recv(r, h, w->buf[0], 1);
  ASSERT_EQ(mp_op_submit(r), 0);
}

static DWORD WINAPI worker_main(void *arg) {
  struct worker *w = arg;
  struct mp_loop *loop = test_loop();
  struct mp_op *op = mp_op_new(loop, accept_cb, w);
  mp_op_prep_accept_shared(op, w->sh);
  ASSERT_EQ(mp_op_submit(op), 0);
  mp_loop_run(loop, MP_RUN_DEFAULT); /* until close ends the accept */
  CLOSE_LOOP(loop);
  return 0;
}

static void await_served(LONG n) {
  for (int i = 0; i < 20000 && served_total < n; i++) Sleep(1);
  ASSERT_EQ(served_total, n);
}

TEST_IMPL(iocp_share_spread) {
  struct mp_addr at;
  struct mp_share *sh;
  struct worker w[LOOPS];
  HANDLE th[LOOPS];
  SOCKET c[BURST];
  int port;
  mp_handle_t l = listener(&at);
  ASSERT_EQ(mp_share_new(l, &sh), 0);
  served_total = 0;
  for (int i = 0; i < LOOPS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].sh = sh;
    th[i] = CreateThread(NULL, 0, worker_main, &w[i], 0, NULL);
    ASSERT(th[i]);
  }
  await_stats(sh, LOOPS, 0);
  /* One at a time, every loop waiting: strictly in turn. */
  for (int k = 0; k < LOOPS * ROUNDS; k++) {
    SOCKET s = client(&at, &port);
    await_served(k + 1);
    closesocket(s);
    await_stats(sh, LOOPS, 0);
  }
  for (int i = 0; i < LOOPS; i++) ASSERT_EQ(w[i].served, ROUNDS);
  /* A burst: each loop takes one of the first LOOPS at least. */
  for (int k = 0; k < BURST; k++) c[k] = client(&at, &port);
  await_served(LOOPS * ROUNDS + BURST);
  for (int i = 0; i < LOOPS; i++) ASSERT_GT(w[i].served, ROUNDS);
  for (int k = 0; k < BURST; k++) closesocket(c[k]);
  /* Close with every loop waiting: each accept ends, MP_ECLOSED. */
  await_stats(sh, LOOPS, 0);
  mp_share_close(sh);
  WaitForMultipleObjects(LOOPS, th, TRUE, INFINITE);
  for (int i = 0; i < LOOPS; i++) {
    CloseHandle(th[i]);
    ASSERT_EQ(w[i].end, MP_ECLOSED);
  }
  return 0;
}

/* ---- cancel, on one loop ---- */

struct res {
  int n;
  int64_t r;
};

static void res_cb(struct mp_op *op) {
  struct res *r = op->data;
  r->n++;
  r->r = op->result;
  mp_op_release(op);
}

static struct mp_op *accept_op(struct mp_loop *loop, struct mp_share *sh,
                               struct res *r) {
  struct mp_op *op = mp_op_new(loop, res_cb, r);
  memset(r, 0, sizeof *r);
  mp_op_prep_accept_shared(op, sh);
  ASSERT_EQ(mp_op_submit(op), 0);
  return op;
}

static void run_until(struct mp_loop *loop, struct res *r) {
  int64_t deadline = mp__hrtime() + 10000000000LL;
  for (;;) { /* (MP_RUN_ONCE would sleep on after the callback) */
    mp_loop_run(loop, MP_RUN_NOWAIT);
    if (r->n) return;
    ASSERT_LT(mp__hrtime(), deadline);
    Sleep(1);
  }
}

TEST_IMPL(iocp_share_cancel) {
  struct mp_loop *loop = test_loop();
  struct mp_addr at, name;
  struct mp_share *sh;
  struct res a, b, c, d;
  int port;
  mp_handle_t l = listener(&at), dup;
  ASSERT_EQ(mp_share_new(l, &sh), 0);
  /* a handle of one's own: its close leaves the listener open */
  ASSERT_EQ(mp_share_dup(sh, &dup), 0);
  ASSERT_EQ(mp_os_sockname(dup, &name, 0), 0);
  ASSERT_EQ(name.len, at.len);
  ASSERT_EQ(memcmp(name.sa.b, at.sa.b, at.len), 0);
  ASSERT_EQ(mp_os_close(dup), 0);

  /* A waiting accept cancelled leaves the queue: the next gets it. */
  struct mp_op *oa = accept_op(loop, sh, &a);
  accept_op(loop, sh, &b);
  await_stats(sh, 2, 0);
  mp_op_cancel(oa);
  run_until(loop, &a);
  ASSERT_EQ(a.r, MP_ECANCELED);
  await_stats(sh, 1, 0);
  SOCKET s1 = client(&at, &port);
  run_until(loop, &b);
  ASSERT_GE(b.r, 0);
  ASSERT_EQ(peer_port((mp_handle_t)b.r), port);
  mp_os_close((mp_handle_t)b.r);
  closesocket(s1);

  /* Cancelled with its connection on the way (handed to it, the loop
   * not run yet): the connection waits for the next accept. */
  struct mp_op *oc = accept_op(loop, sh, &c);
  await_stats(sh, 1, 0);
  SOCKET s2 = client(&at, &port);
  await_stats(sh, 0, 0); /* handed over: its packet is queued */
  mp_op_cancel(oc);
  ASSERT_EQ(c.n, 0);
  run_until(loop, &c);
  ASSERT_EQ(c.r, MP_ECANCELED);
  await_stats(sh, 0, 1);
  accept_op(loop, sh, &d); /* takes it at once */
  await_stats(sh, 0, 0);
  run_until(loop, &d);
  ASSERT_GE(d.r, 0);
  ASSERT_EQ(peer_port((mp_handle_t)d.r), port);
  mp_os_close((mp_handle_t)d.r);
  closesocket(s2);

  /* The same with another accept waiting: it gets the connection. */
  oa = accept_op(loop, sh, &a);
  accept_op(loop, sh, &b);
  await_stats(sh, 2, 0);
  SOCKET s3 = client(&at, &port);
  await_stats(sh, 1, 0);
  mp_op_cancel(oa);
  run_until(loop, &a);
  ASSERT_EQ(a.r, MP_ECANCELED);
  run_until(loop, &b);
  ASSERT_GE(b.r, 0);
  ASSERT_EQ(peer_port((mp_handle_t)b.r), port);
  mp_os_close((mp_handle_t)b.r);
  closesocket(s3);

  /* Close with a connection held (its accept cancelled): closed, the
   * client sees the end (and the runner counts handles). */
  oc = accept_op(loop, sh, &c);
  await_stats(sh, 1, 0);
  SOCKET s4 = client(&at, &port);
  await_stats(sh, 0, 0);
  mp_op_cancel(oc);
  run_until(loop, &c);
  ASSERT_EQ(c.r, MP_ECANCELED);
  await_stats(sh, 0, 1);
  mp_share_close(sh);
  DWORD ms = 10000;
  char byte;
  ASSERT_EQ(setsockopt(s4, SOL_SOCKET, SO_RCVTIMEO, (char *)&ms, sizeof ms),
            0);
  ASSERT_LE(recv(s4, &byte, 1, 0), 0);
  ASSERT(WSAGetLastError() != WSAETIMEDOUT);
  closesocket(s4);
  /* the port is free again */
  struct mp_addr again = at;
  mp_handle_t l2;
  ASSERT_EQ(mp_os_socket(MP_AF_INET, MP_SOCK_STREAM, &l2), 0);
  ASSERT_EQ(mp_os_bind(l2, &again), 0);
  ASSERT_EQ(mp_os_close(l2), 0);
  CLOSE_LOOP(loop);
  return 0;
}


/* ---- close while the thread holds a connection it has not handed ---- */

#include <tlhelp32.h>

/* The ids of this process's threads, in ids (up to n); their count. */
static int thread_ids(DWORD *ids, int n) {
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
  THREADENTRY32 te = {.dwSize = sizeof te};
  int k = 0;
  ASSERT(snap != INVALID_HANDLE_VALUE);
  for (BOOL ok = Thread32First(snap, &te); ok; ok = Thread32Next(snap, &te))
    if (te.th32OwnerProcessID == GetCurrentProcessId() && k < n)
      ids[k++] = te.th32ThreadID;
  CloseHandle(snap);
  return k;
}

static DWORD WINAPI closer(void *arg) {
  mp_share_close(arg);
  return 0;
}

/* The accept thread is stopped (SuspendThread) with its AcceptEx pending;
 * a client connects (the completion is queued on the private port), then
 * mp_share_close runs (on a thread: it joins) and ends the waiting
 * accept; the accept thread, resumed, takes the completion before the
 * close's poke. The connection must be closed (the client sees the end),
 * not kept in `held` after close (leaked: the client waits for ever). */
TEST_IMPL(iocp_share_close_races_accept) {
  struct mp_loop *loop = test_loop();
  struct mp_addr at;
  struct mp_share *sh;
  struct res a;
  DWORD before[256], after[256], tid = 0;
  int port, nb, na;
  mp_handle_t l = listener(&at);
  nb = thread_ids(before, 256);
  ASSERT_EQ(mp_share_new(l, &sh), 0);
  na = thread_ids(after, 256);
  for (int i = 0; i < na && !tid; i++) {
    int old = 0;
    for (int j = 0; j < nb; j++) old |= after[i] == before[j];
    if (!old) tid = after[i];
  }
  ASSERT(tid != 0);
  HANDLE t = OpenThread(THREAD_SUSPEND_RESUME, FALSE, tid);
  ASSERT(t);
  accept_op(loop, sh, &a);
  await_stats(sh, 1, 0);
  Sleep(200); /* the thread has started its AcceptEx and waits */
  ASSERT(SuspendThread(t) != (DWORD)-1);
  SOCKET s = client(&at, &port);
  Sleep(300); /* the AcceptEx completes: its packet is queued */
  HANDLE ct = CreateThread(NULL, 0, closer, sh, 0, NULL);
  ASSERT(ct);
  Sleep(300); /* closed: the accept ended, the poke queued, joining */
  ASSERT(ResumeThread(t) != (DWORD)-1);
  ASSERT_EQ(WaitForSingleObject(ct, 10000), WAIT_OBJECT_0);
  CloseHandle(ct);
  CloseHandle(t);
  run_until(loop, &a);
  ASSERT_EQ(a.r, MP_ECLOSED);
  DWORD ms = 3000;
  char byte;
  ASSERT_EQ(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (char *)&ms, sizeof ms),
            0);
  int got = recv(s, &byte, 1, 0);
  int e = WSAGetLastError();
  closesocket(s);
  ASSERT_LE(got, 0);
  ASSERT(e != WSAETIMEDOUT); /* the server side was closed */
  CLOSE_LOOP(loop);
  return 0;
}

/* ---- a packet that cannot be posted ---- */

/* PostQueuedCompletionStatus fails (out of memory; here the op's port is
 * an event): the op stays first in the queue and the connection is held,
 * nothing lost; the op's cancel ends it and the next accept takes the
 * connection. At close, the same: the op waits for its cancel (a loop's
 * drain), never for a packet that will not come. */
TEST_IMPL(iocp_share_post_fails) {
  struct mp_loop *loop = test_loop();
  struct mp_addr at;
  struct mp_share *sh;
  struct res a, b, c;
  int port;
  HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  mp_handle_t l = listener(&at);
  ASSERT(ev);
  ASSERT_EQ(mp_share_new(l, &sh), 0);
  struct mp_op *oa = accept_op(loop, sh, &a);
  await_stats(sh, 1, 0);
  void *port_of_loop = oa->ov.ev;
  oa->ov.ev = ev;
  SOCKET s1 = client(&at, &port);
  await_stats(sh, 1, 1); /* still waiting, its connection held */
  oa->ov.ev = port_of_loop;
  mp_op_cancel(oa);
  run_until(loop, &a);
  ASSERT_EQ(a.r, MP_ECANCELED);
  await_stats(sh, 0, 1);
  accept_op(loop, sh, &b);
  run_until(loop, &b);
  ASSERT_GE(b.r, 0);
  ASSERT_EQ(peer_port((mp_handle_t)b.r), port);
  mp_os_close((mp_handle_t)b.r);
  closesocket(s1);

  struct mp_op *oc = accept_op(loop, sh, &c);
  await_stats(sh, 1, 0);
  oc->ov.ev = ev;
  mp_share_close(sh); /* (the record lives on with oc's reference) */
  await_stats(sh, 1, 0);
  oc->ov.ev = port_of_loop;
  mp_op_cancel(oc);
  run_until(loop, &c);
  ASSERT_EQ(c.r, MP_ECANCELED);
  CloseHandle(ev);
  CLOSE_LOOP(loop);
  return 0;
}

#endif /* _WIN32 */
