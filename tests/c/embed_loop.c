/* embed_loop.c: the host loop of docs/embedding.md (run without waiting,
 * then poll mp_loop_fd for moonport_timeout) with no poll timeout of its
 * own: every kind of work must wake it, nothing may keep it spinning.
 * Prints "N passed, N failed". */
#include <lauxlib.h>
#include <lualib.h>
#include <poll.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>

#include "moonport.h"

static int passed, failed;
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
#define CHECK(name, cond)                                             \
  do {                                                                \
    int ok_ = (cond);                                                 \
    pthread_mutex_lock(&check_lock);                                  \
    if (ok_) { passed++; printf("ok - %s\n", name); }                 \
    else { failed++; printf("not ok - %s\n", name); }                 \
    pthread_mutex_unlock(&check_lock);                                \
  } while (0)

static double now(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The host loop. A poll that sleeps through its whole "nothing is due"
 * budget is a missed wake (every script here has work that ends well
 * before): returned as -2 instead of hanging. */
struct stats { int turns, wakeups; };

static int host_loop(lua_State *L, struct stats *st) {
  for (;;) {
    int alive = moonport_run(L, MP_RUN_NOWAIT);
    if (alive <= 0) return alive;
    int t = moonport_timeout(L);
    struct pollfd p = {.fd = mp_loop_fd(moonport_loop(L)), .events = POLLIN};
    int r = poll(&p, 1, t < 0 ? 5000 : t);
    if (st) st->turns++;
    if (r > 0 && st) st->wakeups++;
    if (r == 0 && t < 0) return -2;
  }
}

static int open_moonport(lua_State *L) { return moonport_open(L, NULL); }

static lua_State *new_host(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "moonport", open_moonport, 0);
  lua_pop(L, 1);
  return L;
}

static int run(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    printf("# %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

/* Sleeps, reads a file, does a TCP exchange with itself, lets a timeout
 * expire. */
static const char exchange[] =
  "local mp = require 'moonport'\n"
  "result = nil\n"
  "mp.spawn(function()\n"
  "  mp.sleep(0.02)\n"
  "  local data = assert(mp.fs.readfile(PATH))\n"
  "  local srv = assert(mp.net.listen('127.0.0.1', 0))\n"
  "  local _, port = srv:sockname()\n"
  "  local peer = mp.spawn(function()\n"
  "    local s = assert(srv:accept())\n"
  "    assert(s:write(assert(s:read('l')):upper() .. '\\n'))\n"
  "    s:close()\n"
  "  end)\n"
  "  local c = assert(mp.net.connect('127.0.0.1', port))\n"
  "  assert(c:write('ping\\n'))\n"
  "  local reply = assert(c:read('l'))\n"
  "  assert(peer:join())\n"
  "  c:close(); srv:close()\n"
  "  local ok, err = mp.timeout(0.02, mp.sleep, 10)\n"
  "  result = data .. '|' .. reply .. '|' .. tostring(ok) .. ' ' .. err\n"
  "end)\n";

static char path[64];

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

static int exchange_ok(void) {
  lua_State *L = new_host();
  lua_pushstring(L, path);
  lua_setglobal(L, "PATH");
  int ok = run(L, exchange) && host_loop(L, NULL) == 0 &&
           lua_getglobal(L, "result") == LUA_TSTRING &&
           strcmp(lua_tostring(L, -1), "file|PING|false timeout") == 0;
  if (!ok && lua_isstring(L, -1)) printf("# got %s\n", lua_tostring(L, -1));
  lua_close(L);
  return ok;
}

static void *exchange_thread(void *arg) {
  *(int *)arg = exchange_ok();
  return NULL;
}

/* A million posts from four threads, each op reused from a small ring of
 * slots once its callback has given it back. */
enum { THREADS = 4, PER_THREAD = 250000, SLOTS = 1024 };
struct slot {
  struct mp_op op;
  int thread, seq;
  atomic_int busy;
};
static struct slot slots[THREADS][SLOTS];
static int next_seq[THREADS], received, disorder;

static void on_post(struct mp_op *op) {
  struct slot *s = (struct slot *)op;
  mp_op_release(op);
  if (s->seq != next_seq[s->thread]) disorder++;
  next_seq[s->thread] = s->seq + 1;
  received++;
  atomic_store(&s->busy, 0);
}

struct producer { struct mp_loop *loop; int id; };

static void *producer(void *arg) {
  struct producer *p = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    struct slot *s = &slots[p->id][i % SLOTS];
    while (atomic_load(&s->busy)) sched_yield();
    atomic_store(&s->busy, 1);
    mp_op_init(&s->op, on_post, NULL);
    s->thread = p->id;
    s->seq = i;
    mp_loop_post(p->loop, &s->op);
  }
  return NULL;
}

/* A peer outside the loop that connects, then writes a while later. */
static void *late_peer(void *arg) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)*(int *)arg),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    usleep(200000);
    if (write(fd, "late\n", 5) != 5) perror("write");
  }
  close(fd);
  return NULL;
}

