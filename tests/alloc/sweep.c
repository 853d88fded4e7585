/* sweep.c: the allocation-failure sweep (after SQLite's and Lua's).
 *
 * For every case below (a representative call of a public function), the
 * call runs with allocation N refused, and every later one too, for N = 1,
 * 2, 3, ... until a run needs no refusal. Allocations counted: the Lua
 * state's (a lua_Alloc) and the loop's (mp_loop_set_alloc_fail: op
 * records, owned buffers, the timer heap, the threadpool, the bindings'
 * buffers). Each run gets a fresh state and loop and must
 *
 *   - succeed, return an error, or raise "not enough memory", never
 *     anything else (a crash or a wrong error is a bug);
 *   - once allocation works again, settle back to where it started: no
 *     task, op, timer, pool job, task anchor or descriptor left, no
 *     temporary file of writefile left in the directory;
 *   - close: every byte the Lua state allocated is freed, the loop drains
 *     and closes (nothing left under the kernel), no op record is lost;
 *   - under ASan, leak nothing (LSan runs after each of the first 32
 *     runs of a case, then every 16th and the last).
 *
 *   mp_alloc_sweep              every case, each in its own process
 *   mp_alloc_sweep NAME [N]     one case (or one run) in this process
 *   mp_alloc_sweep planted-fd | planted-op
 *                               a host that leaks on purpose: the state's
 *                               MOONPORT_LEAK_CHECK must catch it
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "moonport.h"

/* LSan's on-demand check, present under ASan. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

struct sweep_case {
  const char *name;
  const char *setup; /* runs before each run, allocation working */
  const char *body;  /* the call, as the body of a task function */
  const char *known; /* a bug the sweep found, not fixed yet: skipped */
};

/* DIR is a fresh temporary directory; setup recreates its files before
 * every run. Bodies tolerate nil, msg results (an allocation the core
 * refused comes back as ENOMEM) and never wait for something a failed
 * call would not bring: every wait is bounded. */
