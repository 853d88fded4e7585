-- waiters_spec.lua: the queues of tasks waiting in a channel's recv or
-- send, a lock's lock or a semaphore's acquire (bindings/lchan.c, lsem.c:
-- a task is linked through its own record; mp.select's arms and the main
-- program wait as records, in the same order).
local H = require "helper"
local mp = H.mp

-- n tasks each run wait(i) in turn; each logs i once its wait returns,
-- and returns what it returned
local function waiters(n, log, wait)
  local ts = {}
  for i = 1, n do
    ts[i] = mp.spawn(function()
      local r = table.pack(wait(i))
      log[#log + 1] = i
      return table.unpack(r, 1, r.n)
    end)
  end
  mp.sleep(0) -- all parked, in order
  return ts
end

local KEEP = { 2, 3, 4, 6, 7, 8, 9 } -- after 1, 5 and 10 are cancelled

describe("waiter queues", function()
  it("receivers cancelled or timed out at the head, middle and tail leave", function()
    H.run(function()
      local ch, log = mp.channel(), {}
      local ts = waiters(10, log, function() return ch:recv() end)
      local timed = mp.spawn(function()
        return mp.timeout(0.001, ch.recv, ch)
      end)
      ts[1]:cancel() -- the head
      ts[5]:cancel()
      ts[10]:cancel() -- the tail, then the timed one behind it
      assert.are.same({ true, false, "timeout" }, { timed:join() })
      for _, i in ipairs { 1, 5, 10 } do
        assert.are.same({ false, "cancelled" }, { ts[i]:join() })
      end
      -- one more behind them all, queued after the tail left
      local late = mp.spawn(function() return ch:recv() end)
      mp.sleep(0)
      for _, i in ipairs(KEEP) do assert.is_true(ch:send(i * 10)) end
      for _, i in ipairs(KEEP) do
        assert.are.same({ true, i * 10 }, { ts[i]:join() })
      end
      assert.are.same(KEEP, log)
      assert.is_true(ch:send("late"))
      assert.are.same({ true, "late" }, { late:join() })
      -- nobody is left: a send now waits
      assert.are.same({ false, "timeout" }, { mp.timeout(0.005, ch.send, ch, 0) })
    end)
  end)

  it("senders cancelled or timed out at the head, middle and tail leave with their values", function()
    H.run(function()
      local ch, log = mp.channel(), {}
      local ts = waiters(10, log, function(i) return ch:send(i) end)
      local timed = mp.spawn(function()
        return mp.timeout(0.001, ch.send, ch, "late")
      end)
      ts[1]:cancel()
      ts[5]:cancel()
      ts[10]:cancel()
      assert.are.same({ true, false, "timeout" }, { timed:join() })
      for _, i in ipairs(KEEP) do assert.are.equal(i, ch:recv()) end
      for _, i in ipairs(KEEP) do assert.are.same({ true, true }, { ts[i]:join() }) end
      for _, i in ipairs { 1, 5, 10 } do
        assert.are.same({ false, "cancelled" }, { ts[i]:join() })
      end
      assert.are.same({ false, "timeout" }, { mp.timeout(0.005, ch.recv, ch) })
    end)
  end)

  for _, kind in ipairs { "lock", "semaphore" } do
    it(kind .. " waiters cancelled or timed out at the head, middle and tail leave", function()
      H.run(function()
        local l = kind == "lock" and mp.lock() or mp.semaphore(1)
        local take = kind == "lock" and l.lock or l.acquire
        local give = kind == "lock" and l.unlock or l.release
        take(l)
        local log = {}
        local ts = waiters(10, log, function() take(l) give(l) return true end)
        local timed = mp.spawn(function() return mp.timeout(0.001, take, l) end)
        ts[1]:cancel()
        ts[5]:cancel()
        ts[10]:cancel()
        assert.are.same({ true, false, "timeout" }, { timed:join() })
        -- one more behind them all, queued after the tail left
        local late = mp.spawn(function() take(l) give(l) return "late" end)
        mp.sleep(0)
        give(l)
        assert.are.same({ true, "late" }, { late:join() })
        for _, i in ipairs(KEEP) do assert.are.same({ true, true }, { ts[i]:join() }) end
        for _, i in ipairs { 1, 5, 10 } do
          assert.are.same({ false, "cancelled" }, { ts[i]:join() })
        end
        assert.are.same(KEEP, log)
        -- every permit came back, none was taken by a waiter that left
        if kind == "lock" then assert.is_false(l:locked())
        else assert.are.equal(1, l:available()) end
      end)
    end)
  end

  it("a permit handed to a waiter that is then cancelled is its; its coroutine closed first, it goes to the next", function()
    H.run(function()
      local l = mp.lock()
      l:lock()
      local a = mp.spawn(function() l:lock() return "a" end)
      mp.sleep(0)
      l:unlock() -- handed to a
      a:cancel() -- too late: a returns holding the lock
      assert.are.same({ true, "a" }, { a:join() })
      assert.is_true(l:locked())
      local ok, err = pcall(l.unlock, l)
      assert.is_false(ok)
      assert.matches("held by another task", err)
      for _, kind in ipairs { "lock", "semaphore" } do
        local x = kind == "lock" and mp.lock() or mp.semaphore(1)
        local take = kind == "lock" and x.lock or x.acquire
        local give = kind == "lock" and x.unlock or x.release
        take(x)
        local co = coroutine.create(function() return take(x) end)
        local owner = mp.spawn(function() return coroutine.resume(co) end)
        local b = mp.spawn(function() take(x) give(x) return "b" end)
        mp.sleep(0) -- co's wait first in line, then b's
        give(x) -- handed to co's wait
        coroutine.close(co) -- before it ran: b gets the permit
        assert.are.same({ true, "b" }, { b:join() })
        owner:join()
        if kind == "lock" then assert.is_false(x:locked())
        else assert.are.equal(1, x:available()) end
      end
    end)
  end)

  it("a release by a task holding none takes a permit handed to a waiter that has not run yet, as from any holder", function()
    H.run(function()
      -- what happens to the waiter's coroutine before it runs: nothing,
      -- closed, or resumed by another task
      for _, fate in ipairs { "runs", "closed", "resumed" } do
        local s = mp.semaphore(1)
        s:acquire() -- this task takes the only permit
        local co = coroutine.create(function() return s:acquire() end)
        local w = mp.spawn(function()
          if fate == "runs" then return s:acquire() end
          return coroutine.resume(co)
        end)
        mp.sleep(0) -- w's wait parked
        s:release() -- handed to w's wait, which has not run
        -- this task holds none now: this release takes w's (two
        -- acquired, two released), it does not raise
        s:release()
        assert.are.equal(1, s:available())
        if fate == "closed" then coroutine.close(co) end
        if fate == "resumed" then
          local ok, err = coroutine.resume(co)
          assert.is_false(ok)
          assert.matches("abandoned", err)
        end
        local r = { w:join() }
        if fate == "runs" then
          assert.are.same({ true, true }, r) -- returned, holding none
          local ok, err = pcall(s.release, s) -- so a third release raises
          assert.is_false(ok)
          assert.matches("released more times than acquired", err)
        end
        -- the taken permit is not given back twice
        assert.are.equal(1, s:available())
        assert.is_true(s:acquire())
        assert.are.equal(0, s:available())
        s:release()
      end
    end)
  end)

  it("a value handed to a receiver whose coroutine is closed goes to the next", function()
    H.run(function()
      local ch = mp.channel()
      local co = coroutine.create(function() return ch:recv() end)
      local owner = mp.spawn(function() coroutine.resume(co) end)
      local b = mp.spawn(function() return ch:recv() end)
      mp.sleep(0)
      assert.is_true(ch:send("x")) -- to co's wait, first in line
      coroutine.close(co)
      assert.are.same({ true, "x" }, { b:join() })
      owner:join()
      -- with nobody else waiting, the channel keeps it first in line
      local ch2 = mp.channel(1)
      local co2 = coroutine.create(function() return ch2:recv() end)
      local owner2 = mp.spawn(function() coroutine.resume(co2) end)
      mp.sleep(0)
      ch2:send("y")
      ch2:send("z") -- buffered behind the hand-over
      coroutine.close(co2)
      assert.are.equal("y", ch2:recv())
      assert.are.equal("z", ch2:recv())
      owner2:join()
    end)
  end)

  it("tasks, select arms and coroutines inside tasks are served in the order they came", function()
    H.run(function()
      local ch, other, log = mp.channel(), mp.channel(), {}
      local ts = {}
      for i = 1, 6 do
        ts[i] = mp.spawn(function()
          local r
          if i % 3 == 2 then
            r = table.pack(mp.select(other, ch)) -- arm 2
          elseif i % 3 == 0 then
            r = table.pack(coroutine.wrap(function() return ch:recv() end)())
          else
            r = table.pack(ch:recv())
          end
          log[#log + 1] = i
          return table.unpack(r, 1, r.n)
        end)
        mp.sleep(0)
      end
      for i = 1, 6 do ch:send(i) end
      for i = 1, 6 do
        if i % 3 == 2 then assert.are.same({ true, 2, i }, { ts[i]:join() })
        else assert.are.same({ true, i }, { ts[i]:join() }) end
      end
      assert.are.same({ 1, 2, 3, 4, 5, 6 }, log)
      -- the same for senders, received by a select
      local ss = {}
      for i = 1, 3 do
        ss[i] = mp.spawn(function() return ch:send(i) end)
        mp.sleep(0)
      end
      for i = 1, 3 do assert.are.same({ 2, i }, { mp.select(other, ch) }) end
      for i = 1, 3 do assert.are.same({ true, true }, { ss[i]:join() }) end
    end)
  end)

  it("close wakes every kind of waiter with its result", function()
    H.run(function()
      local ch, other, ch2 = mp.channel(), mp.channel(), mp.channel()
      local r1 = mp.spawn(function() return ch:recv() end)
      local r2 = mp.spawn(function() return mp.select(other, ch) end)
      local r3 = mp.spawn(function()
        return coroutine.wrap(function() return ch:recv() end)()
      end)
      local s1 = mp.spawn(function() return ch2:send(1) end)
      local s2 = mp.spawn(function()
        return coroutine.wrap(function() return ch2:send(2) end)()
      end)
      mp.sleep(0)
      ch:close()
      ch2:close()
      assert.are.same({ true, nil, "closed" }, { r1:join() })
      assert.are.same({ true, 2, nil, "closed" }, { r2:join() })
      assert.are.same({ true, nil, "closed" }, { r3:join() })
      for _, s in ipairs { s1, s2 } do
        assert.are.same({ true, nil, "channel closed", "closed" }, { s:join() })
      end
      assert.are.same({ nil, "closed" }, { ch:recv() })
    end)
  end)

  it("a cancelled task whose coroutine inside waits leaves the queue", function()
    H.run(function()
      local ch, l = mp.channel(), mp.lock()
      l:lock()
      local t = mp.spawn(function()
        return coroutine.wrap(function() return ch:recv() end)()
      end)
      local u = mp.spawn(function()
        return coroutine.wrap(function() return l:lock() end)()
      end)
      local t2 = mp.spawn(function() return ch:recv() end)
      local u2 = mp.spawn(function() l:lock() l:unlock() return "u2" end)
      mp.sleep(0)
      t:cancel()
      u:cancel()
      assert.are.same({ false, "cancelled" }, { t:join() })
      assert.are.same({ false, "cancelled" }, { u:join() })
      ch:send("v")
      assert.are.same({ true, "v" }, { t2:join() })
      l:unlock()
      assert.are.same({ true, "u2" }, { u2:join() })
      assert.is_false(l:locked())
    end)
  end)

  it("a waiter resumed by another task: a receiver returns what it was handed, else it raises", function()
    H.run(function()
      for _, handed in ipairs { true, false } do
        local ch, l = mp.channel(), mp.lock()
        l:lock()
        local rco = coroutine.create(function() return ch:recv() end)
        local lco = coroutine.create(function() return l:lock() end)
        local owner = mp.spawn(function()
          return coroutine.resume(rco), coroutine.resume(lco)
        end)
        mp.sleep(0) -- rco parked in owner's recv; lco not yet
        if handed then ch:send("v") end
        local ok, v = coroutine.resume(rco) -- from this task
        if handed then
          assert.are.same({ true, "v" }, { ok, v })
        else
          assert.is_false(ok)
          assert.matches("operation abandoned", v)
        end
        mp.sleep(0) -- owner goes on to lco, which parks in lock
        if handed then l:unlock() end
        ok, v = coroutine.resume(lco)
        -- a lock raises either way, passing on a permit handed to it
        assert.is_false(ok)
        assert.matches("operation abandoned", v)
        if not handed then l:unlock() end
        owner:join()
        assert.is_false(l:locked()) -- nothing left held or queued
        local t = mp.spawn(function() return ch:recv() end)
        ch:send("next")
        assert.are.same({ true, "next" }, { t:join() })
      end
    end)
  end)

  it("the main program waits in line with the tasks", function()
    local ch = mp.channel()
    local r1 = mp.spawn(function() return ch:recv() end)
    local r3 = mp.spawn(function()
      mp.sleep(0.005) -- after the main program's recv
      return ch:recv()
    end)
    local s = mp.spawn(function()
      mp.sleep(0.02)
      for i = 1, 3 do ch:send(i) end
    end)
    mp.sleep(0) -- r1 parks first
    assert.are.equal(2, ch:recv())
    assert.are.same({ true, 1 }, { r1:join() })
    assert.are.same({ true, 3 }, { r3:join() })
    s:join()
    -- and for a lock
    local l = mp.lock()
    local holder = mp.spawn(function() l:lock() mp.sleep(0.01) l:unlock() end)
    local w = mp.spawn(function() mp.sleep(0.002) l:lock() l:unlock() return true end)
    mp.sleep(0.001)
    l:lock() -- before w (which queues at 2 ms)
    assert.is_false(w:done())
    l:unlock()
    assert.are.same({ true, true }, { w:join() })
    holder:join()
  end)

  it("a channel or lock collected with a swallowed waiter lets go of it", function()
    local raw
    for i = 1, 10 do
      local n, v = debug.getupvalue(coroutine.resume, i)
      if n == "co_resume" then raw = v end
    end
    assert.is_function(raw)
    H.run(function()
      for round = 1, 10 do
        for _, make in ipairs {
          function() local ch = mp.channel() return function() return ch:recv() end end,
          function() local ch = mp.channel() return function() return ch:send(1) end end,
          function()
            local l = mp.lock()
            l:lock()
            return function() return l:lock() end
          end,
        } do
          raw(coroutine.create(make())) -- parked, swallowed: the task runs on
          for _ = 1, 2 do collectgarbage() end -- the coroutine, then its object
          local junk = {}
          for i = 1, 50 do junk[i] = { i, tostring(i), {} } end
          mp.sleep(0) -- the next suspension drops the stale wait
          assert.is_true(round > 0)
        end
      end
      -- and a channel collected with nobody waiting: its tasks went on
      local weak = setmetatable({}, { __mode = "v" })
      local t
      do
        local ch = mp.channel()
        weak.ch = ch
        t = mp.spawn(function() return ch:recv() end)
      end
      mp.sleep(0)
      collectgarbage()
      assert.is_not_nil(weak.ch) -- held by its waiter's frame
      weak.ch:send("kept")
      assert.are.same({ true, "kept" }, { t:join() })
      t = nil
      for _ = 1, 3 do collectgarbage() end
      assert.is_nil(weak.ch)
    end)
  end)
end)
