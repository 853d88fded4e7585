-- workers_spec.lua: mp.worker and mp.shared_channel in a state that is no
-- worker (worker 1 of 1, a record of its own); across worker threads the
-- same calls are tested by tests/e2e/workers.sh.
local H = require "helper"
local mp = H.mp

-- Channel names are process-wide in the record: one per test.
local seq = 0
local function fresh(cap)
  seq = seq + 1
  return mp.shared_channel("spec" .. seq, cap), "spec" .. seq
end

describe("mp.worker", function()
  it("is worker 1 of 1 outside --workers", function()
    assert.are.same({ 1, 1 }, { mp.worker() })
  end)
end)

describe("mp.shared_channel", function()
  it("carries copies of what mp.work copies, in order", function()
    H.run(function()
      local ch = fresh(8)
      local t = { 1, "two", { three = 3 }, [true] = false, f = 1.5 }
      t.self = t
      assert.is_true(ch:send(t))
      assert.is_true(ch:send("x"))
      assert.is_true(ch:send(42))
      assert.are.equal(3, #ch)
      local got = ch:recv()
      assert.are_not.equal(t, got)      -- a copy
      assert.are.equal(got, got.self)   -- sharing kept
      assert.are.same({ three = 3 }, got[3])
      assert.are.equal(false, got[true])
      assert.are.equal(1.5, got.f)
      assert.are.equal("x", ch:recv())
      assert.are.equal(42, ch:recv())
      assert.are.equal(0, #ch)
    end)
  end)

  it("one name is one channel; the first call sets the capacity", function()
    H.run(function()
      local a, name = fresh(2)
      local b = mp.shared_channel(name)
      a:send("v")
      assert.are.equal("v", b:recv())
      assert.has_error(function() mp.shared_channel(name, 3) end,
        "bad argument #2 to 'shared_channel' (channel '" .. name ..
        "' exists with capacity 2)")
      assert.are.equal(b, b) -- and the same capacity given again is fine
      assert.is_truthy(mp.shared_channel(name, 2))
    end)
  end)

  it("recv waits for a send; send waits while the channel is full", function()
    H.run(function()
      local ch = fresh(1)
      local order = {}
      local r = mp.spawn(function()
        order[#order + 1] = "recv waits"
        local v = ch:recv()
        order[#order + 1] = "got " .. v
        return v
      end)
      mp.sleep(0.01)
      assert.is_true(ch:send("a"))
      assert.are.same({ true, "a" }, { r:join() })
      assert.is_true(ch:send("b")) -- fills it
      local s = mp.spawn(function()
        ch:send("c")
        order[#order + 1] = "sent c"
      end)
      mp.sleep(0.01)
      assert.is_false(s:done())
      assert.are.equal("b", ch:recv())
      s:join()
      assert.are.equal("c", ch:recv())
      assert.are.same({ "recv waits", "got a", "sent c" }, order)
    end)
  end)

  it("several waiting receivers each get one value", function()
    H.run(function()
      local ch = fresh(4)
      local tasks = {}
      for i = 1, 5 do tasks[i] = mp.spawn(function() return ch:recv() end) end
      mp.sleep(0.01)
      for i = 1, 5 do ch:send(i) end
      local seen = {}
      for i = 1, 5 do
        local ok, v = tasks[i]:join()
        assert.is_true(ok)
        seen[v] = (seen[v] or 0) + 1
      end
      assert.are.same({ 1, 1, 1, 1, 1 }, seen)
    end)
  end)

  it("close: queued values are still received, then nil, 'closed'", function()
    H.run(function()
      local ch = fresh(4)
      ch:send(1)
      local waiter = fresh(1)
      local w = mp.spawn(function() return waiter:recv() end)
      mp.sleep(0.01)
      waiter:close()
      assert.are.same({ true, nil, "closed" }, { w:join() })
      ch:close()
      assert.are.same({ nil, "channel closed", "closed" }, { ch:send(2) })
      assert.are.equal(1, ch:recv())
      assert.are.same({ nil, "closed" }, { ch:recv() })
    end)
  end)

  it("a cancelled or timed-out waiter takes nothing", function()
    H.run(function()
      local ch = fresh(1)
      local w = mp.spawn(function() return ch:recv() end)
      mp.sleep(0.01)
      w:cancel()
      assert.are.same({ false, "cancelled" }, { w:join() })
      assert.are.same({ false, "timeout" }, { mp.timeout(0.01, ch.recv, ch) })
      ch:send("kept")
      assert.are.equal("kept", ch:recv())
      -- a sender waiting on a full channel, cancelled: its value is not sent
      ch:send("first")
      local s = mp.spawn(function() return ch:send("never") end)
      mp.sleep(0.01)
      s:cancel()
      assert.are.same({ false, "cancelled" }, { s:join() })
      assert.are.equal("first", ch:recv())
      assert.are.equal(0, #ch)
    end)
  end)

  it("refuses what cannot be copied, and bad arguments", function()
    H.run(function()
      local ch = fresh(1)
      assert.has_error(function() ch:send(print) end)
      assert.has_error(function() ch:send({ f = print }) end)
      assert.has_error(function() ch:send() end)
      assert.are.equal(0, #ch)
      assert.has_error(function() mp.shared_channel() end)
      assert.has_error(function() mp.shared_channel("x", 0) end)
      assert.has_error(function() mp.shared_channel("x", 1.5) end)
      assert.has_error(function() ch.recv({}) end)
    end)
  end)

  it("works outside tasks too", function()
    local ch = fresh(1)
    mp.spawn(function() mp.sleep(0.01) ch:send("late") end)
    assert.are.equal("late", ch:recv())
    mp.run()
  end)
end)

-- Listeners sharing a port (reuseport): SO_REUSEPORT on Linux; on
-- Windows the listener the workers' record shares (runtime/share_win.c).
-- Across worker threads: tests/e2e/workers.sh and tests/win/cli.sh.
describe("reuseport in one state", function()
  it("listeners on one port share its connections; the last close frees it",
     function()
    H.run(function()
      local a = assert(mp.net.listen("127.0.0.1", 0, { reuseport = true }))
      local _, port = a:sockname()
      local b = assert(mp.net.listen("127.0.0.1", port, { reuseport = true }))
      assert.are.equal(port, select(2, b:sockname()))
      local _, msg, code = mp.net.listen("127.0.0.1", port)
      assert.is_nil(_)
      assert.are.equal("EADDRINUSE", code, msg)
      local got = { [a] = 0, [b] = 0 }
      local function serve(s, name)
        return mp.spawn(function()
          while true do
            local c, err = s:accept()
            if not c then return err end
            got[s] = got[s] + 1
            c:write(name .. "\n")
            c:close()
          end
        end)
      end
      local ta, tb = serve(a, "a"), serve(b, "b")
      local function ask()
        local c = assert(mp.net.connect("127.0.0.1", port))
        local r = assert(c:read("l"))
        c:close()
        return r
      end
      for _ = 1, 20 do ask() end
      assert.are.equal(20, got[a] + got[b])
      assert.is_true(got[a] > 0 and got[b] > 0, got[a] .. "/" .. got[b])
      -- one closed, the other keeps the port
      a:close()
      local ok, err = ta:join()
      assert.is_true(ok)
      assert.is_truthy(tostring(err):find("closed"))
      for _ = 1, 5 do assert.are.equal("b", ask()) end
      b:close()
      tb:join()
      local again = assert(mp.net.listen("127.0.0.1", port))
      again:close()
    end)
  end)

  it("an accept that times out takes no connection with it", function()
    H.run(function()
      local s = assert(mp.net.listen("127.0.0.1", 0, { reuseport = true }))
      local _, port = s:sockname()
      s:settimeout(0.05)
      local none, _, code = s:accept()
      assert.is_nil(none)
      assert.are.equal("timeout", code)
      local c = assert(mp.net.connect("127.0.0.1", port))
      s:settimeout(nil)
      local got = assert(s:accept())
      c:write("hi\n")
      assert.are.equal("hi", got:read("l"))
      got:close()
      c:close()
      s:close()
    end)
  end)
end)

describe("reuseport: the port after the last close", function()
  it("is free at once, even with an accept waiting when it closed",
     function()
    H.run(function()
      local s = assert(mp.net.listen("127.0.0.1", 0, { reuseport = true }))
      local _, port = s:sockname()
      local t = mp.spawn(function() return s:accept() end)
      mp.sleep(0.05) -- the task waits in accept
      s:close()
      -- Linux: a second SO_REUSEPORT socket binds beside the closing one
      local again, msg = mp.net.listen("127.0.0.1", port,
                                       { reuseport = true })
      assert.is_truthy(again, msg)
      again:close()
      t:join()
    end)
  end)
end)