#define FILES "mp.fs.writefile(DIR .. '/r', 'line1\\n42 rest\\nabc\\n')"
static const struct sweep_case cases[] = {
  {"spawn_join", NULL,
   "local t = mp.spawn(function(a) return a, {} end, 1) t:join()"},
  {"cancel", NULL,
   "local t = mp.spawn(mp.sleep, 10) mp.sleep(0) t:cancel() t:join()"},
  {"sleep", NULL, "mp.sleep(0.001) mp.sleep(0)"},
  {"timeout_expires", NULL, "mp.timeout(0.001, mp.sleep, 10)"},
  {"timeout_returns", NULL,
   "mp.timeout(10, function() mp.sleep(0) return 1 end)"},
  {"scope", NULL,
   "mp.scope(function(s) s:spawn(mp.sleep, 0) s:spawn(mp.sleep, 0.001) "
   "end)"},
  {"scope_failure", NULL,
   "pcall(mp.scope, function(s) s:spawn(error, 'x') "
   "s:spawn(mp.sleep, 10) end)"},
  {"channel", NULL,
   "local ch = mp.channel(1)\n"
   "local t = mp.spawn(function() while ch:recv() do end end)\n"
   "local ok, e = pcall(function() ch:send(1) ch:send(2) end)\n"
   "ch:close() t:join() assert(ok, e)"},
  {"channel_rendezvous", NULL,
   "local ch = mp.channel()\n"
   "local t = mp.spawn(function() mp.timeout(0.05, ch.send, ch, 1) end)\n"
   "mp.timeout(0.05, ch.recv, ch) t:join()"},
  /* More than one block of op records (128). */
  {"many_sleepers", NULL,
   "local ts = {}\n"
   "for i = 1, 130 do ts[i] = mp.spawn(mp.sleep, 0.001) end\n"
   "for i = 1, 130 do ts[i]:join() end"},
  {"nested_timeouts", NULL,
   "mp.timeout(1, mp.timeout, 0.001, mp.sleep, 1)"},
  {"coroutine_wrap", NULL,
   "local g = coroutine.wrap(function() mp.sleep(0) coroutine.yield(1)\n"
   "  return 2 end) g() g()"},
  {"channel_timeout", NULL,
   "local ch = mp.channel() mp.timeout(0.001, ch.recv, ch) local _ = #ch"},
  {"select", NULL,
   "local a, b = mp.channel(), mp.channel(1)\n"
   "local t = mp.spawn(function() mp.timeout(0.05, a.send, a, 1) end)\n"
   "mp.timeout(0.05, mp.select, b, a) t:join()\n"
   "local u = mp.spawn(mp.sleep, 0.001)\n"
   "mp.timeout(0.05, mp.select, a, u) u:join()"},
  {"lock_semaphore_event", NULL,
   "local l, s, e = mp.lock(), mp.semaphore(1), mp.event()\n"
   "local t = mp.spawn(function()\n"
   "  mp.timeout(0.05, l.with, l, s.with, s, e.wait, e) end)\n"
   "mp.sleep(0.001) e:set() t:join()\n"
   "assert(not l:locked() and s:available() == 1)"},
  {"ticker", NULL,
   "local tk = mp.ticker(0.001) mp.timeout(0.05, tk.next, tk)\n"
   "mp.timeout(0.05, tk.next, tk) tk:close() tk:next()"},
  {"work", NULL,
   "mp.work(function(a, t) return a + 1, t end, 1, {x = 's', 2})"},
  {"work_error", NULL, "pcall(mp.work, function() error('x') end)"},
  {"fs_read_cancel", FILES,
   "local t = mp.spawn(function()\n"
   "  local f <close> = mp.fs.open(DIR .. '/r') if f then f:read('a') end\n"
   "end) mp.sleep(0) t:cancel() t:join()"},
  {"fs_small_writes", NULL,
   "local f = mp.fs.open(DIR .. '/s', 'w')\n"
   "if f then for i = 1, 100 do f:write(i, ' ') end f:close() end"},
  {"fs_open_modes", FILES,
   "for _, m in ipairs {'r+', 'a+', 'w+', 'x'} do\n"
   "  local f = mp.fs.open(DIR .. '/r', m) if f then f:close() end end"},
  {"fs_open_write_close", NULL,
   "local f = mp.fs.open(DIR .. '/w', 'w')\n"
   "if f then f:write('abc', 1, '\\n') f:close() end"},
  /* more ops in flight than a handle tracks without allocating */
  {"fs_preads_in_flight", FILES,
   "local f = mp.fs.open(DIR .. '/r')\n"
   "if f then local ts = {}\n"
   "  for i = 1, 4 do ts[i] = mp.spawn(f.pread, f, 2, i) end\n"
   "  mp.sleep(0) f:close()\n"
   "  for i = 1, 4 do if ts[i] then ts[i]:join() end end end"},
  {"fs_read_formats", FILES,
   "local f = mp.fs.open(DIR .. '/r')\n"
   "if f then f:read('l') f:read('n') f:read(3) f:read('a') f:close() end"},
  /* the same through ops (the default reads the page cache at once) */
  {"fs_read_formats_ops", FILES,
   "mp.fs._nowait(false)\n"
   "local f = mp.fs.open(DIR .. '/r') mp.fs._nowait(true)\n"
   "if f then f:read('l') f:read('n') f:read(3) f:read('a') f:close() end"},
  {"fs_lines", FILES,
   "local f = mp.fs.open(DIR .. '/r')\n"
   "if f then for l in f:lines('L') do end f:close() end"},
  {"fs_seek_pread_pwrite", NULL,
   "local f = mp.fs.open(DIR .. '/p', 'w+')\n"
   "if f then f:pwrite('hello', 10) f:pread(5, 10) f:seek('set', 2)\n"
   "f:write('x') f:seek('cur') f:sync() f:stat() f:close() end"},
  {"fs_big_write", NULL,
   "local f = mp.fs.open(DIR .. '/b', 'w')\n"
   "if f then f:write(string.rep('x', 100000)) f:flush() f:close() end"},
  {"fs_gc_with_buffered_write", NULL,
   "local f = mp.fs.open(DIR .. '/g', 'a')\n"
   "if f then f:write('zz') end f = nil collectgarbage()",
   "Lua drops a finalizer whose call cannot be allocated (lgc.c GCTM): "
   "the dropped file's descriptor is never closed (N=11)"},
  {"readfile", FILES, "mp.fs.readfile(DIR .. '/r')"},
  {"writefile", NULL, "mp.fs.writefile(DIR .. '/wf', 'data')"},
  {"stat", FILES,
   "mp.fs.stat(DIR .. '/r') mp.fs.lstat(DIR) mp.fs.stat(DIR .. '/nope')"},
  {"rename_remove", "mp.fs.remove(DIR .. '/m2') " FILES,
   "mp.fs.rename(DIR .. '/r', DIR .. '/m2') mp.fs.remove(DIR .. '/m2')"},
  {"mkdir_rmdir", "mp.fs.rmdir(DIR .. '/nd')",
   "mp.fs.mkdir(DIR .. '/nd') mp.fs.rmdir(DIR .. '/nd')"},
  {"dir", FILES, "mp.fs.dir(DIR)"},
  {"tcp", NULL,
   "local s <close> = mp.net.listen('127.0.0.1', 0)\n"
   "if not s then return end\n"
   "s:settimeout(0.5)\n"
   "local _, port = s:sockname()\n"
   "local t = mp.spawn(function()\n"
   "  local c <close> = s:accept()\n"
   "  if c then c:settimeout(0.5) c:write('hi\\n', 'there') c:shutdown()\n"
   "    c:read('a') end\n"
   "end)\n"
   "local c <close> = mp.net.connect('127.0.0.1', port, {timeout = 0.5})\n"
   "if c then c:settimeout(0.5) c:setoption('nodelay', true) c:read('l')\n"
   "  c:recv(10)\n"
   "  c:peername() end\n"
   "t:join()"},
  {"tcp_timeout", NULL,
   "local s <close> = mp.net.listen('127.0.0.1', 0)\n"
   "if s then s:settimeout(0.001) s:accept() end"},
  {"unix", "os.remove(DIR .. '/sock')",
   "local s <close> = mp.net.listen_unix(DIR .. '/sock')\n"
   "if not s then return end\n"
   "s:settimeout(0.5)\n"
   "local t = mp.spawn(function()\n"
   "  local c <close> = s:accept() if c then c:write('x') end end)\n"
   "local c <close> = mp.net.connect_unix(DIR .. '/sock')\n"
   "if c then c:settimeout(0.5) c:read(1) end\n"
   "t:join()"},
  {"udp", NULL,
   "local a <close> = mp.net.udp('127.0.0.1', 0)\n"
   "local b <close> = mp.net.udp('127.0.0.1', 0)\n"
   "if not (a and b) then return end\n"
   "local _, port = b:sockname()\n"
   "b:settimeout(0.5)\n"
   "if a:sendto('ping', '127.0.0.1', port) then b:recvfrom() end"},
  {"resolve", NULL,
   "mp.net.resolve('127.0.0.1') mp.net.resolve('::1')"},
  {"connect_refused", NULL,
   "local s = mp.net.listen('127.0.0.1', 0)\n"
   "if not s then return end\n"
   "local _, port = s:sockname() s:close()\n"
   "mp.net.connect('127.0.0.1', port)"},
};
enum { NCASES = sizeof cases / sizeof cases[0], MAX_N = 20000,
       CASE_TIMEOUT_S = 120 };

