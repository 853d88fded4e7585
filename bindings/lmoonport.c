/* lmoonport.c: opens moonport into a lua_State: the per-state scheduler
 * record, the core table, and the Lua-side modules compiled in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lchan.h"
#include "lcoro.h"
#include "ldeadline.h"
#include "ldebug.h"
#include "lfile.h"
#include "lfs.h"
#include "lproc.h"
#include "lfsx.h"
#include "lhttp.h"
#include "lrepl.h"
#include "lsem.h"
#include "lsock.h"
#include "ltask.h"
#include "ltls.h"
#include "lwatch.h"
#include "lwork.h"
#include "lworker.h"

struct lmp_embedded { const char *name, *src; size_t len; };
extern const struct lmp_embedded lmp_embedded[];

/* The state is finalized last (it was created first): task finalizers
 * have orphaned their ops, so draining the loop only releases records. */
static int state_gc(lua_State *L) {
  struct lmp_state *S = luaL_checkudata(L, 1, LMP_STATE);
  if (!S->loop || S->closing) return 0;
  S->closing = 1;
  /* lua_close finalizes newer objects (the tasks' files, sockets) first:
   * too late to run the tasks, so say that they are lost. */
  if (S->ntasks > 0 && S->warn_dropped)
    fprintf(stderr, "moonport: %d task(s) had not ended when the Lua state "
                    "closed and were dropped (end the main chunk with "
                    "mp.run() to wait for them)\n", S->ntasks);
  if (S->lineio && S->lineio->abort)
    S->lineio->abort(); /* a line read on the pool would hold the drain */
  mp_loop_drain(S->loop); /* mp.sleep's timer too (lcore.c) */
  free(S->sleepers);
  S->sleepers = NULL;
  /* mp.stdout's bytes still in C's buffer (their drain was cancelled):
   * out now if stdout takes them without blocking, else exit() or the
   * host's next flush writes them (docs/embedding.md) */
  if (S->before_wait) mp_os_stdout_drain(mp_os_stdhandle(1));
  struct mp_loop_stats st;
  mp_loop_stats(S->loop, &st);
  int r = S->own_loop ? mp_loop_close(S->loop) : 0;
  if (!S->own_loop) mp_loop_set_data(S->loop, NULL); /* the host's again */
  S->loop = NULL;
  lmp_ptrset_free(&S->streams); /* the streams were finalized first */
  lmp_leakcheck_end(S, st.ops_live, r);
  return 0;
}

const char *moonport_version(void) { return MOONPORT_VERSION; }

struct mp_loop *moonport_loop(lua_State *L) {
  struct lmp_state *S = lmp_getstate(L);
  return S ? S->loop : NULL;
}

/* package.preload loader of an embedded module: runs its chunk (upvalue
 * 1) with the core table (upvalue 2). */
static int embedded_loader(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_call(L, 1, 1);
  return 1;
}

/* Loads each embedded module: "moonport" is run with the core table and
 * returns the module; the others go to package.preload, and get the core
 * table as their argument too. */
static void load_modules(lua_State *L, int core) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const struct lmp_embedded *m = lmp_embedded; m->name; m++) {
    if (strcmp(m->name, "moonport") == 0) continue;
    lua_pushfstring(L, "=%s", m->name);
    if (luaL_loadbufferx(L, m->src, m->len, lua_tostring(L, -1), "t"))
      lua_error(L);
    lua_remove(L, -2);
    lua_pushvalue(L, core);
    lua_pushcclosure(L, embedded_loader, 2);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
  for (const struct lmp_embedded *m = lmp_embedded; m->name; m++) {
    if (strcmp(m->name, "moonport") != 0) continue;
    if (luaL_loadbufferx(L, m->src, m->len, "=moonport", "t") != LUA_OK)
      lua_error(L);
    lua_pushvalue(L, core);
    lua_call(L, 1, 1);
    return;
  }
  luaL_error(L, "moonport: init module missing from the build");
}

int moonport_open(lua_State *L, struct mp_loop *loop) {
  /* One scheduler per state: a second open returns the same module. */
  if (lua_getfield(L, LUA_REGISTRYINDEX, "moonport.module") == LUA_TTABLE)
    return 1;
  lua_pop(L, 1);
  struct lmp_state *S = lua_newuserdatauv(L, sizeof *S, 0);
  memset(S, 0, sizeof *S);
  luaL_newmetatable(L, LMP_STATE);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  if (loop && mp_loop_data(loop))
    return luaL_error(L, "moonport_open: the loop's data pointer is in "
                         "use (moonport keeps its state there)");
  if (!loop) {
    int r = mp_loop_new(&loop, NULL);
    if (r < 0)
      return luaL_error(L, "moonport: cannot start the loop: %s (%s)",
                        mp_strerror(r), mp_errname(r));
    S->own_loop = 1;
  }
  S->loop = loop;
  mp_loop_set_data(loop, S); /* op callbacks find S there (lcore.h) */
  lmp_leakcheck_start(S);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  S->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, LMP_STATE_KEY);
  lua_newtable(L);
  S->anchors = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  S->waiters = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L); /* done[task] = co: weak keys */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  S->done = luaL_ref(L, LUA_REGISTRYINDEX);

  lua_newtable(L); /* the core table */
  int core = lua_gettop(L);
  lmp_open_core(L, S);
  lmp_open_sched(L, S);
  lmp_open_task(L, S);
  lmp_open_chan(L, S);
  lmp_open_sem(L, S);
  lmp_open_deadline(L, S);
  lmp_open_work(L, S);
  lmp_open_worker(L, S);
  lmp_open_repl(L, S);
  lmp_open_coro(L, S);
  lmp_open_file(L, S);
  lmp_open_fs(L, S);
  lmp_open_socket(L, S);
  lmp_open_server(L, S);
  lmp_open_udp(L, S);
  lmp_open_dns(L, S);
  lmp_open_watch(L, S);
  lmp_open_proc(L, S);
  lmp_open_fsx(L, S); /* adds to the file and stream classes */
#ifdef MP_WITH_HTTP
  lmp_open_http(L, S);
#endif
  lmp_open_tls(L, S); /* core.tls_*, stream:tlsinfo */
  load_modules(L, core);
  lmp_push_debug(L, S);
  lua_setfield(L, -2, "debug");
  lua_remove(L, core);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "moonport.module");
  return 1;
}
