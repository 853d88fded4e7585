-- fs_spec.lua: mp.fs against Lua's own io library, edge cases, errors,
-- concurrency and cancellation. Runs on every backend (ctest).
local H = require "helper"
local mp = H.mp
local fs = mp.fs

local dir
setup(function() dir = H.tmpdir() end)
teardown(function() H.rmtree(dir) end)

local function path(name) return dir .. "/" .. name end

-- Writes with io (the reference), so mp.fs reads are checked against data
-- written by a different implementation.
-- Starts a task that counts the loop's turns (it sleeps 0 in a loop);
-- returns a function that stops it and returns the turns counted since.
local function count_turns()
  local running, ticks = true, 0
  local t = mp.spawn(function()
    while running do
      ticks = ticks + 1
      mp.sleep(0)
    end
  end)
  mp.sleep(0) -- t is waiting in its sleep
  local before = ticks
  return function()
    running = false
    t:join()
    return ticks - before
  end
end

local function put(p, data)
  local f = assert(io.open(p, "wb"))
  f:write(data)
  f:close()
end

local function get(p)
  local f = assert(io.open(p, "rb"))
  local d = f:read("a")
  f:close()
  return d
end

-- Every read result as a comparable string.
local function show(...)
  local t = table.pack(...)
  for i = 1, t.n do
    local v = t[i]
    t[i] = type(v) == "string" and string.format("%q", v) or tostring(v)
  end
  return table.concat(t, ",", 1, t.n) .. "#" .. t.n
end