/* The allocation counter shared by the Lua state and the loop. From the
 * fail_at-th allocation on, every allocation is refused. */
struct ctx {
  long count, fail_at;
  int armed, refused;
  long long bytes; /* the Lua state's live bytes */
};

static int refuse(struct ctx *c) {
  if (!c->armed || ++c->count < c->fail_at) return 0;
  c->refused = 1;
  return 1;
}

/* Lua assumes shrinking never fails, so only growth is refused. */
static void *l_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  struct ctx *c = ud;
  size_t old = p ? osize : 0;
  if (nsize == 0) {
    c->bytes -= (long long)old;
    free(p);
    return NULL;
  }
  if (nsize > old && refuse(c)) return NULL;
  void *q = realloc(p, nsize);
  if (q) c->bytes += (long long)nsize - (long long)old;
  return q;
}

static int core_refuse(void *ud, size_t size) {
  (void)size;
  return refuse(ud);
}

static char dir[256];
static char problem[2048]; /* what went wrong in the last run */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  size_t n = strlen(problem);
  va_list ap;
  snprintf(problem + n, sizeof problem - n, "%s", n ? "; " : "");
  n = strlen(problem);
  va_start(ap, fmt);
  vsnprintf(problem + n, sizeof problem - n, fmt, ap);
  va_end(ap);
}

/* Settles the state after a run (allocation working again) and checks it
 * is back where it was: leftover tasks run to their end, garbage is
 * collected, the loop runs until closes complete (bounded). */