/* The same through a FIFO: the open and the read complete later. */
static char fifo[64];
static void *late_writer(void *arg) {
  (void)arg;
  usleep(100000);
  int fd = open(fifo, O_WRONLY | O_CLOEXEC);
  usleep(200000);
  if (write(fd, "fifo\n", 5) != 5) perror("write");
  close(fd);
  return NULL;
}

static struct mp_op quiet_op;
static int quiet_arrived;
static void on_quiet(struct mp_op *op) {
  mp_op_release(op);
  quiet_arrived = 1;
}

int main(void) {
  snprintf(path, sizeof path, "/tmp/mp-embed-%d", (int)getpid());
  FILE *f = fopen(path, "w");
  fputs("file", f);
  fclose(f);

  lua_State *L;
  CHECK("the host loop with no timeout of its own finishes sleep, file, "
        "TCP and timeout", exchange_ok());

  /* IO that completes later, with nothing else going on, wakes the host
   * (the io_uring ring fd does not: its completion work is deferred). */
  snprintf(fifo, sizeof fifo, "/tmp/mp-embed-fifo-%d", (int)getpid());
  mkfifo(fifo, 0600);
  L = new_host();
  lua_pushstring(L, fifo);
  lua_setglobal(L, "FIFO");
  run(L, "local mp = require 'moonport'\n"
         "local srv = assert(mp.net.listen('127.0.0.1', 0))\n"
         "PORT = select(2, srv:sockname())\n"
         "mp.spawn(function()\n"
         "  local s = assert(srv:accept())\n"
         "  got = assert(s:read('l'))\n"
         "  s:close(); srv:close()\n"
         "end)\n"
         "mp.spawn(function()\n"
         "  local f = assert(mp.fs.open(FIFO))\n"
         "  fifo_got = assert(f:read('l'))\n"
         "  f:close()\n"
         "end)");
  lua_getglobal(L, "PORT");
  int port = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  pthread_t peer, writer;
  pthread_create(&peer, NULL, late_peer, &port);
  pthread_create(&writer, NULL, late_writer, NULL);
  struct stats st0 = {0, 0};
  double t0 = now(CLOCK_MONOTONIC);
  int r0 = host_loop(L, &st0);
  t0 = now(CLOCK_MONOTONIC) - t0;
  pthread_join(peer, NULL);
  pthread_join(writer, NULL);
  printf("# late IO: %.2f s, %d turns, %d wakeups\n", t0, st0.turns,
         st0.wakeups);
  /* the work is done after 0.3 s; a missed wake sleeps out 5 s */
  CHECK("an accept and a read that complete later wake the host",
        r0 == 0 && t0 < 4 && lua_getglobal(L, "got") == LUA_TSTRING &&
            strcmp(lua_tostring(L, -1), "late") == 0);
  CHECK("and a FIFO's open and read",
        lua_getglobal(L, "fifo_got") == LUA_TSTRING &&
            strcmp(lua_tostring(L, -1), "fifo") == 0);
  lua_close(L);
  unlink(fifo);

  /* Sleeping costs no CPU: the host sleeps in poll for the timer. */
  L = new_host();
  run(L, "require 'moonport'.spawn(function() "
         "require 'moonport'.sleep(1) end)");
  struct stats st = {0, 0};
  double wall = now(CLOCK_MONOTONIC), cpu = now(CLOCK_PROCESS_CPUTIME_ID);
  int r = host_loop(L, &st);
  wall = now(CLOCK_MONOTONIC) - wall;
  cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu;
  printf("# 1 s sleep: %.1f ms CPU, %d turns, %d wakeups\n", cpu * 1e3,
         st.turns, st.wakeups);
  CHECK("a 1 s sleep ends on time", r == 0 && wall >= 0.99 && wall < 10);
  CHECK("the host sleeps through it (< 50 ms CPU)", cpu < 0.05);
  CHECK("in a few turns", st.turns < 20);
  lua_close(L);

  /* A task only a post can wake: nothing due, and once the post has been
   * taken the descriptor is quiet again (it was readable forever). */
  L = new_host();
  run(L, "local mp = require 'moonport'; ch = mp.channel(); "
         "mp.spawn(function() return ch:recv() end)");
  moonport_run(L, MP_RUN_NOWAIT); /* the task starts and waits */
  CHECK("without a reference, a step reports the deadlock",
        moonport_run(L, MP_RUN_NOWAIT) == -1 &&
            strstr(lua_tostring(L, -1), "deadlock") != NULL);
  lua_settop(L, 0);
  CHECK("and cancels the tasks", moonport_run(L, MP_RUN_NOWAIT) == 0);
  moonport_ref(L); /* from now on this host feeds its tasks by posts */
  run(L, "local mp = require 'moonport'; ch = mp.channel(); "
         "waiter = mp.spawn(function() return ch:recv() end)");
  moonport_run(L, MP_RUN_NOWAIT);
  struct mp_loop *loop = moonport_loop(L);
  CHECK("a task waiting for the host: stalled, nothing due",
        moonport_stalled(L) == 1 && moonport_timeout(L) == -1);
  mp_op_init(&quiet_op, on_quiet, NULL);
  mp_loop_post(loop, &quiet_op);
  CHECK("a post: something to do at once", moonport_timeout(L) == 0 &&
                                           moonport_stalled(L) == 0);
  struct pollfd p = {.fd = mp_loop_fd(loop), .events = POLLIN};
  CHECK("a post makes the descriptor readable", poll(&p, 1, 5000) == 1);
  CHECK("a step still alive, no deadlock",
        moonport_run(L, MP_RUN_NOWAIT) == 1 && lua_gettop(L) == 0);
  CHECK("the post arrived", quiet_arrived);
  int busy = 0;
  for (int i = 0; i < 20; i++) {
    busy += poll(&p, 1, 0);
    moonport_run(L, MP_RUN_NOWAIT);
  }
  printf("# %d of 20 polls found the descriptor readable\n", busy);
  CHECK("then the descriptor is quiet", busy <= 1);
  run(L, "ch:send(5)");
  CHECK("the task ends", host_loop(L, NULL) == 0);
  run(L, "return select(2, waiter:join())");
  CHECK("with the value", lua_tointeger(L, -1) == 5);
  lua_close(L);

  /* A million posts while a task waits: none lost or duplicated. */
  L = new_host();
  moonport_ref(L);
  run(L, "local mp = require 'moonport'; ch = mp.channel(); "
         "mp.spawn(function() return ch:recv() end)");
  loop = moonport_loop(L);
  pthread_t th[THREADS];
  struct producer prod[THREADS];
  for (int i = 0; i < THREADS; i++) {
    prod[i] = (struct producer){loop, i};
    pthread_create(&th[i], NULL, producer, &prod[i]);
  }
  int missed = 0;
  while (received < THREADS * PER_THREAD && !missed) {
    moonport_run(L, MP_RUN_NOWAIT);
    int t = moonport_timeout(L);
    p = (struct pollfd){.fd = mp_loop_fd(loop), .events = POLLIN};
    if (received < THREADS * PER_THREAD && poll(&p, 1, t < 0 ? 5000 : t) == 0
        && t < 0)
      missed = 1;
  }
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  printf("# %d posts received\n", received);
  CHECK("a million posts from four threads, each once, in order per thread",
        !missed && received == THREADS * PER_THREAD && disorder == 0 &&
        next_seq[0] == PER_THREAD && next_seq[3] == PER_THREAD);
  run(L, "ch:close()");
  CHECK("then the waiting task ends", host_loop(L, NULL) == 0);
  lua_close(L);

  /* Two hosts, each with its loop, on two threads at once. The leak check
   * at state close counts the process's descriptors, so it would blame one
   * state for the other's loop: off here (no other thread runs now). */
  unsetenv("MOONPORT_LEAK_CHECK");
  int fds = count_fds(), ok[2] = {0, 0};
  pthread_t two[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&two[i], NULL, exchange_thread, &ok[i]);
  for (int i = 0; i < 2; i++) pthread_join(two[i], NULL);
  CHECK("two loops on two threads", ok[0] && ok[1]);
  CHECK("both closed every descriptor they opened", count_fds() == fds);

  unlink(path);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
