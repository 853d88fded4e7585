/* bench/http/floor.c: the floor of raw_hello.lua's serve() in the Lua the
 * command links (Debian's liblua5.4): the same function, run against a
 * fake stream whose read() interns each request line from a byte buffer
 * (as any stream has to) and suspends once per request (the wait for the
 * next one), and whose write() takes its string and returns; no object
 * check, no IO, no loop: a C driver resumes the coroutine once per
 * request, as moonport's scheduler does. Its user instructions per
 * request are what the script itself costs; moonport's part is the rest
 * (bench/http_floor.sh; docs/performance.md, httpcpu3).
 *
 *   cc -O2 -o floor bench/http/floor.c $(pkg-config --cflags --libs lua5.4)
 *   ./floor N bench/http/raw_hello.lua     serves N requests */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What wrk sends, one request per resume. */
static const char REQ[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1:18391\r\n\r\n";

struct fake { size_t off; };

static int take_line(lua_State *L, struct fake *s) {
  const char *p = REQ + s->off;
  const char *nl = memchr(p, '\n', sizeof REQ - 1 - s->off);
  lua_pushlstring(L, p, (size_t)(nl - p));
  s->off = (size_t)(nl - REQ) + 1;
  if (s->off == sizeof REQ - 1) s->off = 0;
  return 1;
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return take_line(L, (struct fake *)ctx);
}

static int fake_read(lua_State *L) {
  struct fake *s = lua_touserdata(L, 1);
  if (s->off == 0) return lua_yieldk(L, 0, (lua_KContext)s, read_k);
  return take_line(L, s);
}

static int fake_write(lua_State *L) {
  luaL_checkstring(L, 2);
  lua_settop(L, 1);
  return 1;
}

static int fake_nop(lua_State *L) {
  (void)L;
  return 0;
}

/* serve() from the script: the text from "local BODY" up to "local
 * function listen", run as a chunk that returns it. */
static int load_serve(lua_State *L, const char *path) {
  FILE *f = fopen(path, "rb");
  static char src[16384];
  size_t n = f ? fread(src, 1, sizeof src - 1, f) : 0;
  if (f) fclose(f);
  src[n] = 0;
  char *a = strstr(src, "local BODY"), *b = a ? strstr(a, "local function listen") : NULL;
  if (!b) return fprintf(stderr, "%s: no serve() found\n", path), -1;
  lua_pushlstring(L, a, (size_t)(b - a));
  lua_pushliteral(L, "\nreturn serve\n");
  lua_concat(L, 2);
  if (luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=serve") ||
      lua_pcall(L, 0, 1, 0))
    return fprintf(stderr, "%s\n", lua_tostring(L, -1)), -1;
  return 0;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_newmetatable(L, "fake");
  lua_newtable(L);
  lua_pushcfunction(L, fake_read);
  lua_setfield(L, -2, "read");
  lua_pushcfunction(L, fake_write);
  lua_setfield(L, -2, "write");
  lua_pushcfunction(L, fake_nop);
  lua_setfield(L, -2, "setoption");
  lua_pushcfunction(L, fake_nop);
  lua_setfield(L, -2, "close");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  if (load_serve(L, argc > 2 ? argv[2] : "bench/http/raw_hello.lua") < 0)
    return 1;
  lua_State *co = lua_newthread(L);
  lua_rotate(L, -2, 1);
  lua_xmove(L, co, 1); /* serve */
  struct fake *s = lua_newuserdatauv(co, sizeof *s, 0);
  s->off = 0;
  luaL_setmetatable(co, "fake");
  for (long i = 0; i < n; i++) {
    int nres;
    if (lua_resume(co, L, i == 0 ? 1 : 0, &nres) != LUA_YIELD) {
      fprintf(stderr, "serve() ended: %s\n", lua_tostring(co, -1));
      return 1;
    }
  }
  lua_close(L);
  return 0;
}
