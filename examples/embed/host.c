/* host.c: an application with its own poll() main loop that embeds
 * moonport (docs/embedding.md).
 *
 * A sensor thread posts readings to the loop (mp_loop_post) and, when it
 * is done, writes "quit" to a pipe the host watches itself. Each reading
 * becomes a Lua task; the script keeps a running total and a ticker. On
 * "quit" the host asks the script to stop, runs what is left to the end
 * and shuts down: thread joined, state closed, loop closed.
 *
 *   ./embed_host        prints "readings 100, total 5050, ticks N" */
#include <lauxlib.h>
#include <lualib.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moonport.h"

enum { READINGS = 100 };

struct reading {
  struct mp_op op; /* first: the callback gets the op back */
  int value;
  struct reading *next;
};

struct host {
  struct mp_loop *loop;
  int pipe[2];             /* the host's own descriptor: the sensor's "quit" */
  struct reading *inbox;   /* readings taken by the loop, not yet in Lua */
};

/* Runs on the loop thread inside moonport_run: no Lua here, just keep it. */
static void on_reading(struct mp_op *op) {
  struct reading *r = (struct reading *)op;
  struct host *h = op->data;
  mp_op_release(op);
  r->next = h->inbox;
  h->inbox = r;
}

static void *sensor(void *arg) {
  struct host *h = arg;
  for (int i = 1; i <= READINGS; i++) {
    struct reading *r = malloc(sizeof *r);
    mp_op_init(&r->op, on_reading, h);
    r->value = i;
    mp_loop_post(h->loop, &r->op); /* thread-safe, wakes the loop */
    if (i % 10 == 0) usleep(2000);
  }
  if (write(h->pipe[1], "quit\n", 5) != 5) perror("write");
  return NULL;
}

static const char script[] =
  "local mp = require 'moonport'\n"
  "readings, total, ticks, running = 0, 0, 0, true\n"
  "function on_reading(v)\n"  /* each reading runs as a task */
  "  mp.sleep(0.001)\n"
  "  readings, total = readings + 1, total + v\n"
  "end\n"
  "mp.spawn(function()\n"
  "  while running do mp.sleep(0.005) ticks = ticks + 1 end\n"
  "end)\n";

static int check(lua_State *L, int st) {
  if (st == LUA_OK) return 1;
  fprintf(stderr, "embed_host: %s\n", lua_tostring(L, -1));
  return 0;
}

int main(void) {
  struct host h = {0};
  if (pipe(h.pipe) < 0 || mp_loop_new(&h.loop, NULL) < 0) return 1;

  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  moonport_open(L, h.loop); /* the host's loop: closed by the host */
  lua_setfield(L, -2, "moonport");
  lua_pop(L, 1);
  if (!check(L, luaL_dostring(L, script))) return 1;

  /* Until "quit", tasks waiting only for readings are idle, not a
   * deadlock: this host feeds them. */
  moonport_ref(L);
  pthread_t th;
  pthread_create(&th, NULL, sensor, &h);
  int quit = 0;
  for (;;) {
    int alive = moonport_run(L, MP_RUN_NOWAIT);
    if (alive <= 0 && !h.inbox) break; /* every task ended, nothing left */
    struct reading *r = h.inbox, *in_order = NULL;
    h.inbox = NULL;
    while (r) { /* the inbox is newest first */
      struct reading *next = r->next;
      r->next = in_order;
      in_order = r;
      r = next;
    }
    while ((r = in_order)) { /* each reading starts a task */
      in_order = r->next;
      lua_pushinteger(L, r->value);
      lua_getglobal(L, "on_reading"); /* the function goes on top */
      moonport_spawn(L, 1);
      lua_pop(L, 1); /* the task object */
      free(r);
    }
    int timeout = moonport_timeout(L); /* 0: the new tasks are ready */
    struct pollfd p[2] = {
      {mp_loop_fd(h.loop), POLLIN, 0},
      {h.pipe[0], POLLIN, 0},
    };
    if (poll(p, quit ? 1 : 2, timeout) < 0) continue;
    if (!quit && (p[1].revents & POLLIN)) {
      char buf[16];
      ssize_t n = read(h.pipe[0], buf, sizeof buf - 1);
      if (n > 0 && strncmp(buf, "quit", 4) == 0) {
        quit = 1; /* the ticker ends; readings already posted still land */
        moonport_unref(L);
        lua_pushboolean(L, 0);
        lua_setglobal(L, "running");
      }
    }
  }
  pthread_join(th, NULL);
  /* The sensor posted everything before writing "quit", and the turn
   * after "quit" took those posts: nothing is left in the queue. */
  check(L, luaL_dostring(L, "print(string.format('readings %d, total %d, "
                            "ticks %d', readings, total, ticks))"));
  int failed = moonport_unhandled(L);
  lua_close(L);
  mp_loop_close(h.loop);
  close(h.pipe[0]);
  close(h.pipe[1]);
  return failed ? 1 : 0;
}
