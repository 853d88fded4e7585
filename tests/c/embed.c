/* embed.c: a host program embedding moonport through bindings/moonport.h,
 * the way an application with its own event loop would: it owns the loop
 * and the lua_State, drives moonport in steps, waits on mp_loop_fd with
 * poll(2), and feeds values posted from its own threads (mp_loop_post)
 * into Lua tasks. Prints "N passed, N failed". */
#include <lauxlib.h>
#include <lualib.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "moonport.h"

enum { THREADS = 4, PER_THREAD = 250 };

static int passed, failed;
#define CHECK(name, cond)                                             \
  do {                                                                \
    if (cond) { passed++; printf("ok - %s\n", name); }                \
    else { failed++; printf("not ok - %s\n", name); }                 \
  } while (0)

struct msg {
  struct mp_op op; /* the host owns this memory */
  int value;
  struct msg *next;
};

/* Filled by post callbacks on the loop thread, drained into Lua by the
 * host between steps: no Lua runs inside a core callback. */
static struct msg *inbox;

static int open_on(lua_State *L) {
  return moonport_open(L, lua_touserdata(L, 1));
}

static void on_post(struct mp_op *op) {
  struct msg *m = (struct msg *)op;
  mp_op_release(op);
  m->next = inbox;
  inbox = m;
}

static void *producer(void *arg) {
  struct mp_loop *loop = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    struct msg *m = calloc(1, sizeof *m);
    mp_op_init(&m->op, on_post, NULL);
    m->value = 1;
    mp_loop_post(loop, &m->op);
    if (i % 50 == 0) usleep(1000);
  }
  return NULL;
}

/* Posts once, after the loop has gone idle (as a slow thread would). */
static void *late_producer(void *arg) {
  static struct msg m;
  usleep(50000);
  mp_op_init(&m.op, on_post, NULL);
  m.value = 7;
  mp_loop_post(arg, &m.op);
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void run(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    exit(1);
  }
}

static const char script[] =
  "local mp = require 'moonport'\n"
  "inbox = mp.channel(1000)\n"
  "total = 0\n"
  "consumer = mp.spawn(function()\n"
  "  for v in function() return inbox:recv() end do total = total + v end\n"
  "  return total\n"
  "end)\n"
  "ticker = mp.spawn(function() for i = 1, 5 do mp.sleep(0.002) end return 'ticked' end)\n";

