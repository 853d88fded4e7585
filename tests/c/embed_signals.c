/* embed_signals.c: a host's signals around moonport's routing
 * (mp.proc.signal): routed while a state lives, kept while no task waits,
 * owned by one loop at a time (another gets EBUSY), and given back, mask
 * and all, when the state closes, so the host's own handler runs again.
 * Prints "N passed, N failed". */
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "moonport.h"

static int passed, failed;
#define CHECK(name, cond)                                             \
  do {                                                                \
    if (cond) { passed++; printf("ok - %s\n", name); }                \
    else { failed++; printf("not ok - %s\n", name); }                 \
  } while (0)

static volatile sig_atomic_t handled;
static void on_usr1(int sig) { (void)sig; handled++; }

static lua_State *open_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  moonport_open(L, NULL); /* its own loop */
  lua_setglobal(L, "mp");
  return L;
}

static int run(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) == LUA_OK) return 1;
  fprintf(stderr, "%s\n", lua_tostring(L, -1));
  lua_pop(L, 1);
  return 0;
}

static int blocked(int sig) {
  sigset_t cur;
  pthread_sigmask(SIG_SETMASK, NULL, &cur);
  return sigismember(&cur, sig);
}

int main(void) {
  signal(SIGUSR1, on_usr1);
  for (int round = 1; round <= 2; round++) {
    lua_State *L = open_state();
    CHECK("routes USR1 (nothing arrives: timeout)",
          run(L, "assert(select(2, mp.timeout(0.01, mp.proc.signal, "
                 "'USR1')) == 'timeout')"));
    CHECK("USR1 is blocked while routed", blocked(SIGUSR1));
    raise(SIGUSR1);
    CHECK("an arrival nobody waited for is kept",
          run(L, "assert(mp.proc.signal('USR1') == 'USR1')"));
    CHECK("the host's handler did not run", handled == round - 1);
    lua_State *L2 = open_state();
    CHECK("another loop gets EBUSY",
          run(L2, "local ok, msg, code = mp.proc.signal('USR1'); "
                  "assert(ok == nil and code == 'EBUSY', code)"));
    lua_close(L2);
    CHECK("USR1 still routed after the other loop closed", blocked(SIGUSR1));
    lua_close(L);
    CHECK("the mask is restored when the state closes", !blocked(SIGUSR1));
    raise(SIGUSR1);
    CHECK("the host's handler runs again", handled == round);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
