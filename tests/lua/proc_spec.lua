-- proc_spec.lua: mp.proc: spawn, pipes, wait, kill, run, signals; no
-- zombies, no descriptor leaks (the helper's leak check runs after each).
local H = require "helper"
local mp = H.mp
local proc = mp.proc

-- The zombie children of this process (pids), from /proc.
local function zombies()
  if H.windows then return {} end -- (no zombies: a handle per child)
  local me, out = tostring(H.pid()), {}
  local ls = io.popen("ls /proc")
  for d in ls:lines() do
    if d:match("^%d+$") then
      local f = io.open("/proc/" .. d .. "/stat")
      local st = f and f:read("a")
      if f then f:close() end
      -- pid (comm) state ppid ...
      local state, ppid = st and st:match("%) (%S) (%d+)")
      if ppid == me and state == "Z" then out[#out + 1] = tonumber(d) end
    end
  end
  ls:close()
  return out
end

describe("mp.proc.spawn", function()
  it("runs a program with a piped stdout and gives its exit code", function()
    H.run(function()
      local p = assert(proc.spawn({ "echo", "hello", "world" },
                                  { stdout = "pipe" }))
      assert.is_number(p.pid)
      assert.is_nil(p.stdin)
      assert.is_nil(p.stderr)
      assert.equal("hello world\n", p.stdout:read("a"))
      assert.equal(0, p:wait())
      assert.equal(0, p:wait()) -- the same result again
      p.stdout:close()
      local q = assert(proc.spawn({ "sh", "-c", "exit 7" }))
      assert.equal(7, q:wait())
    end)
  end)

  it("reports an exit by signal as nil, 'signal', signo", function()
    H.run(function()
      local p = assert(proc.spawn({ "sleep", "10" }))
      assert.is_true(p:kill("KILL"))
      assert.same({ nil, "signal", 9 }, { p:wait() })
      local q = assert(proc.spawn({ "sleep", "10" }))
      assert.is_true(q:kill())
      assert.same({ nil, "signal", 15 }, { q:wait() })
      local r = assert(proc.spawn({ "sleep", "10" }))
      assert.is_true(r:kill(2))
      assert.same({ nil, "signal", 2 }, { r:wait() })
    end)
  end)

  it("fails at spawn for a missing program or a bad cwd", function()
    H.run(function()
      local p, msg, code = proc.spawn({ "/nonexistent/program" })
      assert.is_nil(p)
      assert.equal("ENOENT", code)
      assert.matches("nonexistent", msg)
      assert.same({ nil }, { (proc.spawn({ "no-such-program-moonport" })) })
      p, msg, code = proc.spawn({ "true" }, { cwd = "/nonexistent/dir" })
      assert.is_nil(p)
      assert.equal("ENOENT", code)
      assert.matches("/nonexistent/dir", msg, 1, true)
      p, msg, code = proc.spawn({ "true" }, { cwd = "/etc/passwd" })
      assert.equal("ENOTDIR", code)
      -- with pipes asked for: nothing left open (the leak check)
      p, msg, code = proc.spawn({ "/nonexistent" }, {
        stdin = "pipe", stdout = "pipe", stderr = "pipe" })
      assert.equal("ENOENT", code)
      assert.same({}, zombies())
    end)
  end)

  it("raises on misuse", function()
    assert.has_error(function() proc.spawn("ls") end,
                     "bad argument #1 to 'spawn' (table expected, got string)")
    assert.has_error(function() proc.spawn({}) end)
    assert.has_error(function() proc.spawn({ "ls", {} }) end)
    assert.has_error(function() proc.spawn({ "ls" }, { stdout = "file" }) end)
    assert.has_error(function() proc.spawn({ "ls" }, { env = { 1 } }) end)
    assert.has_error(function() proc.spawn({ "ls" }, { cwd = 3 }) end)
    H.run(function()
      local p = assert(proc.spawn({ "true" }))
      assert.has_error(function() p:kill("NOPE") end)
      assert.has_error(function() p:kill({}) end)
      p:wait()
    end)
  end)

  it("round-trips 1 MiB through cat", function()
    H.run(function()
      local data = {}
      for i = 1, 1 << 14 do data[i] = string.format("%063d\n", i) end
      data = table.concat(data)
      local p = assert(proc.spawn({ "cat" }, { stdin = "pipe",
                                              stdout = "pipe" }))
      local w = mp.spawn(function()
        assert(p.stdin:write(data))
        p.stdin:close()
      end)
      local got = p.stdout:read("a")
      assert(w:join())
      assert.equal(#data, #got)
      assert.is_true(got == data)
      assert.equal(0, p:wait())
      p.stdout:close()
    end)
  end)

  it("reads 1 MiB from stdout and from stderr in two tasks", function()
    H.run(function()
      -- 64 KiB to each in turn: reading one alone would deadlock
      local p = assert(proc.spawn(
        { "sh", "-c", "i=0; while [ $i -lt 16 ]; do head -c 65536 " ..
          "/dev/zero; head -c 65536 /dev/zero >&2; i=$((i+1)); done" },
        { stdout = "pipe", stderr = "pipe" }))
      local a = mp.spawn(function() return #p.stdout:read("a") end)
      local b = mp.spawn(function() return #p.stderr:read("a") end)
      local ok = mp.timeout(20, function()
        assert.same({ true, 1048576 }, { a:join() })
        assert.same({ true, 1048576 }, { b:join() })
      end)
      assert.is_true(ok)
      assert.equal(0, p:wait())
      p.stdout:close()
      p.stderr:close()
    end)
  end)

  it("gives EPIPE, not SIGPIPE, writing to a child that exited", function()
    H.run(function()
      local p = assert(proc.spawn({ "head", "-c", "1" },
                                  { stdin = "pipe", stdout = "null" }))
      local ok, msg, code = p.stdin:write(string.rep("x", 10 << 20))
      assert.is_nil(ok)
      assert.is_string(msg)
      assert.equal("EPIPE", code)
      assert.equal(0, p:wait())
      p.stdin:close()
    end)
  end)

  it("pipes have stream:lines", function()
    H.run(function()
      local p = assert(proc.spawn({ "printf", "a\nbb\n\nccc" },
                                  { stdout = "pipe" }))
      local got = {}
      for l in p.stdout:lines() do got[#got + 1] = l end
      assert.same({ "a", "bb", "", "ccc" }, got)
      p.stdout:close()
      assert.has_error(function() p.stdout:lines() end)
      p = assert(proc.spawn({ "printf", "1 2\n3 4\n" }, { stdout = "pipe" }))
      got = {}
      for a, b in p.stdout:lines("n", "n") do got[#got + 1] = a + b end
      assert.same({ 3, 7 }, got)
      p.stdout:close()
      assert.equal(0, p:wait())
    end)
  end)

  it("sets the environment and the working directory", function()
    H.run(function()
      local p = assert(proc.spawn({ "sh", "-c", "echo $FOO-$HOME; pwd" }, {
        stdout = "pipe", env = { FOO = "bar", PATH = os.getenv("PATH") },
        cwd = "/tmp" }))
      assert.equal("bar-\n/tmp\n", p.stdout:read("a"))
      assert.equal(0, p:wait())
      p.stdout:close()
    end)
  end)

  it("passes no descriptor but 0..2 to the child", function()
    H.run(function()
      local keep = assert(mp.fs.open("/dev/null", "r")) -- one of ours
      -- ls opens /proc/self/fd itself: 0, 1, 2 and that one
      local out = assert(proc.run({ "ls", "/proc/self/fd" }))
      local n = 0
      for _ in out:gmatch("%d+") do n = n + 1 end
      assert.equal(4, n)
      keep:close()
    end)
  end)

  it("with /dev/null: stdin reads nothing, stdout is dropped", function()
    H.run(function()
      local out = assert(proc.run({ "sh", "-c", "cat; echo done; echo x >&2" },
                                  { stderr = "null" }))
      assert.equal("done\n", out)
    end)
  end)

  it("reaps 100 children at once: no zombies", function()
    H.run(function()
      local ps = {}
      for i = 1, 100 do ps[i] = assert(proc.spawn({ "true" })) end
      mp.scope(function(s)
        for i = 1, 100 do
          s:spawn(function() assert.equal(0, ps[i]:wait()) end)
        end
      end)
      assert.same({}, zombies())
    end)
  end)

  it("reaps a child whose process object was collected", function()
    H.run(function()
      local p = assert(proc.spawn({ "sleep", "0.1" }))
      local pid = p.pid
      p = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      local gone = false
      for _ = 1, 300 do
        mp.sleep(0.01)
        local f = io.open("/proc/" .. pid .. "/stat")
        if not f then gone = true break end
        f:close()
      end
      assert.is_true(gone)
    end)
  end)

  it("lets any number of tasks wait", function()
    H.run(function()
      local p = assert(proc.spawn({ "sh", "-c", "sleep 0.1; exit 4" }))
      local a = mp.spawn(function() return p:wait() end)
      local b = mp.spawn(function() return p:wait() end)
      assert.same({ true, 4 }, { a:join() })
      assert.same({ true, 4 }, { b:join() })
      assert.equal(4, p:wait())
    end)
  end)

  it("leaves the child waitable after a timed-out or cancelled wait",
     function()
    H.run(function()
      local p = assert(proc.spawn({ "sleep", "0.3" }))
      assert.same({ false, "timeout" }, { mp.timeout(0.05, p.wait, p) })
      local t = mp.spawn(function() return p:wait() end)
      mp.sleep(0.02)
      t:cancel()
      assert.same({ false, "cancelled" }, { t:join() })
      assert.equal(0, p:wait())
    end)
  end)

  it("kill on a reaped child is ESRCH", function()
    H.run(function()
      local p = assert(proc.spawn({ "true" }))
      assert.equal(0, p:wait())
      local ok, _, code = p:kill()
      assert.is_nil(ok)
      assert.equal("ESRCH", code)
    end)
  end)
end)

-- The contract again with a moonport child instead of Unix programs, so
-- that it runs on every system (Windows too: tests/win/skip.lua skips the
-- tests above that need sh, cat or /proc there). Children write with
-- mp.stdout (raw bytes): io.write on Windows writes "\r\n" (text mode).
describe("mp.proc with a moonport child", function()
  local MP = H.moonport()
  local dir
  setup(function() dir = H.tmpdir() end)
  teardown(function() H.rmtree(dir) end)

  -- argv running the Lua source src, with extra arguments
  local n = 0
  local function child(src, ...)
    n = n + 1
    local path = dir .. "/child" .. n .. ".lua"
    local f = assert(io.open(path, "wb"))
    f:write('local mp = require "moonport"\n', src)
    f:close()
    return { MP, path, ... }
  end

  it("passes its arguments as they are and gives the exit code", function()
    H.run(function()
      local args = { "a b", "", 'q"x', "back\\\\", 'tr\\"q', "end\\",
                     "tab\tnl\n", "plain" }
      local p = assert(proc.spawn(child([[
        for i = 1, #arg do mp.stdout:write("[", arg[i], "]") end
        os.exit(7)]], table.unpack(args)), { stdout = "pipe" }))
      local want = {}
      for i, a in ipairs(args) do want[i] = "[" .. a .. "]" end
      assert.equal(table.concat(want), p.stdout:read("a"))
      assert.equal(7, p:wait())
      assert.equal(7, p:wait()) -- the same result again
      p.stdout:close()
    end)
  end)

  it("reports a kill as nil, 'signal', signo", function()
    H.run(function()
      local src = "mp.sleep(10)"
      local p = assert(proc.spawn(child(src)))
      assert.is_true(p:kill("KILL"))
      assert.same({ nil, "signal", 9 }, { p:wait() })
      local q = assert(proc.spawn(child(src)))
      assert.is_true(q:kill())
      assert.same({ nil, "signal", 15 }, { q:wait() })
      local ok, _, code = q:kill()
      assert.is_nil(ok)
      assert.equal("ESRCH", code)
    end)
  end)

  it("round-trips 1 MiB through mp.stdin and mp.stdout", function()
    H.run(function()
      local data = {}
      for i = 1, 1 << 14 do data[i] = string.format("%062d\r\n", i) end
      data = table.concat(data) .. "\26\0end"
      local p = assert(proc.spawn(child([[
        assert(mp.stdout:write(assert(mp.stdin:read("a"))))]]),
        { stdin = "pipe", stdout = "pipe" }))
      local w = mp.spawn(function()
        assert(p.stdin:write(data))
        p.stdin:close()
      end)
      local got = p.stdout:read("a")
      assert(w:join())
      assert.equal(#data, #got)
      assert.is_true(got == data)
      assert.equal(0, p:wait())
      p.stdout:close()
    end)
  end)

  it("fills stdout and stderr with 1 MiB each, read by two tasks", function()
    H.run(function()
      local p = assert(proc.spawn(child([[
        local z = string.rep("z", 65536)
        for _ = 1, 16 do
          assert(mp.stdout:write(z))
          assert(mp.stderr:write(z))
        end]]), { stdout = "pipe", stderr = "pipe" }))
      local a = mp.spawn(function() return #p.stdout:read("a") end)
      local b = mp.spawn(function() return #p.stderr:read("a") end)
      local ok = mp.timeout(30, function()
        assert.same({ true, 1048576 }, { a:join() })
        assert.same({ true, 1048576 }, { b:join() })
      end)
      assert.is_true(ok)
      assert.equal(0, p:wait())
      p.stdout:close()
      p.stderr:close()
    end)
  end)

  it("gives EPIPE writing to a child that exited", function()
    H.run(function()
      local p = assert(proc.spawn(child("os.exit(0)"),
                                  { stdin = "pipe", stdout = "null" }))
      local ok, msg, code = p.stdin:write(string.rep("x", 10 << 20))
      assert.is_nil(ok)
      assert.is_string(msg)
      assert.equal("EPIPE", code)
      assert.equal(0, p:wait())
      p.stdin:close()
    end)
  end)

  it("has stream:lines on its pipes", function()
    H.run(function()
      local p = assert(proc.spawn(child([[
        mp.stdout:write("a\nbb\n\nccc")]]), { stdout = "pipe" }))
      local got = {}
      for l in p.stdout:lines() do got[#got + 1] = l end
      assert.same({ "a", "bb", "", "ccc" }, got)
      p.stdout:close()
      assert.equal(0, p:wait())
    end)
  end)

  it("sets the environment and the working directory", function()
    H.run(function()
      local f = assert(io.open(dir .. "/marker", "w"))
      f:write("here")
      f:close()
      local out = assert(proc.run(child([[
        local f = io.open("marker")
        mp.stdout:write(os.getenv("FOO"), " ", tostring(os.getenv("HOME")),
                        " ", f and f:read("a") or "no marker")]]),
        { env = { FOO = "bar" }, cwd = dir }))
      assert.equal("bar nil here", out)
    end)
  end)

  it("with null: stdin reads nothing, stderr is dropped", function()
    H.run(function()
      local out = assert(proc.run(child([[
        local s = assert(mp.stdin:read("a"))
        mp.stderr:write("dropped")
        mp.stdout:write(#s, " done")]]), { stderr = "null" }))
      assert.equal("0 done", out)
    end)
  end)

  it("runs many children at once and lets several tasks wait", function()
    H.run(function()
      local ps = {}
      for i = 1, 20 do ps[i] = assert(proc.spawn(child("os.exit(4)"))) end
      mp.scope(function(s)
        for i = 1, 20 do
          s:spawn(function() assert.equal(4, ps[i]:wait()) end)
          s:spawn(function() assert.equal(4, ps[i]:wait()) end)
        end
      end)
    end)
  end)

  it("stays waitable after a timed-out or cancelled wait", function()
    H.run(function()
      local p = assert(proc.spawn(child("mp.sleep(0.5) os.exit(5)")))
      assert.same({ false, "timeout" }, { mp.timeout(0.05, p.wait, p) })
      local t = mp.spawn(function() return p:wait() end)
      mp.sleep(0.02)
      t:cancel()
      assert.same({ false, "cancelled" }, { t:join() })
      assert.equal(5, p:wait())
    end)
  end)

  it("run feeds input, keeps tasks running and kills when timed out",
     function()
    H.run(function()
      local out, code = proc.run(child([[
        mp.stdout:write(assert(mp.stdin:read("a")):upper())]]),
        { input = "round trip" })
      assert.same({ "ROUND TRIP", 0 }, { out, code })
      local ticks, stop = 0, false
      local t = mp.spawn(function()
        while not stop do
          mp.sleep(0.02)
          ticks = ticks + 1
        end
      end)
      assert.same({ "", 0 }, { proc.run(child("mp.sleep(0.3)")) })
      stop = true
      t:join()
      assert.is_true(ticks >= 3)
      local ok, err = mp.timeout(0.3, proc.run, child("mp.sleep(10)"))
      assert.is_false(ok)
      assert.equal("timeout", err)
    end)
  end)
end)

describe("mp.proc.run", function()
  it("returns the output and the exit code", function()
    H.run(function()
      assert.same({ "hi\n", 0 }, { proc.run({ "echo", "hi" }) })
      assert.same({ "", 3 }, { proc.run({ "sh", "-c", "exit 3" }) })
      assert.same({ "", nil, "signal", 15 },
                  { proc.run({ "sh", "-c", "kill $$" }) })
      assert.same({ "out\nerr\n", 0 },
                  { proc.run({ "sh", "-c", "echo out; echo err >&2" },
                             { stderr = "stdout" }) })
      local ok, _, code = proc.run({ "/nonexistent" })
      assert.is_nil(ok)
      assert.equal("ENOENT", code)
      assert.has_error(function() proc.run({ "cat" }, { stdin = "pipe" }) end)
      assert.has_error(function() proc.run({ "cat" }, { stdout = "null" }) end)
      assert.has_error(function() proc.run({ "cat" }, { input = 1 }) end)
    end)
  end)

  it("feeds opts.input to the child's stdin", function()
    H.run(function()
      local input = string.rep("0123456789abcdef", 1 << 16)
      local out, code = proc.run({ "cat" }, { input = input })
      assert.equal(0, code)
      assert.is_true(out == input)
      -- a child that reads none of it
      assert.same({ "", 0 }, { proc.run({ "true" }, { input = input }) })
    end)
  end)

  it("keeps other tasks running meanwhile", function()
    H.run(function()
      local ticks, stop = 0, false
      local t = mp.spawn(function()
        while not stop do
          mp.sleep(0.02)
          ticks = ticks + 1
        end
      end)
      assert.same({ "", 0 }, { proc.run({ "sleep", "0.3" }) })
      stop = true
      t:join()
      assert.is_true(ticks >= 3)
    end)
  end)

  it("kills and reaps the child when timed out", function()
    H.run(function()
      local ok, err = mp.timeout(0.1, proc.run, { "sleep", "10" })
      assert.is_false(ok)
      assert.equal("timeout", err)
      assert.same({}, zombies())
    end)
  end)
end)

describe("mp.proc.signal", function()
  -- Routing (a signalfd) lasts as long as the state: start it before the
  -- leak check's snapshots.
  if not H.windows then mp.run(function() -- (no USR1/USR2 on Windows)
    assert.same({ false, "timeout" },
                { mp.timeout(0.001, proc.signal, "USR1") })
    assert.same({ false, "timeout" },
                { mp.timeout(0.001, proc.signal, "USR2") })
  end) end

  it("delivers a signal to a waiting task and keeps one nobody waits for",
     function()
    H.run(function()
      local pid = tostring(H.pid())
      local t = mp.spawn(function() return proc.signal("USR1") end)
      mp.sleep(0.02) -- t routes USR1 and waits
      assert.same({ "", 0 }, { proc.run({ "kill", "-USR1", pid }) })
      assert.same({ true, "USR1" }, { t:join() })
      -- nobody waits now: kept (twice: arrivals coalesce into one)
      assert.same({ "", 0 }, { proc.run({ "kill", "-USR1", pid }) })
      assert.same({ "", 0 }, { proc.run({ "kill", "-USR1", pid }) })
      assert.same({ true, "USR1" }, { mp.timeout(5, proc.signal, "USR1") })
      assert.same({ false, "timeout" },
                  { mp.timeout(0.05, proc.signal, "SIGUSR1") })
    end)
  end)

  it("children start with default dispositions and no mask", function()
    H.run(function()
      -- USR1 and USR2 are routed (blocked here): not in the child; no
      -- signal is ignored there (32 and 33 are glibc's own)
      local status = assert(proc.run({ "cat", "/proc/self/status" }))
      local low = (1 << 31) - 1
      assert.equal(0, tonumber(status:match("SigBlk:%s*(%x+)"), 16) & low)
      assert.equal(0, tonumber(status:match("SigIgn:%s*(%x+)"), 16) & low)
      local pid = tostring(H.pid())
      local t = mp.spawn(function() return proc.signal("USR2") end)
      mp.sleep(0.02)
      assert.same({ "", nil, "signal", 12 },
                  { proc.run({ "sh", "-c", "kill -USR2 $$; sleep 5" }) })
      assert.same({ "", 0 }, { proc.run({ "kill", "-USR2", pid }) })
      assert.same({ true, "USR2" }, { t:join() })
    end)
  end)

  it("raises for an unknown or uncatchable signal", function()
    H.run(function()
      assert.has_error(function() proc.signal("NOPE") end)
      assert.has_error(function() proc.signal("KILL") end)
      assert.has_error(function() proc.signal(1) end)
    end)
  end)
end)

describe("mp.stdin, mp.stdout, mp.stderr", function()
  local MOONPORT = H.moonport()
  local script = [[
    local mp = require "moonport"
    local ticks = 0
    local t = mp.spawn(function()
      while true do mp.sleep(0.01) ticks = ticks + 1 end
    end)
    local n = 0
    for line in mp.stdin:lines() do
      n = n + 1
      io.write("io:", n, " ")
      assert(mp.stdout:write(line:upper(), "\n"))
      print("print:" .. n)
    end
    assert(mp.stderr:write("err\n"))
    mp.stdout:write("lines ", n, " ticked ", tostring(ticks >= 5), "\n")
    t:cancel()
  ]]

  it("a child moonport reads mp.stdin from a pipe while its timer ticks",
     function()
    H.run(function()
      local p = assert(proc.spawn({ MOONPORT, "-e", script }, {
        stdin = "pipe", stdout = "pipe", stderr = "pipe" }))
      local errs = mp.spawn(function() return p.stderr:read("a") end)
      assert(p.stdin:write("one\ntwo\n"))
      -- once the child has answered both lines, it waits for more, its
      -- timer ticking (a loaded machine may start it late: no window
      -- counts before this)
      for _, want in ipairs { "io:1 ONE", "print:1", "io:2 TWO", "print:2" } do
        assert.equal(want, p.stdout:read("l"))
      end
      mp.sleep(0.3) -- 30 ticks due; 5 prove the timer ran meanwhile
      assert(p.stdin:write("three\n"))
      p.stdin:close()
      assert.equal("io:3 THREE\nprint:3\nlines 3 ticked true\n",
                   p.stdout:read("a"))
      assert.same({ true, "err\n" }, { errs:join() })
      assert.equal(0, p:wait())
      p.stdout:close()
      p.stderr:close()
    end)
  end)

  it("mp.stdout:write to a reader that is gone gives EPIPE", function()
    H.run(function()
      local p = assert(proc.spawn({ MOONPORT, "-e", [[
        local mp = require "moonport"
        for _ = 1, 1e6 do
          local ok, _, code = mp.stdout:write("x\n")
          if not ok then mp.stderr:write(code, "\n") os.exit(3) end
        end]] }, { stdout = "pipe", stderr = "pipe" }))
      assert.equal("x", p.stdout:read("l"))
      p.stdout:close()
      assert.equal("EPIPE\n", p.stderr:read("a"))
      assert.equal(3, p:wait())
      p.stderr:close()
    end)
  end)

  it("mp.stdout:write to a pipe does not suspend while it fits in "
     .. "stdout's buffer (no op per line), nor a write the stream takes "
     .. "at once", function()
    H.run(function()
      local out, code = proc.run({ MOONPORT, "-e", [[
        local mp = require "moonport"
        local ran = false
        mp.spawn(function() ran = true end)
        for _ = 1, 3 do mp.stdout:write("x") end
        mp.stdout:write(" ", tostring(ran), "\n")
        io.write("io ")
        mp.stdout:write(tostring(ran), "\n")
        mp.stderr:write("err") -- taken at once: no op either
        mp.stdout:write(("z"):rep(10000), tostring(ran), "\n") -- the same
        mp.sleep(0)
        mp.stdout:write(tostring(ran), "\n")]] }, { stderr = "null" })
      assert.equal("xxx false\nio false\n" .. ("z"):rep(10000) ..
                   "false\ntrue\n", out)
      assert.equal(0, code)
    end)
  end)

  it("keeps mp.stdout's buffered bytes at exit, os.exit and an error, in "
     .. "order with io.write", function()
    H.run(function()
      local cases = {
        { 'mp.stdout:write("a") io.write("b") mp.stdout:write("c")', "abc",
          0 },
        { 'mp.stdout:write("a") io.write("b") os.exit(3)', "ab", 3 },
        { 'mp.stdout:write("a") error("boom")', "a", 1 },
        { 'mp.spawn(function() mp.stdout:write("t") mp.sleep(0.01) ' ..
          'mp.stdout:write("u") end)', "tu", 0 },
        { 'mp.stdout:write(("z"):rep(100000), "!") io.write("w")',
          ("z"):rep(100000) .. "!w", 0 },
      }
      for _, c in ipairs(cases) do
        local out, code = proc.run({ MOONPORT, "-e",
          'local mp = require "moonport" ' .. c[1] }, { stderr = "null" })
        assert.equal(c[2], out)
        assert.equal(c[3], code)
      end
    end)
  end)

  it("writes what waits in stdout's buffer before a child that inherits "
     .. "stdout starts", function()
    H.run(function()
      local out, code = proc.run({ MOONPORT, "-e", [[
        local mp = require "moonport"
        mp.stdout:write("before ")
        io.write("io ")
        assert(mp.proc.spawn({ "echo", "child" })):wait()
        mp.stdout:write("after\n")]] })
      assert.equal("before io child\nafter\n", out)
      assert.equal(0, code)
    end)
  end)

  it("writes mp.stdout's buffered bytes out before waiting: a reader "
     .. "waiting for them gets them", function()
    H.run(function()
      local p = assert(proc.spawn({ MOONPORT, "-e", [[
        local mp = require "moonport"
        mp.stdout:write("ping\n")
        local reply = mp.stdin:read("l")
        mp.stdout:write("got ", reply, "\n")
        mp.sleep(0.05) -- a timer wait, not a read
        mp.stdout:write("late\n")
        mp.sleep(5)]] }, { stdin = "pipe", stdout = "pipe" }))
      p.stdout:settimeout(5)
      assert.equal("ping", p.stdout:read("l"))
      assert(p.stdin:write("pong\n"))
      assert.equal("got pong", p.stdout:read("l"))
      assert.equal("late", p.stdout:read("l"))
      p:kill()
      p:wait()
      p.stdin:close()
      p.stdout:close()
    end)
  end)

  it("a full stdout pipe stops neither the loop nor the timer; flush "
     .. "waits for it", function()
    H.run(function()
      local p = assert(proc.spawn({ MOONPORT, "-e", [[
        local mp = require "moonport"
        local ticks = 0
        local t = mp.spawn(function()
          while true do mp.sleep(0.01) ticks = ticks + 1 end
        end)
        local line = ("y"):rep(99) .. "\n"
        mp.stderr:write("start\n")
        for _ = 1, 4000 do assert(mp.stdout:write(line)) end
        assert(mp.stdout:flush())
        mp.stderr:write(ticks, "\n")
        t:cancel()]] }, { stdout = "pipe", stderr = "pipe" }))
      assert.equal("start", p.stderr:read("l"))
      mp.sleep(0.5) -- the child fills the pipe and waits
      local out = p.stdout:read("a")
      assert.equal(400000, #out)
      assert.equal(("y"):rep(99) .. "\n", out:sub(-100))
      local ticks = tonumber(p.stderr:read("l"))
      assert.is_true(ticks >= 5, "ticks " .. tostring(ticks)) -- ~50
      assert.equal(0, p:wait())
      p.stdout:close()
      p.stderr:close()
    end)
  end)

  it("mp.stdout writes bigger than stdout's buffer arrive whole and in "
     .. "order through a full pipe", function()
    H.run(function()
      local p = assert(proc.spawn({ MOONPORT, "-e", [[
        local mp = require "moonport"
        mp.stderr:write("start\n")
        for i = 1, 30 do
          local c = string.char(64 + i)
          assert(mp.stdout:write(c:rep(7000), "|", c:rep(13000)))
          mp.stdout:write(tostring(i), "\n")
        end]] }, { stdout = "pipe", stderr = "pipe" }))
      assert.equal("start", p.stderr:read("l"))
      mp.sleep(0.3) -- the child fills the pipe and waits
      local want = {}
      for i = 1, 30 do
        local c = string.char(64 + i)
        want[i] = c:rep(7000) .. "|" .. c:rep(13000) .. i .. "\n"
      end
      assert.is_true(table.concat(want) == p.stdout:read("a"))
      assert.equal(0, p:wait())
      p.stdout:close()
      p.stderr:close()
    end)
  end)

  it("works over regular files and /dev/null", function()
    H.run(function()
      local dir = H.tmpdir()
      local f = assert(io.open(dir .. "/in", "w"))
      f:write("a\nb\n")
      f:close()
      local out = assert(proc.run({ "sh", "-c", '"$0" -e "$1" <"$2/in" ' ..
        '>"$2/out" 2>/dev/null; cat "$2/out"', MOONPORT, script, dir }))
      assert.matches("^io:1 A\nprint:1\nio:2 B\nprint:2\nlines 2 ticked ", out)
      out = assert(proc.run({ MOONPORT, "-e", script }, { stderr = "null" }))
      assert.matches("^lines 0 ticked ", out)
      H.rmtree(dir)
    end)
  end)
end)