int main(void) {
  struct mp_loop *loop;
  if (mp_loop_new(&loop, NULL) < 0) return 1;
  /* Without a loop (what luaopen_moonport does) moonport makes its own,
   * and closes it with the state. */
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  moonport_open(L, NULL);
  CHECK("moonport_open(L, NULL) opens a loop of its own",
        moonport_loop(L) != NULL && moonport_loop(L) != loop);
  lua_close(L);
  /* Now the host's loop (and moonport's allocator): open explicitly
   * before anything requires it. */
  L = moonport_newstate();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  moonport_open(L, loop);
  lua_setfield(L, -2, "moonport");
  lua_pop(L, 1);
  CHECK("moonport uses the host's loop", moonport_loop(L) == loop);
  {
    /* moonport keeps its state in the loop's data pointer (mp.h) */
    lua_State *L2 = luaL_newstate();
    lua_pushcfunction(L2, open_on);
    lua_pushlightuserdata(L2, loop);
    CHECK("a loop that serves a state is refused to another",
          lua_pcall(L2, 1, 1, 0) != LUA_OK &&
          strstr(lua_tostring(L2, -1), "data pointer") != NULL);
    lua_close(L2);
  }
  moonport_ref(L); /* this host feeds its tasks from posts */
  run(L, script);

  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, producer, loop);

  /* The host's own event loop: wait on the loop's descriptor, then step. */
  int received = 0, polls = 0;
  while (received < THREADS * PER_THREAD) {
    struct pollfd p = {.fd = mp_loop_fd(loop), .events = POLLIN};
    int t = moonport_timeout(L); /* -1 while the tasks wait for posts */
    if (poll(&p, 1, t < 0 ? 5000 : t) > 0) polls++;
    moonport_run(L, MP_RUN_NOWAIT); /* referenced: idle is no deadlock */
    while (inbox) {
      struct msg *m = inbox;
      inbox = m->next;
      lua_getglobal(L, "inbox");
      lua_getfield(L, -1, "send");
      lua_insert(L, -2);
      lua_pushinteger(L, m->value);
      lua_call(L, 2, 0); /* outside tasks: may run the loop; never blocks here */
      received++;
      free(m);
    }
  }
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  CHECK("every post arrived exactly once", received == THREADS * PER_THREAD);
  CHECK("the loop descriptor became readable", polls > 0);
  CHECK("no step reported a deadlock", lua_gettop(L) == 0);

  run(L, "inbox:close()");
  int left = moonport_run(L, MP_RUN_DEFAULT);
  CHECK("run until done leaves no task", left == 0);
  run(L, "return select(2, consumer:join()), select(2, ticker:join())");
  CHECK("the consumer task summed every value",
        lua_tointeger(L, -2) == THREADS * PER_THREAD);
  CHECK("other tasks ran meanwhile", strcmp(lua_tostring(L, -1), "ticked") == 0);
  CHECK("no unhandled task errors", moonport_unhandled(L) == 0);
  lua_settop(L, 0);

  /* A post that comes when nothing is in flight (no timer, no IO: a task
   * waits for what the host feeds it) still reaches the host. */
  run(L, "local mp = require 'moonport'; late = mp.channel(1); "
         "waiter = mp.spawn(function() return late:recv() end)");
  pthread_t late;
  pthread_create(&late, NULL, late_producer, loop);
  double deadline = now() + 5;
  while (!inbox && now() < deadline) {
    struct pollfd p = {.fd = mp_loop_fd(loop), .events = POLLIN};
    int t = moonport_timeout(L);
    poll(&p, 1, t < 0 ? 5000 : t);
    moonport_run(L, MP_RUN_NOWAIT);
  }
  pthread_join(late, NULL);
  CHECK("a post arrives while nothing is in flight", inbox != NULL);
  if (inbox) {
    lua_getglobal(L, "late");
    lua_getfield(L, -1, "send");
    lua_insert(L, -2);
    lua_pushinteger(L, inbox->value);
    inbox = NULL;
    lua_call(L, 2, 0);
  }
  CHECK("the task it was meant for ends",
        moonport_run(L, MP_RUN_DEFAULT) == 0 && lua_gettop(L) == 0);
  run(L, "return select(2, waiter:join())");
  CHECK("the task got the posted value", lua_tointeger(L, -1) == 7);
  lua_settop(L, 0);

  /* A deadlock is reported, not a hang. */
  run(L, "local mp = require 'moonport'; "
         "mp.spawn(function() mp.channel():recv() end)");
  CHECK("deadlock reported", moonport_run(L, MP_RUN_DEFAULT) == -1 &&
                              strstr(lua_tostring(L, -1), "deadlock") != NULL);
  moonport_closestate(L);
  CHECK("closing the state gives the loop's data pointer back",
        mp_loop_data(loop) == NULL);
  CHECK("the host's loop closes clean", mp_loop_close(loop) == 0);

  /* mp.stdout's bytes left in C's buffer (stdout is a pipe under ctest:
   * fully buffered) go out when the state closes, not at exit. */
  L = luaL_newstate();
  luaL_openlibs(L);
  moonport_open(L, NULL);
  lua_setglobal(L, "mp");
  fflush(stdout);
  run(L, "assert(mp.stdout:write('# mp.stdout at lua_close\\n'))");
  int buffered = __fpending(stdout) > 0;
  lua_close(L);
  CHECK("lua_close writes out mp.stdout's buffered bytes",
        !buffered || __fpending(stdout) == 0);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
