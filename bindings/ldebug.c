/* ldebug.c: mp.debug, introspection for leak checks (tests/lua/helper.lua,
 * the C tests, the allocation sweep), and the leak check a state runs at
 * close when MOONPORT_LEAK_CHECK is set (every ctest run sets it).
 *
 *   mp.debug.stats()  {ops_inflight, ops_live, timers, pool_jobs,
 *                      pool_threads, tasks, anchors, waiters, registry,
 *                      threads}
 *   mp.debug.fds()    {[fd] = "what it is"} (mp_os_list_handles)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldebug.h"
#include "mp_os.h"

/* The live luaL_ref references in the table at idx: integer keys holding
 * something other than a number (free-list links are numbers). Named
 * entries (metatables, caches Lua creates on first use) do not count. */
static lua_Integer count_live(lua_State *L, int idx) {
  lua_Integer n = 0;
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_isinteger(L, -2) && lua_type(L, -1) != LUA_TNUMBER) n++;
    lua_pop(L, 1);
  }
  return n;
}

/* Entries of the table registry[ref]: live refs, or with all, every
 * entry. */
static lua_Integer count_ref_table(lua_State *L, int ref, int all) {
  lua_Integer n = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  if (lua_istable(L, -1) && !all) {
    n = count_live(L, -1);
  } else if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      n++;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return n;
}

static void setint(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static int l_stats(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct mp_loop_stats st = {0};
  if (S->loop) mp_loop_stats(S->loop, &st);
  lua_createtable(L, 0, 10);
  setint(L, "ops_inflight", (lua_Integer)st.ops_inflight);
  setint(L, "ops_live", (lua_Integer)st.ops_live);
  setint(L, "timers", (lua_Integer)st.timers);
  setint(L, "pool_jobs", (lua_Integer)st.pool_jobs);
  setint(L, "pool_threads", st.pool_threads);
  setint(L, "tasks", S->ntasks);
  setint(L, "anchors", count_ref_table(L, S->anchors, 1));
  setint(L, "waiters", count_ref_table(L, S->waiters, 1));
  setint(L, "registry", count_live(L, LUA_REGISTRYINDEX));
  int threads = mp_os_thread_count();
  if (threads >= 0) setint(L, "threads", threads);
  return 1;
}

static void fd_to_table(void *ud, mp_handle_t fd, const char *what) {
  lua_State *L = ud;
  lua_pushstring(L, what);
  lua_rawseti(L, -2, (lua_Integer)(intptr_t)fd);
}

/* nil, message, code where the system cannot list its handles. */
static int l_fds(lua_State *L) {
  lua_newtable(L);
  int r = mp_os_list_handles(fd_to_table, L);
  return r < 0 ? lmp_fail(L, r, "fds") : 1;
}

void lmp_push_debug(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg fns[] = {
      {"stats", l_stats}, {"fds", l_fds}, {NULL, NULL}};
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, fns, 1);
}

/* The leak check at state close: with MOONPORT_LEAK_CHECK set, the
 * descriptors and threads open at moonport_open are the baseline. */
struct lmp_leakcheck {
  int threads;
  int nfds, capfds;
  mp_handle_t *fds;
};

static void fd_add(void *ud, mp_handle_t fd, const char *what) {
  struct lmp_leakcheck *lc = ud;
  (void)what;
  if (lc->nfds == lc->capfds) {
    int cap = lc->capfds ? 2 * lc->capfds : 16;
    mp_handle_t *p = realloc(lc->fds, (size_t)cap * sizeof *p);
    if (!p) return; /* a shorter baseline only reports more */
    lc->fds = p;
    lc->capfds = cap;
  }
  lc->fds[lc->nfds++] = fd;
}

void lmp_leakcheck_start(struct lmp_state *S) {
  const char *e = getenv("MOONPORT_LEAK_CHECK");
  if (!e || !*e || strcmp(e, "0") == 0) return;
  struct lmp_leakcheck *lc = calloc(1, sizeof *lc);
  if (!lc) return;
  lc->threads = mp_os_thread_count();
  mp_os_list_handles(fd_add, lc);
  S->leakcheck = lc;
}

struct fd_report {
  struct lmp_leakcheck *lc;
  const struct lmp_lineio *io;
  int n;
  char list[1024];
};

static void fd_check(void *ud, mp_handle_t fd, const char *what) {
  struct fd_report *r = ud;
  for (int i = 0; i < r->lc->nfds; i++)
    if (r->lc->fds[i] == fd) return;
  if (r->io && r->io->owns && r->io->owns(fd))
    return; /* the REPL's terminal: process-wide, kept until exit */
  size_t used = strlen(r->list);
  snprintf(r->list + used, sizeof r->list - used, "%s%lld=%s",
           r->n ? ", " : "", (long long)(intptr_t)fd, what);
  r->n++;
}

/* Called by the state's finalizer after the loop was drained (nlive: op
 * records still taken) and, for its own loop, closed (close_err). Prints
 * what leaked and ends the process with status 3. */
void lmp_leakcheck_end(struct lmp_state *S, size_t nlive, int close_err) {
  struct lmp_leakcheck *lc = S->leakcheck;
  if (!lc) return;
  S->leakcheck = NULL;
  struct fd_report r = {lc, S->lineio, 0, ""};
  int bad = 0;
  if (nlive) {
    fprintf(stderr, "moonport: leak check: %zu op record%s never released\n",
            nlive, nlive == 1 ? "" : "s");
    bad = 1;
  }
  if (close_err) {
    fprintf(stderr, "moonport: leak check: the loop did not close (%s)\n",
            mp_errname(close_err));
    bad = 1;
  }
  /* Descriptors: closes went through the loop, which is drained. A
   * worker's process is shared: its host checks those (and threads). */
  if (!S->shared_process) mp_os_list_handles(fd_check, &r);
  if (r.n) {
    fprintf(stderr, "moonport: leak check: leaked %d descriptor%s: %s\n",
            r.n, r.n == 1 ? "" : "s", r.list);
    bad = 1;
  }
  int threads = mp_os_thread_count();
  for (int i = 0; S->own_loop && i < 100 && threads > lc->threads; i++) {
    /* the pool's threads were joined; they may linger a moment in /proc */
    mp_os_sleep_ms(10);
    threads = mp_os_thread_count();
  }
  if (S->own_loop && !S->shared_process && lc->threads >= 0 &&
      threads > lc->threads) {
    fprintf(stderr, "moonport: leak check: %d thread%s still running\n",
            threads - lc->threads, threads - lc->threads == 1 ? "" : "s");
    bad = 1;
  }
  free(lc->fds);
  free(lc);
  if (bad) {
    fflush(NULL);
    _Exit(3);
  }
}