describe("mp.fs read formats match io", function()
  local contents = {
    "", "x", "\n", "\n\n", "a\nb", "a\nb\n", "one\r\ntwo\r\n",
    "no newline at end", "12 34.5 -7 0x1F 1e3 .5 abc 9",
    "  \n\t 42\n", "0x", "1e", "--1", "nan inf", "\0\1\0\n\0",
    string.rep("a", 70000) .. "\n" .. string.rep("b", 140000),
    string.rep("line\n", 30000),
    string.rep("7 ", 40000),
  }
  local plans = {
    {"l"}, {"L"}, {"a"}, {"n"}, {1}, {0}, {5}, {65536}, {100000},
    {"l", "l"}, {"L", 3, "l"}, {"n", "l"}, {"n", "n", "n"}, {0, "a"},
    {"a", "a"}, {"*l"}, {"*a"}, {3, 0, 3}, {"l", "n", "L", 10, "a"},
  }
  for ci, data in ipairs(contents) do
    for pi, plan in ipairs(plans) do
      it(("content %d plan %d"):format(ci, pi), function()
        local p = path("fmt" .. ci)
        put(p, data)
        H.run(function()
          local ref = assert(io.open(p, "rb"))
          local f = assert(fs.open(p, "rb"))
          for round = 1, 6 do
            local want = show(ref:read(table.unpack(plan)))
            local got = show(f:read(table.unpack(plan)))
            assert.are.equal(want, got, "round " .. round)
          end
          ref:close()
          assert.is_true(f:close())
        end)
      end)
    end
  end

  it("reads with no format as a line", function()
    put(path("nofmt"), "first\nsecond")
    H.run(function()
      local f = assert(fs.open(path("nofmt")))
      assert.are.equal("first", f:read())
      assert.are.equal("second", f:read())
      assert.is_nil(f:read())
      f:close()
    end)
  end)

  it("reads inside the script's own coroutines", function()
    put(path("gen"), "a\nb\nc\n")
    H.run(function()
      local f = assert(fs.open(path("gen")))
      local gen = coroutine.wrap(function()
        for l in f:lines() do coroutine.yield(l) end
      end)
      assert.are.same({"a", "b", "c"}, {gen(), gen(), gen()})
      f:close()
    end)
  end)

  it("works outside any task, also for a large 'a'", function()
    local big = string.rep("0123456789abcdef", 4 * 1024 * 1024) -- 64 MiB
    put(path("big"), big)
    local f = assert(fs.open(path("big")))
    local d = f:read("a")
    assert.are.equal(#big, #d)
    assert.is_true(d == big)
    assert.are.equal("", f:read("a"))
    f:close()
  end)
end)

describe("mp.fs EOF edge cases", function()
  it("last line without newline, 'a' at EOF, counts at EOF", function()
    put(path("eof"), "a\nlast")
    H.run(function()
      local f = assert(fs.open(path("eof")))
      assert.are.equal("a", f:read("l"))
      assert.are.equal("last", f:read("l"))
      assert.is_nil(f:read("l"))
      assert.is_nil(f:read("L"))
      assert.are.equal("", f:read("a"))
      assert.is_nil(f:read(1))
      assert.is_nil(f:read(0))
      assert.is_nil(f:read("n"))
      f:close()
    end)
  end)

  it("read(0) is '' before EOF and nil at EOF", function()
    put(path("zero"), "z")
    H.run(function()
      local f = assert(fs.open(path("zero")))
      assert.are.equal("", f:read(0))
      assert.are.equal("z", f:read(5))
      assert.is_nil(f:read(0))
      f:close()
    end)
  end)

  it("reads data appended after EOF was seen", function()
    H.run(function()
      local f = assert(fs.open(path("grow"), "w+"))
      assert.is_nil(f:read("l"))
      local g = assert(io.open(path("grow"), "ab"))
      g:write("more\n")
      g:close()
      assert.are.equal("more", f:read("l"))
      f:close()
    end)
  end)
end)

describe("mp.fs on epoll: reads from the page cache, cached opens", function()
  it("on epoll a cached file's read needs no suspension", function()
    -- (io_uring reads through the ring, Windows through the port)
    if mp.backend() ~= "epoll" then return end
    put(path("cached"), "abc\ndef\n")
    H.run(function()
      local f = assert(fs.open(path("cached")))
      local got
      -- a comparator cannot yield: a read that suspended would raise
      local ok, err = pcall(table.sort, { 2, 1 }, function(a, b)
        got = got or f:read("l")
        return a < b
      end)
      assert.is_true(ok, err)
      assert.are.equal("abc", got)
      assert.are.equal("def\n", f:read("a"))
      f:close()
    end)
  end)

  it("every format right after open", function()
    put(path("fmts"), "  42.5 next\nline two\nrest")
    H.run(function()
      for _, case in ipairs {
        { { "n" }, "42.5#1" }, { { "l" }, '"  42.5 next"#1' },
        { { "L" }, '"  42.5 next\\\n"#1' }, { { 4 }, '"  42"#1' },
        { { "a" }, '"  42.5 next\\\nline two\\\nrest"#1' },
        { { "n", "l", "l", "l" }, '42.5," next","line two","rest"#4' },
      } do
        local f = assert(fs.open(path("fmts")))
        assert.are.equal(case[2], show(f:read(table.unpack(case[1]))))
        f:close()
      end
    end)
  end)

  it("sees a file grown after open, also at a page boundary", function()
    H.run(function()
      for _, size in ipairs { 5, 4096, 8192 } do
        local data = ("x"):rep(size)
        put(path("grown"), data)
        local f = assert(fs.open(path("grown")))
        local g = assert(io.open(path("grown"), "ab"))
        g:write("tail")
        g:close()
        assert.are.equal(size + 4, #f:read(65536))
        assert.is_nil(f:read(1))
        f:close()
        f = assert(fs.open(path("grown")))
        g = assert(io.open(path("grown"), "ab"))
        g:write("more\n")
        g:close()
        assert.are.equal(data .. "tailmore\n", f:read("a"))
        f:close()
      end
    end)
  end)

  it("sees a file shrunk after open", function()
    H.run(function()
      for _, fmt in ipairs { "a", 65536, "l" } do
        put(path("shrunk"), ("y"):rep(8192))
        local f = assert(fs.open(path("shrunk")))
        put(path("shrunk"), "short")
        assert.are.equal("short", f:read(fmt))
        assert.is_nil(f:read(1))
        f:close()
      end
    end)
  end)

  it("page-aligned sizes end where the file ends", function()
    H.run(function()
      for _, size in ipairs { 4096, 8192, 65536, 65536 + 4096 } do
        local data = {}
        for i = 1, size // 8 do data[i] = ("%7d\n"):format(i) end
        data = table.concat(data)
        put(path("aligned"), data)
        local f = assert(fs.open(path("aligned")))
        local parts = {}
        repeat
          local d = f:read(65536)
          parts[#parts + 1] = d
        until not d
        assert.are.equal(data, table.concat(parts))
        assert.are.equal("", f:read("a"))
        f:close()
        f = assert(fs.open(path("aligned")))
        local n = 0
        for line in f:lines() do
          n = n + 1
          assert.are.equal(("%7d"):format(n), line)
        end
        assert.are.equal(size // 8, n)
        f:close()
      end
    end)
  end)

  it("seek then read", function()
    local data = {}
    for i = 1, 2000 do data[i] = ("%4d|"):format(i) end
    data = table.concat(data) -- 10000 bytes
    put(path("seek"), data)
    H.run(function()
      local f = assert(fs.open(path("seek")))
      assert.are.equal(data:sub(1, 10), f:read(10))
      assert.are.equal(4090, f:seek("set", 4090))
      assert.are.equal(data:sub(4091, 4100), f:read(10))
      assert.are.equal(4100, f:seek())
      assert.are.equal(9997, f:seek("end", -3))
      assert.are.equal(data:sub(-3), f:read("a"))
      assert.is_nil(f:read(1))
      assert.are.equal(0, f:seek("set"))
      assert.are.equal(data, f:read("a"))
      f:close()
    end)
  end)

  it("a big cached file is read whole and lets other tasks run", function()
    local chunk = {}
    for i = 1, 4096 do chunk[i] = ("%7d\n"):format(i) end
    chunk = table.concat(chunk) -- 32 KiB
    local data = chunk:rep(96) -- 3 MiB
    put(path("big"), data)
    H.run(function()
      local turns = count_turns()
      local f = assert(fs.open(path("big")))
      local parts = {}
      repeat
        local d = f:read(65536)
        parts[#parts + 1] = d
      until not d
      f:close()
      local n = turns()
      assert.are.equal(#data, #table.concat(parts))
      assert.is_true(data == table.concat(parts))
      -- a read goes through the loop at least every MiB
      assert.is_true(n >= 2, n)
    end)
  end)

  it("on epoll a cached path opens without the pool", function()
    if mp.backend() ~= "epoll" then return end
    put(path("opened"), "o\n")
    H.run(function()
      local f, err
      local ok, e = pcall(table.sort, { 2, 1 }, function(a, b)
        if not f then f, err = fs.open(path("opened")) end
        return a < b
      end)
      assert.is_true(ok, e)
      assert(f, err)
      assert.are.equal("o", f:read("l"))
      f:close()
      -- creating and truncating opens, and failures, still take the pool
      ok = pcall(table.sort, { 2, 1 }, function(a, b)
        fs.open(path("opened"), "w")
        return a < b
      end)
      assert.is_false(ok)
      local _, msg, code = fs.open(path("missing"))
      assert.are.equal("ENOENT", code)
      assert.truthy(msg:find("missing", 1, true))
      -- readfile too
      local data
      ok, e = pcall(table.sort, { 2, 1 }, function(a, b)
        data = data or fs.readfile(path("opened"))
        return a < b
      end)
      assert.is_true(ok, e)
      assert.are.equal("o\n", data)
      _, msg, code = fs.readfile(path("missing"))
      assert.are.equal("ENOENT", code)
      assert.truthy(msg:find("missing", 1, true))
      assert.are.equal("EISDIR", select(3, fs.readfile(dir)))
    end)
  end)

  it("a task opening many files lets other tasks run", function()
    put(path("many"), "m")
    H.run(function()
      local turns = count_turns()
      for _ = 1, 100 do
        local f = assert(fs.open(path("many")))
        assert.are.equal("m", f:read("a"))
        f:close()
      end
      local n = turns()
      -- at most 16 opens in a row without suspending
      assert.is_true(n >= 5, n)
    end)
  end)

  it("fs._nowait(false) makes every read and open an op", function()
    put(path("ops"), "p\n")
    H.run(function()
      fs._nowait(false)
      local f = assert(fs.open(path("ops")))
      local ok = pcall(table.sort, { 2, 1 }, function(a, b)
        f:read("l")
        return a < b
      end)
      fs._nowait(true)
      assert.is_false(ok)
      assert.are.equal("p", f:read("l"))
      f:close()
    end)
  end)

  it("a FIFO stays a stream: a line written in two parts is one line", function()
    if H.windows then return end
    local p = path("fifo-parts")
    assert(os.execute("mkfifo '" .. p .. "'"))
    H.run(function()
      local r = assert(fs.open(p))
      local w = assert(fs.open(p, "w"))
      local t = mp.spawn(function()
        w:write("par")
        mp.sleep(0.02)
        w:write("t\nnext")
        w:close()
      end)
      assert.are.equal("part", r:read("l"))
      assert.are.equal("next", r:read("a"))
      assert.are.equal(select(3, r:seek("set", 0)), "ESPIPE")
      r:close()
      t:join()
    end)
    os.remove(p)
  end)

  it("/dev/null and /proc files read as before", function()
    if H.windows then return end
    H.run(function()
      local f = assert(fs.open("/dev/null"))
      assert.are.equal("", f:read("a"))
      assert.is_nil(f:read("l"))
      assert.are.equal("ESPIPE", select(3, f:seek("set", 0)))
      f:close()
      -- /proc claims size 0 and cannot read without waiting: the op path
      f = assert(fs.open("/proc/self/status"))
      local s = f:read("a")
      assert.truthy(s:find("^Name:"))
      assert.truthy(s:find("\nPid:"))
      f:close()
    end)
  end)
end)

-- Files opened only for reading, of every type: what a read, seek or
-- pread gives must not depend on how the file's type is learnt (at open
-- by fstat today; performance.md, "Small files", smallfiles3, tried
-- learning it later and measured these against that). Every backend.
describe("mp.fs files opened for reading, whatever their type", function()
  local function fifo(name)
    local p = path(name)
    assert(os.execute("mkfifo '" .. p .. "'"))
    return p
  end

  it("a FIFO read(n) waits for n bytes written in pieces, then the end",
     function()
    if H.windows then return end
    local p = fifo("fifo-pieces")
    H.run(function()
      local r = assert(fs.open(p)) -- no writer yet: the read must wait
      local t = mp.spawn(function()
        mp.sleep(0.02)
        local w = assert(fs.open(p, "w"))
        for _, s in ipairs({"ab", "cd", "ef"}) do
          w:write(s)
          mp.sleep(0.02)
        end
        w:close()
      end)
      assert.are.equal("abcde", r:read(5))
      assert.are.equal("f", r:read(5))
      assert.is_nil(r:read(5))
      r:close()
      assert(t:join())
    end)
    os.remove(p)
  end)

  it("a FIFO read(n) with its writer there reads on through short reads",
     function()
    if H.windows then return end
    local p = fifo("fifo-pieces2")
    H.run(function()
      local r = assert(fs.open(p))
      local w = assert(fs.open(p, "w"))
      local t = mp.spawn(function()
        for _, s in ipairs({"ab", "cd", "ef"}) do
          w:write(s)
          mp.sleep(0.02)
        end
        w:close()
      end)
      assert.are.equal("abcde", r:read(5))
      assert.are.equal("f", r:read(5))
      assert.is_nil(r:read(5))
      r:close()
      assert(t:join())
    end)
    os.remove(p)
  end)

  it("a FIFO with data read first still has no offsets", function()
    if H.windows then return end
    local p = fifo("fifo-typed")
    H.run(function()
      local r = assert(fs.open(p))
      local w = assert(fs.open(p, "w"))
      w:write("line\nrest")
      -- a whole line returns at once: the writer is still there
      assert.are.same({true, "line"},
                      {mp.timeout(2, function() return r:read("l") end)})
      local pos, _, code = r:seek("cur")
      assert.are.same({nil, "ESPIPE"}, {pos, code})
      assert.are.equal("ESPIPE", select(3, r:pread(1, 0)))
      w:close()
      assert.are.equal("rest", r:read("a"))
      r:close()
    end)
    os.remove(p)
  end)

  it("a read cut short by a timeout loses none of a FIFO's bytes", function()
    if H.windows then return end
    local p = fifo("fifo-cut")
    H.run(function()
      local r = assert(fs.open(p))
      local w = assert(fs.open(p, "w"))
      w:write("abc")
      assert.is_false(mp.timeout(0.05, function() return r:read(10) end))
      w:write("defghij")
      assert.are.same({true, "abcdefghij"},
                      {mp.timeout(2, function() return r:read(10) end)})
      w:close()
      r:close()
    end)
    os.remove(p)
  end)

  it("an empty file reads the end, then what was appended", function()
    put(path("empty"), "")
    H.run(function()
      local f = assert(fs.open(path("empty"), "rb"))
      local ok, a, b, c = mp.timeout(2, function()
        return f:read(1), f:read("a"), f:read("l")
      end)
      assert.are.same({true, nil, "", nil}, {ok, a, b, c})
      local io_f = assert(io.open(path("empty"), "ab"))
      io_f:write("later")
      io_f:close()
      assert.are.equal("later", f:read("a"))
      assert.is_nil(f:read(1))
      f:close()
    end)
  end)

  it("a file of exactly n bytes, and files around the first read's size",
     function()
    H.run(function()
      for _, n in ipairs({1, 4096, 16383, 16384, 16385, 40000, 300000}) do
        local data = string.rep("0123456789abcdef", n // 16 + 1):sub(1, n)
        put(path("exact"), data)
        local f = assert(fs.open(path("exact")))
        assert.are.equal(data, f:read(n), n)
        assert.is_nil(f:read(1), n)
        assert.is_nil(f:read(65536), n)
        f:close()
        f = assert(fs.open(path("exact")))
        assert.are.equal(data, f:read(65536) .. (f:read("a") or ""), n)
        f:close()
        f = assert(fs.open(path("exact")))
        assert.are.equal(data, f:read("a"), n)
        assert.are.equal(n, f:seek("cur"), n)
        f:close()
      end
    end)
  end)

  it("a file grown or shrunk after a read reads what it holds then",
     function()
    put(path("grow"), string.rep("a", 100))
    H.run(function()
      local f = assert(fs.open(path("grow")))
      assert.are.equal(string.rep("a", 100), f:read(1000))
      local io_f = assert(io.open(path("grow"), "ab"))
      io_f:write(string.rep("b", 50))
      io_f:close()
      assert.are.equal(string.rep("b", 50), f:read(1000))
      assert.is_nil(f:read(1000))
      put(path("grow"), "short") -- truncated below the position
      assert.is_nil(f:read(1))
      assert.are.equal(0, f:seek("set"))
      assert.are.equal("short", f:read("a"))
      f:close()
    end)
  end)

  it("a directory opens, and reads fail with EISDIR, as io", function()
    -- (Windows opens no directory as a file: io.open fails there too)
    if H.windows then return end
    H.run(function()
      local f = assert(fs.open(dir))
      assert.are.same({nil, dir .. ": Is a directory", "EISDIR"},
                      {f:read(1)})
      assert.are.same({nil, dir .. ": Is a directory", "EISDIR"},
                      {f:read("a")})
      assert.is_true(f:close())
      local io_f = assert(io.open(dir))
      assert.are.equal("Is a directory", select(2, io_f:read(1)))
      io_f:close()
    end)
  end)

  it("a terminal reads lines, counts across lines, and Ctrl-D as the end",
     function()
    -- a pty from python3's pty module, where there is one
    if H.windows or os.execute("command -v python3 >/dev/null 2>&1") ~= true
    then return end
    local child = path("tty_child.lua")
    put(child, [[
      local mp = require "moonport"
      mp.run(function()
        local out = {}
        local f = assert(mp.fs.open("/dev/tty"))
        out[1] = f:read(1)            -- Ctrl-D before anything: the end
        f:close()
        f = assert(mp.fs.open("/dev/tty"))
        out[2] = f:read("l")
        out[3] = f:read(5)            -- across two lines typed apart
        out[4] = f:read("l")          -- the rest of the second line
        out[5] = f:read("l")          -- Ctrl-D: the end
        out[6] = select(3, f:seek("cur"))
        f:close()
        for i = 1, 6 do
          out[i] = out[i] and "<" .. out[i]:gsub("\n", "|") .. ">" or "nil"
        end
        io.stderr:write("RESULT ", table.concat(out, " "), "\n")
      end)
    ]])
    local runner = path("tty_run.py")
    put(runner, [=[
import os, pty, signal, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp("lua5.4", ["lua5.4", sys.argv[1]])
signal.signal(signal.SIGALRM, lambda *a: os.kill(pid, 9))  # never hang
signal.alarm(20)
for s in [b"\x04", b"hello\n", b"ab\n", b"cd\n", b"\x04"]:
    time.sleep(0.2)
    os.write(fd, s)
out = b""
while True:
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
os.waitpid(pid, 0)
sys.stdout.write(out.decode("latin-1"))
]=])
    local p = io.popen("LUA_CPATH='" .. package.cpath .. "' LUA_PATH='" ..
                       package.path .. "' python3 '" .. runner .. "' '" ..
                       child .. "' 2>&1")
    local out = p:read("a")
    p:close()
    assert.are.equal("nil <hello> <ab|cd> <> nil <ESPIPE>",
                     out:match("RESULT ([^\r\n]*)"), out)
  end)

  it("/proc files read whole, in any pieces, as io reads them", function()
    if H.windows then return end
    H.run(function()
      for _, p in ipairs({"/proc/version", "/proc/self/cmdline"}) do
        local io_f = assert(io.open(p, "rb"))
        local want = io_f:read("a")
        io_f:close()
        local f = assert(fs.open(p, "rb"))
        assert.are.equal(want, f:read("a"), p)
        f:close()
        f = assert(fs.open(p, "rb"))
        local parts = {}
        for s in function() return f:read(7) end do parts[#parts + 1] = s end
        assert.are.equal(want, table.concat(parts), p)
        f:close()
      end
    end)
  end)
end)

describe("mp.fs modes", function()
  it("w truncates, a appends, r+ keeps, w+ and a+ read back", function()
    H.run(function()
      local p = path("modes")
      put(p, "0123456789")
      local f = assert(fs.open(p, "w"))
      assert.are.equal(f, f:write("ab", 12, 3.5))
      f:close()
      assert.are.equal("ab123.5", get(p))

      f = assert(fs.open(p, "a"))
      f:write("X")
      f:seek("set", 0)
      f:write("Y") -- append ignores the position, as io
      f:close()
      assert.are.equal("ab123.5XY", get(p))

      f = assert(fs.open(p, "r+"))
      assert.are.equal("ab", f:read(2))
      f:write("--")
      assert.are.equal("3.", f:read(2))
      f:close()
      assert.are.equal("ab--3.5XY", get(p))

      f = assert(fs.open(p, "w+"))
      f:write("hello\nworld\n")
      assert.are.equal(12, f:seek())
      assert.are.equal(0, f:seek("set"))
      assert.are.equal("hello", f:read("l"))
      assert.are.equal(6, f:seek("cur"))
      f:close()

      f = assert(fs.open(p, "a+"))
      assert.are.equal("hello", f:read("l"))
      f:write("tail\n")
      assert.is_nil(f:read("l")) -- positioned at the new end
      f:seek("set", 12)
      assert.are.equal("tail", f:read("l"))
      f:close()
      assert.are.equal("hello\nworld\ntail\n", get(p))

      f = assert(fs.open(p, "rb"))
      f:close()
    end)
  end)

  it("x creates exclusively", function()
    H.run(function()
      local p = path("excl")
      local f = assert(fs.open(p, "wx"))
      f:write("1")
      f:close()
      local g, msg, code = fs.open(p, "wx")
      assert.is_nil(g)
      assert.are.equal("EEXIST", code)
      assert.truthy(msg:find(p, 1, true))
      g, msg, code = fs.open(p, "x")
      assert.are.equal("EEXIST", code)
      assert.are.equal("1", get(p))
    end)
  end)

  it("permissions are applied to new files", function()
    H.run(function()
      local f = assert(fs.open(path("perm"), "w", 384)) -- 0600
      f:close()
      assert.are.equal(384, fs.stat(path("perm")).mode)
    end)
  end)

  it("seek whence and errors", function()
    put(path("seek"), "abcdef")
    H.run(function()
      local f = assert(fs.open(path("seek")))
      assert.are.equal(6, f:seek("end"))
      assert.are.equal(4, f:seek("end", -2))
      assert.are.equal("ef", f:read("a"))
      assert.are.equal(1, f:seek("set", 1))
      assert.are.equal(3, f:seek("cur", 2))
      assert.are.equal("d", f:read(1))
      local r, msg, code = f:seek("set", -1)
      assert.is_nil(r)
      assert.are.equal("EINVAL", code)
      assert.truthy(msg:find("seek", 1, true))
      assert.are.equal(4, f:seek()) -- unchanged after a failed seek
      assert.has_error(function() f:seek("sideways") end)
      f:close()
    end)
  end)
end)

describe("mp.fs binary data", function()
  it("round-trips every byte value, NULs included", function()
    local t = {}
    for i = 0, 255 do t[#t + 1] = string.char(i) end
    local bin = string.rep(table.concat(t), 1000) .. "\0\0end\0"
    H.run(function()
      local p = path("bin")
      local f = assert(fs.open(p, "wb"))
      f:write(bin)
      f:close()
      assert.are.equal(bin, get(p))
      assert.are.equal(bin, fs.readfile(p))
      f = assert(fs.open(p, "rb"))
      local parts = {}
      for chunk in f:lines(777) do parts[#parts + 1] = chunk end
      f:close()
      assert.are.equal(bin, table.concat(parts))
      f = assert(fs.open(p, "rb"))
      parts = {}
      for l in f:lines("L") do parts[#parts + 1] = l end
      f:close()
      assert.are.equal(bin, table.concat(parts))
    end)
  end)
end)

describe("mp.fs positional IO", function()
  it("pread/pwrite do not move the position", function()
    put(path("pos"), "0123456789")
    H.run(function()
      local f = assert(fs.open(path("pos"), "r+"))
      assert.are.equal("01", f:read(2))
      assert.are.equal("567", f:pread(3, 5))
      assert.are.equal(f, f:pwrite("AB", 0))
      assert.are.equal(2, f:seek())
      assert.are.equal("23", f:read(2))
      assert.are.equal("89", f:pread(10, 8))
      assert.is_nil(f:pread(4, 10))
      assert.are.equal("", f:pread(0, 100))
      assert.are.equal("3456789", f:pread(1 << 50, 3)) -- no huge buffer
      f:close()
      assert.are.equal("AB23456789", get(path("pos")))
    end)
  end)

  it("handles offsets beyond 4 GiB (sparse)", function()
    H.run(function()
      local p = path("sparse")
      local off = 5 * 1024 * 1024 * 1024 + 7
      local f = assert(fs.open(p, "w+"))
      assert(f:pwrite("far away", off))
      assert.are.equal("far away", f:pread(8, off))
      assert.are.equal(off + 8, f:stat().size)
      assert.are.equal(off + 8, f:seek("end"))
      assert.are.equal(off, f:seek("set", off))
      assert.are.equal("far", f:read(3))
      assert.are.equal(off + 3, f:seek())
      assert.are.equal(string.rep("\0", 16), f:pread(16, 4 * 1024 ^ 3 // 1))
      f:seek("set", off + 8)
      f:write("!")
      f:close()
      assert.are.equal(off + 9, fs.stat(p).size)
      fs.remove(p)
    end)
  end)
end)

describe("mp.fs errors", function()
  it("ENOSPC from /dev/full", function()
    H.run(function()
      local f = assert(fs.open("/dev/full", "w"))
      local r, msg, code = f:write("data")
      assert.is_nil(r)
      assert.are.equal("ENOSPC", code)
      assert.truthy(msg:find("/dev/full", 1, true))
      f:close()
    end)
  end)

  it("ENOENT, ENOTDIR, EISDIR, EEXIST, ENOTEMPTY with the path", function()
    H.run(function()
      local function check(code, r, msg, c, p)
        assert.is_nil(r)
        assert.are.equal(code, c)
        assert.truthy(msg:find(p, 1, true), msg)
      end
      local missing = path("missing/x")
      check("ENOENT", nil, select(2, fs.open(missing)),
            select(3, fs.open(missing)), missing)
      put(path("plain"), "p")
      local nd = path("plain/x")
      local r, m, c = fs.open(nd)
      check("ENOTDIR", r, m, c, nd)
      r, m, c = fs.open(dir, "w")
      check("EISDIR", r, m, c, dir)
      local f = assert(fs.open(dir, "r")) -- as io.open: reading fails
      r, m, c = f:read("l")
      check("EISDIR", r, m, c, dir)
      f:close()
      r, m, c = fs.mkdir(dir)
      check("EEXIST", r, m, c, dir)
      assert(fs.mkdir(path("full")))
      put(path("full/f"), "")
      r, m, c = fs.rmdir(path("full"))
      check("ENOTEMPTY", r, m, c, path("full"))
      r, m, c = fs.stat(path("nope"))
      check("ENOENT", r, m, c, path("nope"))
      r, m, c = fs.remove(path("nope"))
      check("ENOENT", r, m, c, path("nope"))
      r, m, c = fs.rename(path("nope"), path("nope2"))
      check("ENOENT", r, m, c, path("nope"))
      assert.truthy(m:find(path("nope2"), 1, true))
      r, m, c = fs.dir(path("nope"))
      check("ENOENT", r, m, c, path("nope"))
      r, m, c = fs.readfile(path("nope"))
      check("ENOENT", r, m, c, path("nope"))
      r, m, c = fs.writefile(path("nope/x"), "d")
      check("ENOENT", r, m, c, path("nope/x"))
    end)
  end)

  it("EACCES for an unprivileged user", function()
    if os.execute("command -v setpriv >/dev/null") ~= true then
      pending("setpriv not available")
      return
    end
    local p = path("secret")
    put(p, "s")
    os.execute("chmod 600 '" .. p .. "'; chmod 755 '" .. dir .. "'")
    local script = path("eacces.lua")
    put(script, ([[
      local mp = require "moonport"
      local f, msg, code = mp.fs.open(%q)
      io.write(tostring(f), "|", tostring(code), "|", tostring(msg))
    ]]):format(p))
    local cmd = ("setpriv --reuid=65534 --regid=65534 --clear-groups " ..
                 "env LUA_CPATH=%q lua5.4 %q 2>&1"):format(
                   package.cpath, script)
    local h = io.popen(cmd)
    local out = h:read("a")
    h:close()
    assert.are.equal("nil|EACCES|" .. p .. ": Permission denied", out)
  end)

  it("a line longer than the limit fails clearly and loses nothing", function()
    local long = string.rep("x", 1024 * 1024 + 10) .. "\nnext\n"
    put(path("long"), long)
    H.run(function()
      local f = assert(fs.open(path("long")))
      local r, msg, code = f:read("l")
      assert.is_nil(r)
      assert.are.equal("ELINETOOLONG", code)
      assert.truthy(msg:find("line longer than 1048576 bytes", 1, true))
      assert.are.equal(string.rep("x", 10), f:read(10))
      assert.are.equal(1024 * 1024, #f:read(1024 * 1024))
      assert.are.equal("", f:read("l"))
      assert.are.equal("next", f:read("l"))
      f:close()
      -- lines raises it
      f = assert(fs.open(path("long")))
      assert.has_error(function() for _ in f:lines() do end end)
      f:close()
    end)
  end)
end)

describe("mp.fs misuse raises", function()
  it("names the function and argument", function()
    put(path("mis"), "m")
    H.run(function()
      local f = assert(fs.open(path("mis")))
      assert.has_error(function() f:read("x") end,
                       "bad argument #1 to 'read' (invalid format)")
      assert.has_error(function() f:read(-1) end,
        "bad argument #1 to 'read' (non-negative count expected)")
      assert.has_error(function() f:read({}) end)
      assert.has_error(function() f:write({}) end)
      assert.has_error(function() f:pread(1, -1) end)
      assert.has_error(function() f:pwrite("x") end)
      assert.has_error(function() f:lines("q") end)
      assert.has_error(function() fs.open(path("mis"), "rw") end,
                       "bad argument #2 to 'open' (invalid mode)")
      assert.has_error(function() fs.open(path("mis"), "r", -1) end)
      assert.has_error(function() fs.open() end)
      assert.has_error(function() fs.open("a\0b") end)
      assert.has_error(function() fs.writefile(path("w"), {}) end)
      f:close()
      assert.has_error(function() f:read() end, "attempt to use a closed file")
      assert.has_error(function() f:write("x") end)
      assert.has_error(function() f:close() end)
      assert.are.equal("file (closed)", tostring(f))
    end)
  end)

  it("a second concurrent read on one file raises", function()
    H.run(function()
      os.execute("mkfifo '" .. path("fifo1") .. "'")
      local f = assert(fs.open(path("fifo1"), "r+"))
      local t = mp.spawn(function() return f:read("l") end)
      mp.sleep(0.01)
      assert.has_error(function() f:read("l") end)
      f:write("x\n")
      assert.are.same({true, "x"}, {t:join()})
      f:close()
    end)
  end)
end)

describe("mp.fs path functions", function()
  it("stat, lstat, dir, mkdir, rename, remove, rmdir", function()
    H.run(function()
      local d = path("tree")
      assert.is_true(fs.mkdir(d, 448)) -- 0700
      local st = assert(fs.stat(d))
      assert.are.equal("directory", st.type)
      assert.are.equal(448, st.mode)
      assert.is_true(fs.writefile(d .. "/a", "hello"))
      assert.is_true(fs.writefile(d .. "/b", ""))
      st = assert(fs.stat(d .. "/a"))
      assert.are.equal("file", st.type)
      assert.are.equal(5, st.size)
      assert.is_number(st.mtime)
      assert.is_number(st.atime)
      assert.is_number(st.ctime)
      assert.truthy(math.abs(st.mtime - os.time()) < 100)
      os.execute("ln -s a '" .. d .. "/link'")
      assert.are.equal("link", fs.lstat(d .. "/link").type)
      assert.are.equal("file", fs.stat(d .. "/link").type)
      local names = assert(fs.dir(d))
      table.sort(names)
      assert.are.same({"a", "b", "link"}, names)
      assert.is_true(fs.rename(d .. "/a", d .. "/c"))
      assert.are.equal("hello", fs.readfile(d .. "/c"))
      assert.is_true(fs.remove(d .. "/c"))
      assert.is_true(fs.remove(d .. "/b"))
      assert.is_true(fs.remove(d .. "/link"))
      assert.are.same({}, fs.dir(d))
      assert.is_true(fs.mkdir(d .. "/sub"))
      assert.is_true(fs.remove(d .. "/sub")) -- empty directory, as os.remove
      assert.is_true(fs.rmdir(d))
      assert.is_nil(fs.stat(d))
    end)
  end)

  it("writefile replaces atomically and leaves no temporary", function()
    H.run(function()
      local d = path("wf")
      fs.mkdir(d)
      assert.is_true(fs.writefile(d .. "/x", "old"))
      assert.is_true(fs.writefile(d .. "/x", "new contents"))
      assert.are.equal("new contents", fs.readfile(d .. "/x"))
      assert.are.same({"x"}, fs.dir(d))
      assert.is_true(fs.writefile(d .. "/e", ""))
      assert.are.equal("", fs.readfile(d .. "/e"))
    end)
  end)

  it("file:stat and file:sync", function()
    H.run(function()
      local f = assert(fs.open(path("st"), "w"))
      f:write("12345")
      assert.is_true(f:sync())
      local st = f:stat()
      assert.are.equal("file", st.type)
      assert.are.equal(5, st.size)
      f:close()
    end)
  end)
end)

describe("mp.fs concurrency", function()
  it("hundreds of tasks doing file IO at once", function()
    H.run(function()
      local n, tasks = 300, {}
      for i = 1, n do
        tasks[i] = mp.spawn(function()
          local p = path("many" .. i)
          local body = ("task %d\n"):format(i):rep(i)
          local f = assert(fs.open(p, "w"))
          assert(f:write(body))
          assert(f:close())
          f = assert(fs.open(p))
          local lines = 0
          for l in f:lines() do
            assert(l == ("task %d"):format(i))
            lines = lines + 1
          end
          f:close()
          assert(fs.readfile(p) == body)
          assert(fs.remove(p))
          return lines
        end)
      end
      for i = 1, n do
        assert.are.same({true, i}, {tasks[i]:join()})
      end
    end)
  end)

  it("a large-file reader does not stall other tasks", function()
    local p = path("large")
    local h = io.open(p, "wb")
    local chunk = string.rep("z", 1024 * 1024)
    for _ = 1, 128 do h:write(chunk) end -- 128 MiB
    h:close()
    H.run(function()
      -- Measured in reads, not seconds: a loaded machine may deschedule
      -- the whole process for longer than any wall-clock bound, but a
      -- reader that starves the loop does many reads between two ticks.
      local reading, ticks, reads, maxreads = true, 0, 0, 0
      local ticker = mp.spawn(function()
        while reading do
          mp.sleep(0.001)
          if reads > maxreads then maxreads = reads end
          reads = 0
          ticks = ticks + 1
        end
      end)
      local t0 = mp.now()
      local f = assert(fs.open(p))
      local total = 0
      while true do
        local d = f:read(65536)
        if not d then break end
        total = total + #d
        reads = reads + 1
      end
      f:close()
      local elapsed = mp.now() - t0
      reading = false
      ticker:join()
      assert.are.equal(128 * 1024 * 1024, total)
      -- the ticker ran throughout: roughly once per ms of reading, and
      -- never a large part of the 2,048 reads went by between two ticks
      assert.truthy(ticks >= elapsed / 0.05, ("ticks %d in %.3fs"):format(
                    ticks, elapsed))
      assert.truthy(maxreads < 512, ("%d reads between two ticks"):format(
                    maxreads))
    end)
    os.remove(p)
  end)
end)

describe("mp.fs close, cancel and collection with ops in flight", function()
  local function fifo(name)
    local p = path(name)
    assert(os.execute("mkfifo '" .. p .. "'"))
    return p
  end

  it("close completes a pending read with 'closed'", function()
    H.run(function()
      collectgarbage()
      collectgarbage()
      mp.sleep(0.01)
      local before = H.fd_count()
      local f = assert(fs.open(fifo("fifo2"), "r+"))
      local t = mp.spawn(function() return f:read("l") end)
      mp.sleep(0.01)
      assert.is_true(f:close())
      local ok, r, msg, code = t:join()
      assert.is_true(ok)
      assert.is_nil(r)
      assert.are.equal("closed", code)
      assert.truthy(msg:find("fifo2", 1, true))
      mp.sleep(0.01)
      -- no leak (closes are asynchronous: give them a moment under load)
      assert.is_true(H.fds_back_to(before))
    end)
  end)

  it("a cancelled read loses no data", function()
    H.run(function()
      local f = assert(fs.open(fifo("fifo3"), "r+"))
      local t = mp.spawn(function() return f:read("l") end)
      f:write("abc")          -- no newline: the reader keeps waiting
      mp.sleep(0.02)
      t:cancel()
      assert.are.same({false, "cancelled"}, {t:join()})
      f:write("def\nrest\n")
      local r, _, code = f:pread(1 << 50, 0)   -- a pipe has no offsets
      assert.are.same({nil, "ESPIPE"}, {r, code})
      r, _, code = f:seek("set", 0)
      assert.are.same({nil, "ESPIPE"}, {r, code})
      assert.are.equal("abcdef", f:read("l"))
      -- a timeout in the middle of a multi-format read keeps the first
      local ok = mp.timeout(0.02, function() return f:read("l", "l") end)
      assert.is_false(ok)
      f:write("two\n")
      assert.are.same({"rest", "two"}, {f:read("l", "l")})
      f:close()
    end)
  end)

  -- A handle tracks its first two ops without allocating (lhandle.c);
  -- more ops in flight move the list to the heap, and close must still
  -- find every one of them.
  it("many positional reads in flight on one file, then close", function()
    local data = {}
    for i = 0, 63 do data[#data + 1] = string.format("%04d", i) end
    put(path("many"), table.concat(data))
    H.run(function()
      collectgarbage()
      collectgarbage()
      mp.sleep(0.01)
      local before = H.fd_count()
      for round = 1, 2 do
        local f = assert(fs.open(path("many"), "rb"))
        local ts = {}
        for i = 1, 8 do
          ts[i] = mp.spawn(function() return f:pread(4, (i - 1) * 4) end)
        end
        mp.sleep(0) -- the reads start, all tracked at once
        if round == 2 then assert.is_true(f:close()) end
        for i = 1, 8 do
          local ok, r, _, code = ts[i]:join()
          assert.is_true(ok)
          if round == 1 or r then
            assert.are.equal(string.format("%04d", i - 1), r)
          else
            assert.are.equal("closed", code)
          end
        end
        if round == 1 then assert.is_true(f:close()) end
      end
      mp.sleep(0.01)
      assert.is_true(H.fds_back_to(before))
    end)
  end)

  it("collecting a file with a read in flight is safe", function()
    H.run(function()
      collectgarbage()
      collectgarbage()
      mp.sleep(0.01)
      local before = H.fd_count()
      do
        local f = assert(fs.open(fifo("fifo4"), "r+"))
        local t = mp.spawn(function() return f:read("a") end)
        mp.sleep(0.01)
        t:cancel()
        t:join()
        f = nil
      end
      collectgarbage()
      collectgarbage()
      mp.sleep(0.02)
      -- no leak (closes are asynchronous: give them a moment under load)
      assert.is_true(H.fds_back_to(before))
    end)
  end)

  it("close from a task whose deadline expired still closes", function()
    put(path("late"), "late")
    H.run(function()
      collectgarbage()
      collectgarbage()
      mp.sleep(0.01)
      local before = H.fd_count()
      local f = assert(fs.open(path("late"), "r+")) -- written: close waits
      local ok, closed = mp.timeout(0.01, function()
        pcall(mp.sleep, 1)        -- the deadline fires here
        -- every suspension now raises the timeout: close must not leak
        return pcall(f.close, f)
      end)
      assert.is_true(ok)
      assert.is_false(closed)     -- close raised the timeout...
      assert.are.equal("file (closed)", tostring(f)) -- ...but closed
      mp.sleep(0.01)
      -- no leak (closes are asynchronous: give them a moment under load)
      assert.is_true(H.fds_back_to(before))
    end)
  end)

  it("closing a read-only file does not wait (nothing to report)", function()
    put(path("ro"), "ro")
    H.run(function()
      local before = H.fd_count()
      local f = assert(fs.open(path("ro")))
      local ok, closed = mp.timeout(0.01, function()
        pcall(mp.sleep, 1)        -- expired: any suspension would raise
        return f:close()
      end)
      assert.are.same({ true, true }, { ok, closed })
      assert.are.equal("file (closed)", tostring(f))
      assert.is_true(H.fds_back_to(before))
    end)
  end)

  it("__close closes at the end of the block", function()
    put(path("tbc"), "t")
    H.run(function()
      local keep
      do
        local f <close> = assert(fs.open(path("tbc")))
        keep = f
        assert.are.equal("t", f:read("a"))
      end
      assert.are.equal("file (closed)", tostring(keep))
    end)
  end)

  it("closing with a write and a positional read in flight", function()
    H.run(function()
      local p = path("inflight")
      local f = assert(fs.open(p, "w+"))
      local data = string.rep("w", 8 * 1024 * 1024)
      local t1 = mp.spawn(function() return f:write(data) end)
      local t2 = mp.spawn(function() return f:pread(10, 0) end)
      mp.sleep(0)
      f:close()
      local ok1, r1, _, c1 = t1:join()
      local ok2 = t2:join()
      assert.is_true(ok1 and ok2)
      assert.truthy(r1 == f or c1 == "closed")
    end)
  end)
end)

describe("mp.fs buffered writes", function()
  -- Writes to regular files are buffered (as stdio's): an op per small
  -- write made 100,000 line writes take seconds instead of milliseconds.
  -- Every other operation flushes first, so nothing can observe the buffer.
  it("a file written in many small writes has every byte, in order", function()
    H.run(function()
      local f = assert(fs.open(path("many"), "w"))
      local want = {}
      for i = 1, 20000 do
        f:write("line ", i, "\n")
        want[#want + 1] = "line " .. i .. "\n"
      end
      assert.is_true(f:close())
      assert.are.equal(table.concat(want), get(path("many")))
    end)
  end)

  it("reads, seeks, pread, stat and sync see what was written", function()
    H.run(function()
      local f = assert(fs.open(path("rw"), "w+"))
      f:write("hello ", "world\n")
      assert.are.equal(12, f:seek("cur"))
      assert.are.equal(12, f:stat().size)
      assert.are.equal("world", f:pread(5, 6))
      f:write("second\n")
      assert.are.equal(0, f:seek("set"))
      assert.are.equal("hello world", f:read("l"))
      f:write("X") -- at position 12, over "s"
      assert.is_true(f:sync())
      assert.are.equal("hello world\nXecond\n", get(path("rw")))
      f:close()
    end)
  end)

  it("flush() writes the buffer out; append mode appends in order", function()
    H.run(function()
      put(path("app"), "0\n")
      local f = assert(fs.open(path("app"), "a"))
      for i = 1, 3 do f:write(i, "\n") end
      assert.are.equal("0\n", get(path("app"))) -- still buffered
      assert.are.equal(f, f:flush())
      assert.are.equal("0\n1\n2\n3\n", get(path("app")))
      f:write("4\n")
      f:close()
      assert.are.equal("0\n1\n2\n3\n4\n", get(path("app")))
    end)
  end)

  it("a file collected with buffered bytes still gets them", function()
    H.run(function()
      do
        local f = assert(fs.open(path("gc"), "w"))
        f:write("kept")
      end
      collectgarbage()
      collectgarbage()
      for _ = 1, 100 do
        if get(path("gc")) == "kept" then break end
        mp.sleep(0.01)
      end
      assert.are.equal("kept", get(path("gc")))
    end)
  end)

  it("a write error found while flushing is reported, not lost", function()
    local mnt = path("tiny")
    assert(os.execute("mkdir -p '" .. mnt .. "'"))
    if not os.execute("mount -t tmpfs -o size=64k tmpfs '" .. mnt .. "' 2>/dev/null") then
      return pending("cannot mount a small tmpfs here (not root?)")
    end
    local ok, err = pcall(H.run, function()
      local f = assert(fs.open(mnt .. "/full", "w"))
      local chunk = ("x"):rep(1000)
      local code
      for _ = 1, 200 do -- 200 KB into 64 KiB
        local r, _, c = f:write(chunk)
        if not r then code = c break end
      end
      local r, _, c = f:close()
      if not code then assert.is_nil(r) code = c end
      assert.are.equal("ENOSPC", code)
    end)
    os.execute("umount '" .. mnt .. "'")
    assert(ok, err)
  end)
end)

-- mp.fs.readfile is one op (issue 16): io_uring's open/read/read chain on
-- a direct descriptor with its two 16 KiB reads, or a pool job; these
-- pin what it must keep of fs.open(path):read("a").
describe("mp.fs.readfile", function()
  local function bytes(n)
    local t, i = {}, 0
    while i < n do
      local k = math.min(4096, n - i)
      t[#t + 1] = string.rep(string.char(i // 4096 % 256), k)
      i = i + k
    end
    local s = table.concat(t)
    return #s > 0 and ("\0" .. s:sub(2)) or s -- and a zero byte
  end

  it("reads every size around its buffers", function()
    local sizes = {0, 1, 4096, 16383, 16384, 16385, 32767, 32768, 32769,
                   65536, 65537, 1024 * 1024 + 1}
    H.run(function()
      for _, n in ipairs(sizes) do
        local p = path("size" .. n)
        put(p, bytes(n))
        local d = fs.readfile(p)
        assert.are.equal(n, #d)
        assert.is_true(d == get(p), "contents of " .. n .. " bytes")
      end
    end)
  end)

  it("fails as fs.open and read fail: nil, 'path: message', code", function()
    put(path("plain"), "p")
    H.run(function()
      assert.are.same({nil, path("nope") .. ": No such file or directory",
                       "ENOENT"}, {fs.readfile(path("nope"))})
      assert.are.same({nil, dir .. ": Is a directory", "EISDIR"},
                      {fs.readfile(dir)})
      assert.are.same({nil, path("plain/x") .. ": Not a directory",
                       "ENOTDIR"}, {fs.readfile(path("plain/x"))})
      assert.has_error(function() fs.readfile({}) end,
        "bad argument #1 to 'readfile' (string expected, got table)")
      assert.has_error(function() fs.readfile("a\0b") end,
        "bad argument #1 to 'readfile' (path contains a NUL byte)")
    end)
  end)

  it("EACCES for an unprivileged user", function()
    if os.execute("command -v setpriv >/dev/null") ~= true then
      pending("setpriv not available")
      return
    end
    local p = path("secret2")
    put(p, "s")
    os.execute("chmod 600 '" .. p .. "'; chmod 755 '" .. dir .. "'")
    local script = path("eacces2.lua")
    put(script, ([[
      local mp = require "moonport"
      print(mp.fs.readfile(%q))
    ]]):format(p))
    local cmd = ("setpriv --reuid=65534 --regid=65534 --clear-groups " ..
                 "env LUA_CPATH=%q lua5.4 %q 2>&1"):format(
                   package.cpath, script)
    local h = io.popen(cmd)
    local out = h:read("a")
    h:close()
    assert.are.equal("nil\t" .. p .. ": Permission denied\tEACCES\n", out)
  end)

  it("reads a /proc file whose size says 0", function()
    H.run(function()
      local d = assert(fs.readfile("/proc/self/status"))
      assert.truthy(d:find("^Name:"))
      assert.truthy(d:find("\nPid:"))
      assert.are.equal(0, assert(fs.stat("/proc/self/status")).size)
    end)
  end)

  it("waits for a FIFO's writer and reads until it closes", function()
    local p = path("rffifo")
    assert(os.execute("mkfifo '" .. p .. "'"))
    H.run(function()
      os.execute("(sleep 0.1; printf 'hello '; sleep 0.1; printf world) > '"
                 .. p .. "' &")
      local ok, d = mp.timeout(10, fs.readfile, p)
      assert.are.same({true, "hello world"}, {ok, d})
    end)
  end)

  it("a timeout or cancel mid-readfile closes what it opened", function()
    local p = path("rffifo2")
    assert(os.execute("mkfifo '" .. p .. "'"))
    H.run(function()
      collectgarbage()
      collectgarbage()
      mp.sleep(0.01)
      local before = H.fd_count()
      -- no writer: it waits, and the timeout ends it
      assert.are.same({false, "timeout"}, {mp.timeout(0.05, fs.readfile, p)})
      -- a writer that writes and stays: the read waits for its end
      local w = assert(fs.open(p, "r+"))
      assert(w:write("partial"))
      local t = mp.spawn(fs.readfile, p)
      mp.sleep(0.05)
      t:cancel()
      assert.are.same({false, "cancelled"}, {t:join()})
      w:close()
      -- nothing left open, no op in flight (the leak check too)
      assert.is_true(H.fds_back_to(before))
      assert.are.equal(0, mp.debug.stats().ops_inflight)
      -- and the path still reads
      put(path("after"), "after")
      assert.are.equal("after", fs.readfile(path("after")))
    end)
  end)

  it("a cancel in the turn that started it is not lost", function()
    -- (io_uring: the chain's reads are issued after the submit that
    -- carried the open and the cancel: no cancel finds them)
    local p = path("rffifo3")
    assert(os.execute("mkfifo '" .. p .. "'"))
    H.run(function()
      local w = assert(fs.open(p, "r+")) -- a writer, silent
      local got = {}
      for i = 1, 3 do
        local t = mp.spawn(fs.readfile, p)
        mp.spawn(function() t:cancel() end)
        got[i] = {mp.timeout(2, t.join, t)}
      end
      w:close() -- ends any readfile left waiting
      for i = 1, 3 do
        assert.are.same({true, false, "cancelled"}, got[i])
      end
    end)
  end)

  it("many at once, more than io_uring has direct descriptors", function()
    put(path("many"), "many")
    H.run(function()
      local ts = {}
      for i = 1, 1500 do ts[i] = mp.spawn(fs.readfile, path("many")) end
      for i = 1, 1500 do assert.are.same({true, "many"}, {ts[i]:join()}) end
    end)
  end)
end)
