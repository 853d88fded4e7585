-- net_spec.lua: mp.net: TCP, Unix and UDP sockets, names, timeouts, close
-- and cancel semantics, resets, big writes, many clients, misuse.
local H = require "helper"
local mp = H.mp
local net = mp.net

local LOCAL = "127.0.0.1"

-- A listener on a free local port and its port.
local function listener(opts)
  local srv = assert(net.listen(LOCAL, 0, opts))
  local _, port = srv:sockname()
  return srv, port
end

-- A connected pair: client stream, server-side stream, server.
local function pair()
  local srv, port = listener()
  local acc = mp.spawn(function() return assert(srv:accept()) end)
  local c = assert(net.connect(LOCAL, port))
  local _, s = acc:join()
  return c, s, srv
end

-- An echo server task for lines: returns the server and the task.
local function echo_server(srv)
  return mp.spawn(function()
    while true do
      local c = srv:accept()
      if not c then return end
      mp.spawn(function()
        while true do
          local l = c:read("L")
          if not l or not c:write(l) then break end
        end
        c:close()
      end)
    end
  end)
end

local function have_ipv6()
  local s = net.listen("::1", 0)
  if s then s:close() return true end
  return false
end

describe("mp.net echo", function()
  it("over TCP/IPv4", function()
    H.run(function()
      local srv, port = listener()
      local t = echo_server(srv)
      local c = assert(net.connect(LOCAL, port))
      for i = 1, 10 do
        assert(c:write("line ", i, "\n") == c)
        assert.are.equal("line " .. i, c:read("l"))
      end
      local host, p = c:peername()
      assert.are.same({ LOCAL, port }, { host, p })
      assert.are.equal(LOCAL, (c:sockname()))
      c:close()
      srv:close()
      t:join()
    end)
  end)

  it("over TCP/IPv6 (skipped without ::1)", function()
    H.run(function()
      if not have_ipv6() then
        print("note: ::1 unavailable, IPv6 echo skipped")
        return
      end
      local srv = assert(net.listen("::1", 0))
      local host, port = srv:sockname()
      assert.are.equal("::1", host)
      local t = echo_server(srv)
      local c = assert(net.connect("::1", port))
      c:write("six\n")
      assert.are.equal("six", c:read("l"))
      assert.are.equal("::1", (c:peername()))
      c:close()
      srv:close()
      t:join()
    end)
  end)

  it("over Unix-domain sockets", function()
    local dir = H.tmpdir()
    H.run(function()
      local path = dir .. "/echo.sock"
      local srv = assert(net.listen_unix(path))
      assert.are.equal(path, (srv:sockname()))
      local t = echo_server(srv)
      local c = assert(net.connect_unix(path))
      c:write("unix\n", "two\n")
      assert.are.same({ "unix", "two" }, { c:read("l", "l") })
      c:close()
      srv:close()
      t:join()
      -- the path stays until removed: listening again fails
      local s2, _, code = net.listen_unix(path)
      assert.is_nil(s2)
      assert.are.equal("EADDRINUSE", code)
      local none, _, code2 = net.connect_unix(dir .. "/missing.sock")
      assert.is_nil(none)
      assert.are.equal("ENOENT", code2)
      local long, _, code3 = net.connect_unix(dir .. "/" .. ("x"):rep(200))
      assert.is_nil(long)
      assert.are.equal("ENAMETOOLONG", code3)
    end)
    H.rmtree(dir)
  end)

  it("over Unix-domain sockets, or EAFNOSUPPORT where the system has none",
     function()
    -- Linux always has them; Windows since 10, wine 8 not at all
    local dir = H.tmpdir()
    H.run(function()
      local path = dir .. "/af.sock"
      local srv, msg, code = net.listen_unix(path)
      if srv or not H.windows then
        assert(srv, msg)
        srv:close()
      else
        assert.are.equal("EAFNOSUPPORT", code)
        assert.matches(path, msg, 1, true)
        local c, _, code2 = net.connect_unix(path)
        assert.is_nil(c)
        assert.are.equal("EAFNOSUPPORT", code2)
      end
    end)
    H.rmtree(dir)
  end)

  it("over UDP, with binary data and recvfrom timeouts", function()
    H.run(function()
      local a = assert(net.udp(LOCAL, 0))
      local b = assert(net.udp(LOCAL, 0))
      local _, pa = a:sockname()
      local _, pb = b:sockname()
      local data = {}
      for i = 0, 255 do data[#data + 1] = string.char(i) end
      data = table.concat(data)
      assert.is_true(a:sendto(data, LOCAL, pb))
      local got, host, port = b:recvfrom()
      assert.are.same({ data, LOCAL, pa }, { got, host, port })
      assert.is_true(b:sendto("", "localhost", pa)) -- an empty datagram
      assert.are.equal("", (a:recvfrom(10)))
      b:settimeout(0.05)
      local t0 = mp.now()
      local none, msg, code = b:recvfrom()
      assert.is_nil(none)
      assert.are.equal("timeout", code)
      assert.is_string(msg)
      assert.is_true(mp.now() - t0 >= 0.04)
      -- still usable after the timeout
      a:sendto("again", LOCAL, pb)
      assert.are.equal("again", (b:recvfrom()))
      -- an unbound socket sends and receives replies
      local u = assert(net.udp())
      assert.is_true(u:sendto("hi", LOCAL, pb))
      local _, _, from = b:recvfrom()
      b:sendto("back", LOCAL, from)
      assert.are.equal("back", (u:recvfrom()))
      a:close() b:close() u:close()
    end)
  end)
end)

describe("mp.net stream reads", function()
  it("reassembles lines split across packets, CRLF included", function()
    H.run(function()
      local c, s, srv = pair()
      mp.spawn(function()
        local pieces = { "he", "llo\r", "\nwor", "ld\n", "12", "3 4" }
        for _, piece in ipairs(pieces) do
          s:write(piece)
          mp.sleep(0.005)
        end
        s:close()
      end)
      assert.are.equal("hello\r", c:read("l"))
      assert.are.equal("world\n", c:read("L"))
      assert.are.same({ 123, 4 }, { c:read("n", "n") })
      local none, _, code = c:read("l")
      assert.is_nil(none)
      assert.are.equal("EOF", code)
      c:close()
      srv:close()
    end)
  end)

  it("returns a last line cut by EOF, then EOF", function()
    H.run(function()
      local c, s, srv = pair()
      s:write("complete\npartial")
      s:close()
      assert.are.equal("complete", c:read("l"))
      assert.are.equal("partial", c:read("l"))
      local none, msg, code = c:read("l")
      assert.is_nil(none)
      assert.are.equal("EOF", code)
      assert.matches("read", msg)
      -- a count larger than what is left returns the rest, then EOF
      c:close()
      srv:close()
    end)
  end)

  it('reads "a" until the peer closes, counts and recv', function()
    H.run(function()
      local c, s, srv = pair()
      mp.spawn(function()
        s:write("0123456789")
        mp.sleep(0.01)
        s:write(("x"):rep(100000))
        s:close()
      end)
      assert.are.equal("012", c:read(3))
      assert.are.equal("34", c:recv(2))
      local rest = c:read("a")
      assert.are.equal(5 + 100000, #rest)
      assert.are.equal("56789", rest:sub(1, 5))
      assert.are.equal("", c:read("a")) -- "a" never fails
      local none, _, code = c:recv(10)
      assert.is_nil(none)
      assert.are.equal("EOF", code)
      c:close()
      srv:close()
    end)
  end)

  it("fails a line longer than the cap with ELINETOOLONG, keeping data",
     function()
    H.run(function()
      local c, s, srv = pair()
      local big = ("y"):rep(1024 * 1024 + 10)
      mp.spawn(function() s:write(big, "\nshort\n") end)
      local none, msg, code = c:read("l")
      assert.is_true(none == nil, none and "got a line of " .. #none)
      assert.are.equal("ELINETOOLONG", code)
      assert.matches("line longer than 1048576 bytes", msg)
      -- nothing was lost: the bytes can still be read with counts
      assert.is_true(big == c:read(#big))
      assert.are.equal("", c:read("l"))
      assert.are.equal("short", c:read("l"))
      c:close() s:close() srv:close()
    end)
  end)

  it("serves buffered lines in every line format, as the engine does",
     function()
    H.run(function()
      local c, s, srv = pair()
      -- one write: after the first read the rest is buffered, so these
      -- take read's buffered-line path (no format engine, no receive)
      s:write("a\r\nb\nc\nd\ne\nf\n7 8\ng\n\nlast")
      assert.are.equal("a\r", c:read("l"))
      assert.are.equal("b\n", c:read("L"))
      assert.are.equal("c", c:read("*l"))
      assert.are.equal("d\n", c:read("*L"))
      assert.are.equal("e", c:read())
      assert.are.equal("f", c:read("line")) -- the first letter counts
      assert.are.same({ 7, 8 }, { c:read("n", "n") })
      assert.are.equal("", c:read("l")) -- the rest of "7 8"'s line
      assert.are.same({ "g", "" }, { c:read("l", "l") })
      assert.has_error(function() c:read("x") end)
      assert.has_error(function() c:read("") end)
      local t = mp.spawn(function() return c:read("l") end)
      mp.sleep(0.01) -- t waits for the end of "last": a read in flight
      assert.has_error(function() c:read("l") end,
                       "read: another task is reading from this stream")
      s:write("\n")
      assert.are.same({ true, "last" }, { t:join() })
      s:write("x\n")
      mp.sleep(0.01)
      c:close() -- buffered bytes or not, a closed stream raises
      assert.has_error(function() c:read("l") end,
                       "read: attempt to use a closed stream")
      s:close() srv:close()
    end)
  end)

  it("waits for a line on an empty buffer in every line format, as the " ..
     "engine does", function()
    H.run(function()
      local c, s, srv = pair()
      -- each read starts with nothing buffered, so it takes the line
      -- wait's continuation (no format engine) when the fill brings a
      -- whole line, and the engine when it does not
      local cases = {
        { {}, "one\r\ntwo\n", "one\r", "two" },
        { { "l" }, "one\ntwo\n", "one", "two" },
        { { "L" }, "one\ntwo\n", "one\n", "two\n" },
        { { "*l" }, "one\n\n", "one", "" },
        { { "*L" }, "\none\n", "\n", "one\n" },
        { { "line" }, "x\ny\n", "x", "y" },
      }
      for _, case in ipairs(cases) do
        local fmt, data, first, second = table.unpack(case)
        local t = mp.spawn(function()
          return c:read(table.unpack(fmt)), c:read(table.unpack(fmt))
        end)
        mp.sleep(0.005)
        s:write(data)
        assert.are.same({ true, first, second }, { t:join() })
      end
      -- a fill without a whole line: the engine waits for the rest
      local t = mp.spawn(function() return c:read("L") end)
      mp.sleep(0.005)
      s:write("no end yet")
      mp.sleep(0.005)
      assert.is_false(t:done())
      s:write(" - now\nnext")
      assert.are.same({ true, "no end yet - now\n" }, { t:join() })
      -- bytes after the line stay buffered: a count reads them
      s:write("!")
      assert.are.equal("next!", c:read(5))
      -- a format that is not one line takes the engine from the start
      t = mp.spawn(function() return c:read("l", 2) end)
      mp.sleep(0.005)
      s:write("a\nbc")
      assert.are.same({ true, "a", "bc" }, { t:join() })
      -- a line wait cut by EOF: the partial line, then EOF
      s:write("tail")
      s:close()
      assert.are.equal("tail", c:read("l"))
      local none, _, code = c:read("l")
      assert.is_nil(none)
      assert.are.equal("EOF", code)
      c:close() srv:close()
    end)
  end)

  it("a buffered line over the cap fails again with ELINETOOLONG",
     function()
    H.run(function()
      local c, s, srv = pair()
      local big = ("z"):rep(1024 * 1024 + 1)
      mp.spawn(function() s:write("ok\n", big, "\nafter\n") end)
      assert.are.equal("ok", c:read("l"))
      for _ = 1, 2 do -- the second finds the line (or most of it) buffered
        local none, _, code = c:read("L")
        assert.is_true(none == nil, none and "got a line of " .. #none)
        assert.are.equal("ELINETOOLONG", code)
      end
      assert.is_true(big == c:read(#big))
      assert.are.equal("", c:read("l"))
      assert.are.equal("after", c:read("l"))
      c:close() s:close() srv:close()
    end)
  end)

  it("stream methods check their object, whatever its metatable",
     function()
    H.run(function()
      local c, s, srv = pair()
      local mt = getmetatable(c)
      local fake = setmetatable({}, mt) -- a table, not a stream
      assert.has_error(function() fake:read("l") end)
      assert.has_error(function() fake:write("x") end)
      assert.has_error(function() c.read("l") end)
      assert.has_error(function() c.write(srv, "x") end)
      assert.has_error(function() c.read(io.stdout) end)
      local u = net.udp()
      assert.has_error(function() c.read(u) end)
      assert.has_error(function() c.write(u, "x") end)
      u:close()
      s:write("still\n")
      assert.are.equal("still", c:read("l"))
      c:close() s:close() srv:close()
    end)
  end)

  it("half-closes with shutdown", function()
    H.run(function()
      local c, s, srv = pair()
      c:write("request")
      assert.is_true(c:shutdown())
      assert.are.equal("request", s:read("a")) -- the peer sees EOF
      s:write("reply") -- and can still answer
      s:close()
      assert.are.equal("reply", c:read("a"))
      c:close()
      srv:close()
    end)
  end)
end)

describe("mp.net writes", function()
  it("writes 16 MiB to a slow reader, every byte in order", function()
    H.run(function()
      local c, s, srv = pair()
      local chunk = {}
      for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
      chunk = table.concat(chunk):rep(64) -- 16 KiB
      local data = chunk:rep(1024)         -- 16 MiB
      local reader = mp.spawn(function()
        local n, same, reads = 0, true, 0
        while true do
          local d = s:recv(65536)
          if not d then break end
          reads = reads + 1
          if reads % 64 == 0 then mp.sleep(0.001) end -- a slow reader
          same = same and d == data:sub(n + 1, n + #d)
          n = n + #d
        end
        return n, same, reads
      end)
      assert.are.equal(c, c:write(data))
      c:close()
      local _, n, same, reads = reader:join()
      assert.are.equal(#data, n)
      assert.is_true(same)
      assert.is_true(reads > 16) -- it really went in pieces
      s:close()
      srv:close()
    end)
  end)

  it("write returns the stream; write('') is immediate", function()
    H.run(function()
      local c, s, srv = pair()
      assert.are.equal(c, c:write(""))
      assert.are.equal(c, c:write("a", 1, "b", 2.5))
      assert.are.equal("a1b2.5", s:read(6))
      c:close() s:close() srv:close()
    end)
  end)
end)

describe("mp.net more stream cases", function()
  it("carries all 256 byte values and keeps 10,000 writes in order",
     function()
    H.run(function()
      local c, s, srv = pair()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      bytes = table.concat(bytes)
      c:write(bytes)
      assert.is_true(s:read(256) == bytes)
      local reader = mp.spawn(function()
        for i = 1, 10000 do
          if s:read("l") ~= tostring(i) then return i end
        end
        return true
      end)
      for i = 1, 10000 do c:write(i, "\n") end
      local _, ok = reader:join()
      assert.is_true(ok)
      -- read(0), as io.read(0): "" once data is there (it waits for a
      -- byte, consuming none), nil at EOF
      c:write("z")
      assert.are.equal("", s:read(0))
      assert.are.equal("z", s:read(1))
      c:close()
      assert.is_nil((s:read(0)))
      s:close() srv:close()
    end)
  end)

  it("close wakes a blocked recvfrom; linger > 0 does not block close",
     function()
    H.run(function()
      local u = assert(net.udp(LOCAL, 0))
      local r = mp.spawn(function() return u:recvfrom() end)
      mp.sleep(0.01)
      u:close()
      local _, v, _, code = r:join()
      assert.are.same({ nil, "closed" }, { v, code })
      local c, s, srv = pair()
      assert.is_true(c:setoption("linger", 5))
      s:setoption("rcvbuf", 4096)
      local w = mp.spawn(function()
        return c:write(("l"):rep(4 * 1024 * 1024))
      end)
      mp.sleep(0.01)
      local t0 = mp.now()
      c:close() -- unsent data and linger 5: closed on the pool
      assert.is_true(mp.now() - t0 < 0.5)
      local _, wv, _, wcode = w:join()
      assert.are.same({ nil, "closed" }, { wv, wcode })
      s:close() srv:close()
    end)
  end)
end)

describe("mp.net errors", function()
  it("reports a refused connection", function()
    H.run(function()
      local srv, port = listener()
      srv:close() -- nobody listens there now
      local c, msg, code = net.connect(LOCAL, port)
      assert.is_nil(c)
      assert.are.equal("ECONNREFUSED", code)
      assert.matches(LOCAL .. ":" .. port, msg, 1, true)
    end)
  end)

  it("a Unix server with a full backlog: EAGAIN on every backend", function()
    -- (the epoll backend once reported these connections as made)
    local dir = H.tmpdir()
    H.run(function()
      local path = dir .. "/full.sock"
      local srv = assert(net.listen_unix(path, { backlog = 1 }))
      local made, refused = {}, 0
      for _ = 1, 5 do
        local c, _, code = net.connect_unix(path)
        if c then made[#made + 1] = c
        else
          assert.are.equal("EAGAIN", code)
          refused = refused + 1
        end
      end
      assert.is_true(refused >= 1)
      assert.is_true(#made <= 2) -- the backlog (1) plus at most one more
      for _, c in ipairs(made) do c:close() end
      srv:close()
    end)
    H.rmtree(dir)
  end)

  it("survives a peer reset (linger 0): ECONNRESET, no SIGPIPE", function()
    H.run(function()
      local c, s, srv = pair()
      assert.is_true(s:setoption("linger", 0))
      local reader = mp.spawn(function() return c:read("l") end)
      mp.sleep(0.01)
      s:close() -- RST
      local _, none, msg, code = reader:join()
      assert.is_nil(none)
      assert.are.equal("ECONNRESET", code)
      assert.is_string(msg)
      -- writes to the reset peer fail instead of killing the process
      local ok, _, wcode
      for _ = 1, 3 do
        ok, _, wcode = c:write(("z"):rep(100000))
        if not ok then break end
      end
      assert.is_nil(ok)
      assert.is_true(wcode == "EPIPE" or wcode == "ECONNRESET")
      c:close()
      srv:close()
    end)
  end)

  it("resolves names without DNS for invalid ones", function()
    H.run(function()
      local none, msg, code = net.resolve("no such host")
      assert.is_nil(none)
      assert.are.equal("EAI_NONAME", code)
      assert.matches("no such host", msg, 1, true)
      local bad = { net.resolve("999.1.1.1") }
      assert.are.equal("EAI_NONAME", bad[3])
      local l = assert(net.resolve("localhost"))
      assert.is_true(#l >= 1)
      for _, a in ipairs(l) do
        assert.is_true(a.family == "inet" or a.family == "inet6")
        assert.is_string(a.addr)
      end
      assert.are.same({ { addr = "127.0.0.1", family = "inet" } },
                      net.resolve("127.0.0.1"))
      assert.are.same({ { addr = "::1", family = "inet6" } },
                      net.resolve("::1"))
      local c, _, ccode = net.connect("no such host", 80)
      assert.is_nil(c)
      assert.are.equal("EAI_NONAME", ccode)
      local nul = { net.resolve("local\0host") }
      assert.are.equal("EINVAL", nul[3])
      -- connect by name goes through the threadpool resolver
      local srv, port = listener()
      local acc = mp.spawn(function() return srv:accept() end)
      local s = net.connect("localhost", port)
      if s then
        s:close()
        acc:join()
      else
        acc:cancel()
      end
      srv:close()
    end)
  end)

  it("raises on misuse", function()
    H.run(function()
      assert.has_error(function() net.connect(LOCAL, 70000) end)
      assert.has_error(function() net.connect(LOCAL, 0) end)
      assert.has_error(function() net.connect(LOCAL, -1) end)
      assert.has_error(function() net.connect(LOCAL, "http") end)
      assert.has_error(function() net.connect(LOCAL, 1.5) end)
      assert.has_error(function() net.connect(123, 80) end)
      assert.has_error(function() net.connect(LOCAL, 80, 5) end)
      assert.has_error(function() net.connect(LOCAL, 80, { timeout = -1 }) end)
      assert.has_error(function() net.listen(LOCAL, 0, { backlog = 0 }) end)
      assert.has_error(function() net.listen({}, 0) end)
      assert.has_error(function() net.udp(LOCAL) end)
      assert.has_error(function() net.resolve(nil) end)
      local c, s, srv = pair()
      assert.has_error(function() c:recv(0) end)
      assert.has_error(function() c:recv("x") end)
      assert.has_error(function() c:read("x") end)
      assert.has_error(function() c:read(-1) end)
      assert.has_error(function() c:write({}) end)
      assert.has_error(function() c:settimeout(-1) end)
      assert.has_error(function() c:setoption("bogus", true) end)
      assert.has_error(function() c:setoption("nodelay", 1) end)
      assert.has_error(function() c.read(srv) end)       -- bad self
      assert.has_error(function() srv.accept(c) end)
      assert.has_error(function() c.read(nil) end)
      assert.is_true(c:setoption("nodelay", true))
      assert.is_true(c:setoption("keepalive", true))
      assert.is_true(c:setoption("reuseaddr", true))
      assert.is_true(c:setoption("linger", false))
      c:close()
      assert.has_error(function() c:read() end,
                       "read: attempt to use a closed stream")
      assert.has_error(function() c:write("x") end)
      assert.has_error(function() c:close() end)
      assert.matches("closed", tostring(c))
      assert.matches("stream %(fd %d+%)", tostring(s))
      s:close()
      srv:close()
      assert.has_error(function() srv:accept() end)
      local u = net.udp()
      assert.has_error(function() u:sendto({}, LOCAL, 9) end)
      assert.has_error(function() u:sendto("x", LOCAL, 0) end)
      u:close()
    end)
  end)
end)

describe("mp.net timeouts", function()
  it("a read timeout leaves the stream usable", function()
    H.run(function()
      local c, s, srv = pair()
      c:settimeout(0.05)
      s:write("par")
      local t0 = mp.now()
      local none, msg, code = c:read("l")
      assert.is_nil(none)
      assert.are.equal("timeout", code)
      assert.matches("timed out", msg)
      assert.is_true(mp.now() - t0 >= 0.04)
      -- the buffered "par" is kept for the next read
      s:write("tial\n")
      assert.are.equal("partial", c:read("l")) -- ...nothing lost
      c:settimeout(nil)
      s:write("x")
      assert.are.equal("x", c:read(1))
      c:close() s:close() srv:close()
    end)
  end)

  it("accept and connect time out; a write times out and reports bytes",
     function()
    H.run(function()
      local srv = listener()
      srv:settimeout(0.03)
      local none, _, code = srv:accept()
      assert.is_nil(none)
      assert.are.equal("timeout", code)
      srv:close()
      local c, s, srv2 = pair()
      s:setoption("rcvbuf", 4096)
      c:settimeout(0.1)
      local ok, msg, wcode, sent = c:write(("w"):rep(32 * 1024 * 1024))
      assert.is_nil(ok)
      assert.are.equal("timeout", wcode)
      assert.matches("write", msg)
      assert.is_true(sent > 0 and sent < 32 * 1024 * 1024)
      c:close() s:close() srv2:close()
    end)
  end)

  it("connect honours opts.timeout and mp.timeout", function()
    H.run(function()
      -- a full backlog never answers the SYN: use backlog 1 and fill it
      local srv, port = listener({ backlog = 1 })
      local held = {}
      local timed_out = false
      for _ = 1, 16 do
        local c, _, code = net.connect(LOCAL, port, { timeout = 0.05 })
        if not c then
          assert.are.equal("timeout", code)
          timed_out = true
          break
        end
        held[#held + 1] = c
      end
      assert.is_true(timed_out)
      local ok, why = mp.timeout(0.05, net.connect, LOCAL, port)
      assert.is_false(ok)
      assert.are.equal("timeout", why)
      for _, c in ipairs(held) do c:close() end
      srv:close()
    end)
  end)
end)

describe("mp.net close and cancel", function()
  it("close completes blocked reads, writes and accepts with 'closed'",
     function()
    H.run(function()
      local c, s, srv = pair()
      s:setoption("rcvbuf", 4096)
      local r = mp.spawn(function() return c:read("l") end)
      local w = mp.spawn(function()
        return c:write(("q"):rep(8 * 1024 * 1024))
      end)
      local a = mp.spawn(function() return srv:accept() end)
      mp.sleep(0.02)
      assert.is_false(r:done())
      assert.is_false(w:done())
      assert.is_false(a:done())
      local fds = H.fd_count()
      c:close()
      srv:close()
      local _, rv, _, rcode = r:join()
      local _, wv, _, wcode = w:join()
      local _, av, _, acode = a:join()
      assert.are.same({ nil, "closed" }, { rv, rcode })
      assert.are.same({ nil, "closed" }, { wv, wcode })
      assert.are.same({ nil, "closed" }, { av, acode })
      mp.sleep(0.01)
      assert.is_true(H.fds_back_to(fds - 2)) -- both descriptors closed
      s:close()
    end)
  end)

  it("cancelling a task blocked in accept or read leaves the socket usable",
     function()
    H.run(function()
      local srv, port = listener()
      local a = mp.spawn(function() return srv:accept() end)
      mp.sleep(0.01)
      a:cancel()
      local ok, err = a:join()
      assert.is_false(ok)
      assert.are.equal("cancelled", err)
      local acc = mp.spawn(function() return assert(srv:accept()) end)
      local c = assert(net.connect(LOCAL, port))
      local _, s = acc:join()
      local r = mp.spawn(function() return c:read("l") end)
      mp.sleep(0.01)
      r:cancel()
      assert.is_false((r:join()))
      s:write("after cancel\n")
      assert.are.equal("after cancel", c:read("l"))
      -- mp.timeout around a read: same
      local tok = mp.timeout(0.02, c.read, c, "l")
      assert.is_false(tok)
      s:write("still\n")
      assert.are.equal("still", c:read("l"))
      c:close() s:close() srv:close()
    end)
  end)

  it("collects dropped sockets, closing their descriptors", function()
    H.run(function()
      collectgarbage()
      collectgarbage()
      mp.sleep(0.01) -- earlier specs' garbage finishes closing
      local before = H.fd_count()
      do
        local c, s, srv = pair()
        c:write("x")
        local _ = { c, s, srv }
      end
      collectgarbage()
      collectgarbage()
      mp.sleep(0.01)
      assert.is_true(H.fds_back_to(before)) -- no descriptor leaked
      -- a to-be-closed stream closes at scope exit
      do
        local c, s, srv = pair()
        local c1 <close> = c
        local s1 <close> = s
        local srv1 <close> = srv
        assert.is_truthy(c1 and s1 and srv1)
      end
      assert.is_true(H.fds_back_to(before))
    end)
  end)

  it("works outside any task (the loop runs until the call completes)",
     function()
    local srv, port = listener()
    local t = echo_server(srv)
    local c = assert(net.connect(LOCAL, port))
    c:write("outside\n")
    assert.are.equal("outside", c:read("l"))
    c:close()
    srv:close()
    mp.run()
    assert.is_true(t:done())
  end)
end)

describe("mp.net load", function()
  it("serves 1,000 concurrent clients", function()
    H.run(function()
      local srv, port = listener({ backlog = 1024 })
      local t = echo_server(srv)
      local ok = 0
      mp.scope(function(sc)
        for i = 1, 1000 do
          sc:spawn(function()
            local c = assert(net.connect(LOCAL, port))
            c:write("client ", i, "\n")
            assert.are.equal("client " .. i, c:read("l"))
            c:close()
            ok = ok + 1
          end)
        end
      end)
      assert.are.equal(1000, ok)
      srv:close()
      t:join()
    end)
  end)

  it("backs off on EMFILE instead of spinning, and resumes", function()
    local exe = os.getenv("MOONPORT") or "build/moonport"
    local f = io.open(exe)
    if not f then
      print("note: moonport binary not found, EMFILE test skipped")
      return
    end
    f:close()
    local script = H.tmpname()
    f = assert(io.open(script, "w"))
    f:write([[
local mp = require "moonport"
local srv = assert(mp.net.listen("127.0.0.1", 0))
local _, port = srv:sockname()
local clients = {}
for i = 1, 3 do clients[i] = assert(mp.net.connect("127.0.0.1", port)) end
local hog = {}
while true do -- use up every descriptor
  local h = io.open("/dev/null")
  if not h then break end
  hog[#hog + 1] = h
end
local got = 0
local acc = mp.spawn(function()
  while got < 3 do
    local c = assert(srv:accept())
    got = got + 1
    c:close()
  end
end)
local c0 = os.clock()
mp.sleep(0.3)
local cpu = os.clock() - c0
assert(got == 0, "accepted without descriptors?")
assert(cpu < 0.1, "spinning: " .. cpu .. " s of CPU in 0.3 s")
for _, h in ipairs(hog) do h:close() end
acc:join()
assert(got == 3)
print("emfile ok", cpu)
]])
    f:close()
    local p = io.popen("ulimit -n 64; " .. exe .. " " .. script .. " 2>&1")
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.matches("emfile ok", out)
  end)
end)