static const char *const settle_lua =
    "local base, dir = ...\n"
    "local ok, err = pcall(mp.run)\n"
    "local function probs()\n"
    "  collectgarbage() collectgarbage()\n"
    "  local s, p = mp.debug.stats(), {}\n"
    "  for _, k in ipairs {'ops_inflight', 'ops_live', 'timers',\n"
    "      'pool_jobs', 'tasks', 'anchors', 'waiters', 'registry'} do\n"
    "    if s[k] > base[k] then\n"
    "      p[#p + 1] = (s[k] - base[k]) .. ' ' .. k .. ' left'\n"
    "    end\n"
    "  end\n"
    "  for fd, what in pairs(mp.debug.fds()) do\n"
    "    if base.fds[fd] ~= what then\n"
    "      p[#p + 1] = 'descriptor ' .. fd .. '=' .. what .. ' left'\n"
    "    end\n"
    "  end\n"
    "  return p\n"
    "end\n"
    "local deadline, p = mp.now() + 1\n"
    "repeat p = probs() if #p == 0 then break end mp.sleep(0.01)\n"
    "until mp.now() > deadline\n"
    "for _, name in ipairs(mp.fs.dir(dir) or {}) do\n"
    "  if name:find('mp-tmp', 1, true) then\n"
    "    p[#p + 1] = 'temporary file ' .. name .. ' left'\n"
    "    os.remove(dir .. '/' .. name)\n"
    "  end\n"
    "end\n"
    "if not ok then p[#p + 1] = 'mp.run afterwards: ' .. tostring(err) end\n"
    "if #p > 0 and os.getenv('SWEEP_VERBOSE') then\n"
    "  for _, v in pairs(debug.getregistry()) do\n"
    "    if type(v) == 'table' then\n"
    "      for co, t in pairs(v) do -- the anchors: co -> task\n"
    "        if type(co) == 'thread' and tostring(t):find('^task') then\n"
    "          p[#p + 1] = tostring(t) .. ': ' .. debug.traceback(co)\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return table.concat(p, '; ')\n";

static const char *const base_lua =
    "collectgarbage() collectgarbage()\n"
    "local s = mp.debug.stats() s.fds = mp.debug.fds() return s\n";

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1;
}

/* One run with allocations refused from fail_at on (0: never). Returns
 * whether an allocation was refused; problems go to `problem`. */
static int run_once(const struct sweep_case *c, long fail_at) {
  struct ctx ctx = {0, fail_at, 0, 0, 0};
  struct mp_loop *loop;
  int fds0 = count_fds();
  problem[0] = 0;
  int r = mp_loop_new(&loop, NULL);
  if (r < 0) {
    fail("mp_loop_new: %s", mp_errname(r));
    return 0;
  }
  lua_State *L = lua_newstate(l_alloc, &ctx);
  luaL_openlibs(L);
  moonport_open(L, loop);
  lua_setglobal(L, "mp");
  lua_pushstring(L, dir);
  lua_setglobal(L, "DIR");
  mp_loop_set_alloc_fail(loop, core_refuse, &ctx);
  if (c->setup) {
    char chunk[1024];
    snprintf(chunk, sizeof chunk, "mp.run(function() %s end)", c->setup);
    if (luaL_dostring(L, chunk) != LUA_OK)
      fail("setup: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
  }
  if (luaL_dostring(L, base_lua) != LUA_OK) abort(); /* snapshot: 1 */
  lua_getglobal(L, "mp");
  lua_getfield(L, -1, "run");
  lua_remove(L, -2);
  lua_pushfstring(L, "return function() %s\nend", c->body);
  if (luaL_loadstring(L, lua_tostring(L, -1)) != LUA_OK) {
    fail("body: %s", lua_tostring(L, -1));
    lua_close(L);
    mp_loop_drain(loop);
    mp_loop_close(loop);
    return 0;
  }
  lua_remove(L, -2);
  lua_call(L, 0, 1); /* mp.run, the body function */

  ctx.armed = 1;
  int st = lua_pcall(L, 1, 0, 0);
  ctx.armed = 0;
  if (st != LUA_OK && st != LUA_ERRMEM) {
    const char *msg = lua_tostring(L, -1);
    if (!msg || !strstr(msg, "not enough memory"))
      fail("raised: %s", msg ? msg : "(not a string)");
  }
  lua_settop(L, 1);

  if (luaL_loadstring(L, settle_lua) != LUA_OK) abort();
  lua_insert(L, 1);
  lua_pushstring(L, dir);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK)
    fail("settling: %s", lua_tostring(L, -1));
  else if (*lua_tostring(L, -1))
    fail("%s", lua_tostring(L, -1));
  lua_close(L);
  if (ctx.bytes != 0) {
    char n[32];
    snprintf(n, sizeof n, "%lld", ctx.bytes);
    fail("the closed Lua state still holds %s bytes", n);
  }
  struct mp_loop_stats s;
  mp_loop_stats(loop, &s);
  if (s.ops_inflight) fail("ops in flight after the state closed");
  if (s.ops_live) fail("op records never released");
  mp_loop_drain(loop);
  r = mp_loop_close(loop);
  if (r != 0) fail("mp_loop_close: %s", mp_errname(r));
  if (count_fds() != fds0) fail("descriptors left after close");
  return ctx.refused;
}

/* LSan's check costs more than a run: it runs after each of the first 32
 * runs of a case, then after every 16th and the last, so a leak is named
 * with the run, or the last 16 runs, that caused it. */
static void lsan_check(long n, long since) {
  if (__lsan_do_recoverable_leak_check &&
      __lsan_do_recoverable_leak_check()) {
    if (since == n) fail("LSan found a leak (report above)");
    else fail("LSan found a leak in runs %ld..%ld (report above)", since, n);
  }
}

/* The N being run, shared with the parent so a crash can name it. */
static volatile long *shared_n;

/* Sweeps one case: N = 1, 2, ... until a run needs no refusal. */
static int sweep(const struct sweep_case *c, long *runs) {
  int bad = 0;
  long unchecked = 1; /* the first run LSan has not looked at */
  for (long n = 1; n <= MAX_N; n++) {
    *shared_n = n;
    int refused = run_once(c, n);
    if (n <= 32 || n % 16 == 0 || !refused) {
      lsan_check(n, unchecked);
      unchecked = n + 1;
    }
    if (problem[0]) {
      fprintf(stderr, "  %s N=%ld: %s\n", c->name, n, problem);
      if (++bad >= 3) break;
    }
    *runs = n;
    if (!refused) return bad;
  }
  if (!bad) fprintf(stderr, "  %s: still refusing at N=%d\n", c->name, MAX_N);
  return 1;
}

static int planted(const char *what) {
  setenv("MOONPORT_LEAK_CHECK", "1", 1);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  moonport_open(L, NULL);
  if (strcmp(what, "planted-fd") == 0)
    (void)open("/dev/null", O_RDONLY | O_CLOEXEC); /* never closed */
  else
    (void)mp_op_new(moonport_loop(L), NULL, NULL); /* never released */
  lua_close(L); /* the leak check ends the process with status 3 */
  return 0;
}

static int find(const char *name) {
  for (int i = 0; i < NCASES; i++)
    if (strcmp(cases[i].name, name) == 0) return i;
  fprintf(stderr, "no case named %s\n", name);
  exit(2);
}

int main(int argc, char **argv) {
  static long n_storage;
  shared_n = &n_storage;
  if (argc > 1 && strncmp(argv[1], "planted-", 8) == 0)
    return planted(argv[1]);
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/mp-sweep-XXXXXX", tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  int failed = 0;
  if (argc > 1) { /* one case, or one run, in this process (for gdb) */
    const struct sweep_case *c = &cases[find(argv[1])];
    long runs = 0;
    if (argc > 2) {
      int refused = run_once(c, atol(argv[2]));
      lsan_check(atol(argv[2]), atol(argv[2]));
      printf("%s N=%s: %s%s\n", c->name, argv[2],
             refused ? "refused" : "no refusal",
             problem[0] ? problem : "");
      failed = problem[0] != 0;
    } else {
      failed = sweep(c, &runs);
    }
  } else {
    shared_n = mmap(NULL, sizeof *shared_n, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < NCASES; i++) {
      struct timespec t0, t1;
      if (cases[i].known && !getenv("SWEEP_KNOWN")) {
        printf("ok %d - %s # skip known bug: %s\n", i + 1, cases[i].name,
               cases[i].known);
        continue;
      }
      clock_gettime(CLOCK_MONOTONIC, &t0);
      *shared_n = 0;
      fflush(stdout);
      pid_t pid = fork();
      if (pid == 0) {
        long runs = 0;
        alarm(CASE_TIMEOUT_S);
        int bad = sweep(&cases[i], &runs);
        printf("%s %d - %s (%ld runs)\n", bad ? "not ok" : "ok", i + 1,
               cases[i].name, runs);
        fflush(stdout);
        _exit(bad ? 1 : 0);
      }
      int status;
      waitpid(pid, &status, 0);
      clock_gettime(CLOCK_MONOTONIC, &t1);
      if (!WIFEXITED(status) || WEXITSTATUS(status)) failed++;
      if (WIFSIGNALED(status))
        printf("not ok %d - %s: killed by signal %d at N=%ld%s\n", i + 1,
               cases[i].name, WTERMSIG(status), *shared_n,
               WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
      else if (WEXITSTATUS(status) > 1)
        printf("not ok %d - %s: exit status %d at N=%ld\n", i + 1,
               cases[i].name, WEXITSTATUS(status), *shared_n);
    }
    printf("%d cases, %d failed\n", NCASES, failed);
  }
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return failed ? 1 : 0;
}
