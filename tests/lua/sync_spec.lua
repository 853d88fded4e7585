-- sync_spec.lua: the scheduling toolkit: mp.select, mp.lock,
-- mp.semaphore, mp.event, mp.ticker.
local H = require "helper"
local mp = H.mp

-- A small deterministic generator (the specs must not depend on
-- math.random's seed).
local function rng(seed)
  local x = seed
  return function(n)
    x = (x * 1103515245 + 12345) % 2147483648
    return x % n + 1
  end
end

describe("mp.select", function()
  it("two channels ready at once: the first wins, exactly one is consumed", function()
    H.run(function()
      local a, b = mp.channel(1), mp.channel(1)
      a:send("a") b:send("b")
      assert.are.same({ 1, "a" }, { mp.select(a, b) })
      assert.are.equal(0, #a)
      assert.are.equal(1, #b)
      assert.are.same({ 2, "b" }, { mp.select(a, b) })
      -- rendezvous senders waiting on both: only the chosen one returns
      local c, d = mp.channel(), mp.channel()
      local sent = {}
      mp.spawn(function() sent.c = c:send("c") end)
      mp.spawn(function() sent.d = d:send("d") end)
      mp.sleep(0)
      assert.are.same({ 1, "d" }, { mp.select(d, c) })
      mp.sleep(0)
      assert.is_true(sent.d)
      assert.is_nil(sent.c) -- still waiting: its value was not taken
      assert.are.equal("c", c:recv())
    end)
  end)

  it("two senders hand over while it waits: exactly one value is taken", function()
    H.run(function()
      local a, b = mp.channel(), mp.channel()
      local got = {}
      local sel = mp.spawn(function() return mp.select(a, b) end)
      mp.sleep(0) -- sel waits on both
      local sa = mp.spawn(function() return a:send(1) end)
      local sb = mp.spawn(function() return b:send(2) end)
      assert.are.same({ true, 1, 1 }, { sel:join() })
      assert.is_true(sa:done())
      assert.is_false(sb:done()) -- b's value is still its sender's
      got[#got + 1] = b:recv()
      assert.are.same({ 2 }, got)
      assert.are.same({ true, true }, { sb:join() })
    end)
  end)

  it("a cancelled select consumes nothing", function()
    H.run(function()
      local a, b = mp.channel(1), mp.channel()
      local sel = mp.spawn(function() return mp.select(a, b) end)
      mp.sleep(0)
      sel:cancel()
      assert.are.same({ false, "cancelled" }, { sel:join() })
      assert.is_true(a:send("kept")) -- buffered: nobody waits any more
      assert.are.equal(1, #a)
      local s = mp.spawn(function() return b:send("b") end)
      mp.sleep(0)
      assert.is_false(s:done()) -- no receiver left behind to take it
      assert.are.equal("kept", a:recv())
      assert.are.equal("b", b:recv())
      assert.are.same({ true, true }, { s:join() })
    end)
  end)

  it("a timed-out select consumes nothing", function()
    H.run(function()
      local t = mp.spawn(mp.sleep, 10)
      local joins = mp.debug.stats().waiters
      assert.are.same({ false, "timeout" }, { mp.timeout(0.002, mp.select, t) })
      assert.are.equal(joins, mp.debug.stats().waiters) -- its watch is gone
      t:cancel()
      t:join()
      local a = mp.channel(1)
      assert.are.same({ false, "timeout" },
                      { mp.timeout(0.01, mp.select, a, mp.channel()) })
      a:send(7)
      assert.are.equal(1, #a)
      assert.are.same({ true, 2, 7 },
                      { mp.timeout(1, mp.select, mp.channel(), a) })
    end)
  end)

  it("a value handed over wins over a cancel that arrives before it runs", function()
    H.run(function()
      local a = mp.channel()
      local sel = mp.spawn(function()
        local r = { mp.select(mp.channel(), a) }
        local ok, err = pcall(mp.sleep, 0)
        return r, ok, err
      end)
      mp.sleep(0)
      assert.is_true(a:send("v")) -- handed to sel, which has not run yet
      sel:cancel()
      local ok, r, sok, serr = sel:join()
      assert.is_true(ok)
      assert.are.same({ 2, "v" }, r)
      assert.is_false(sok) -- the cancel hit the next suspension
      assert.are.equal("cancelled", serr)
    end)
  end)

  it("returns what join returns for a task, also one that fails", function()
    H.run(function()
      local ch = mp.channel()
      local t = mp.spawn(function() mp.sleep(0.005) error("boom", 0) end)
      assert.are.same({ 2, false, "boom" }, { mp.select(ch, t) })
      local u = mp.spawn(function() mp.sleep(0.005) return 1, nil, 3 end)
      assert.are.same({ 1, true, 1, nil, 3, n = 5 },
                      table.pack(mp.select(u, ch)))
      -- a task already done is ready at once
      assert.are.same({ 1, false, "boom" }, { mp.select(t, u) })
    end)
  end)

  it("reports a watched task's failure when it returns another arm", function()
    -- t fails while the select watches it (so it is not reported then),
    -- and the select returns the channel: t's failure is unhandled.
    local mp_cmd = H.moonport()
    local script = H.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local mp = require "moonport"
      local ch, ev = mp.channel(), mp.event()
      local t = mp.spawn(function() ev:wait() error("boom", 0) end)
      local s = mp.spawn(function() return mp.select(ch, t) end)
      mp.sleep(0)
      ev:set() -- t runs first, and fails while s watches it
      ch:send("v") -- s is handed the value
      print(s:join())
    ]])
    f:close()
    local p = io.popen(mp_cmd .. " " .. script .. " 2>&1")
    local out = p:read("a"):gsub("\r\n", "\n") -- (Windows' text mode)
    local _, _, rc = p:close()
    os.remove(script)
    assert.matches("true\t1\tv\n", out)
    assert.matches("error in task: boom", out)
    assert.are.equal(1, rc)
  end)

  it("a closed channel is ready with nil, 'closed'", function()
    H.run(function()
      local a, b = mp.channel(), mp.channel()
      mp.spawn(function() mp.sleep(0.002) b:close() end)
      assert.are.same({ 2, nil, "closed" }, { mp.select(a, b) })
      assert.are.same({ 2, nil, "closed" }, { mp.select(a, b) })
    end)
  end)

  it("many selecting tasks and senders: every value exactly once", function()
    H.run(function()
      local chans = { mp.channel(), mp.channel(2), mp.channel() }
      local seen, n = {}, 300
      local done = mp.channel()
      for _ = 1, 6 do
        mp.spawn(function()
          while true do
            local i, v = mp.select(chans[1], chans[2], chans[3], done)
            if i == 4 then return end
            assert.is_nil(seen[v])
            seen[v] = true
          end
        end)
      end
      local senders = {}
      for k = 1, n do
        senders[k] = mp.spawn(function() chans[k % 3 + 1]:send(k) end)
      end
      for k = 1, n do senders[k]:join() end
      done:close()
      mp.sleep(0.01)
      for k = 1, n do assert.is_true(seen[k], "value " .. k .. " lost") end
    end)
  end)

  it("a select in an abandoned or closed coroutine leaves every queue", function()
    H.run(function()
      local a = mp.channel()
      local t = mp.spawn(function() mp.sleep(0.01) end)
      local co = coroutine.create(function() return mp.select(a, t) end)
      assert.is_false(pcall(table.sort, { 1, 2 }, function(x, y)
        coroutine.resume(co)
        return x < y
      end))
      -- closed by another task while it suspends its own
      local co2 = coroutine.create(function() return mp.select(a, t) end)
      local closer = mp.spawn(function()
        mp.sleep(0)
        coroutine.close(co2)
      end)
      coroutine.resume(co2) -- returns once co2 is closed
      closer:join()
      local s = mp.spawn(function() return a:send("v") end)
      mp.sleep(0)
      assert.is_false(s:done()) -- not handed to either: it waits
      assert.are.equal("v", a:recv())
      s:join()
      t:join() -- and the leak check finds no join waiter left
    end)
  end)

  it("rejects bad arguments", function()
    H.run(function()
      assert.has_error(function() mp.select() end,
        "bad argument #1 to 'select' (channel or task expected, got no value)")
      assert.has_error(function() mp.select(mp.channel(), 3) end,
        "bad argument #2 to 'select' (channel or task expected, got number)")
      assert.has_error(function() mp.select(mp.current()) end,
        "bad argument #1 to 'select' (a task cannot select itself)")
    end)
  end)
end)

describe("mp.lock", function()
  it("is FIFO and exclusive", function()
    H.run(function()
      local l, order, ts = mp.lock(), {}, {}
      l:lock()
      for i = 1, 5 do
        ts[i] = mp.spawn(function()
          l:lock() order[#order + 1] = i l:unlock()
        end)
      end
      mp.sleep(0)
      assert.is_true(l:locked())
      l:unlock()
      for i = 1, 5 do ts[i]:join() end
      assert.are.same({ 1, 2, 3, 4, 5 }, order)
      assert.is_false(l:locked())
    end)
  end)

  it("a cancelled or timed-out waiter never ends up holding the lock", function()
    H.run(function()
      local l = mp.lock()
      l:lock()
      local w = mp.spawn(function() l:lock() end)
      local v = mp.spawn(function() return mp.timeout(0.005, l.lock, l) end)
      assert.are.same({ true, false, "timeout" }, { v:join() })
      w:cancel()
      assert.are.same({ false, "cancelled" }, { w:join() })
      l:unlock()
      assert.is_false(l:locked())
      -- handed over, then cancelled before it runs: it holds the lock and
      -- its with releases it at the cancel
      local ran
      local x = mp.spawn(function()
        l:with(function() ran = true mp.sleep(1) end)
      end)
      l:lock()
      mp.sleep(0)
      l:unlock() -- handed to x
      x:cancel()
      assert.are.same({ false, "cancelled" }, { x:join() })
      assert.is_true(ran)
      assert.is_false(l:locked())
    end)
  end)

  it("hammered by 1,000 tasks with random cancels: never two holders, never stuck", function()
    H.run(function()
      local l, r = mp.lock(), rng(7)
      local holders, max, entered = 0, 0, 0
      local tasks = {}
      for i = 1, 1000 do
        tasks[i] = mp.spawn(function()
          local body = function()
            holders = holders + 1
            max = math.max(max, holders)
            entered = entered + 1
            local ok, err = pcall(mp.sleep, r(3) == 1 and 0 or 0.0001)
            holders = holders - 1
            if not ok then error(err, 0) end
          end
          if i % 5 == 0 then
            mp.timeout(0.0005 * r(4), l.with, l, body)
          else
            l:with(body)
          end
        end)
      end
      for _ = 1, 300 do
        tasks[r(1000)]:cancel()
        if r(2) == 1 then mp.sleep(0) end
      end
      for i = 1, 1000 do tasks[i]:join() end
      assert.are.equal(1, max)
      assert.is_true(entered > 100)
      assert.is_false(l:locked())
      assert.are.same({ true, true }, { mp.timeout(0.5, l.lock, l) })
      l:unlock()
    end)
  end)

  it("with releases on error, on cancel and when its coroutine is closed", function()
    H.run(function()
      local l = mp.lock()
      assert.has_error(function() l:with(error, "inside", 0) end, "inside")
      assert.is_false(l:locked())
      assert.are.same({ 1, 2 },
                      { l:with(function(a, b) return a, b end, 1, 2) })
      local t = mp.spawn(function() l:with(mp.sleep, 10) end)
      mp.sleep(0.002)
      assert.is_true(l:locked())
      t:cancel()
      t:join()
      assert.is_false(l:locked())
      local co = coroutine.create(function() l:with(coroutine.yield) end)
      coroutine.resume(co)
      assert.is_true(l:locked())
      coroutine.close(co)
      assert.is_false(l:locked())
    end)
  end)

  it("is not reentrant; only its holder unlocks it", function()
    H.run(function()
      local l = mp.lock()
      assert.has_error(function() l:unlock() end,
                       "unlock: the lock is not locked")
      l:lock()
      assert.has_error(function() l:lock() end,
        "lock: the lock is already held by this task (locks are not reentrant)")
      local t = mp.spawn(function() return pcall(l.unlock, l) end)
      local _, ok, err = t:join()
      assert.is_false(ok)
      assert.matches("held by another task", err)
      l:unlock()
      assert.has_error(function() mp.lock().lock(mp.semaphore(1)) end,
        "bad argument #1 to 'lock' (lock expected, got userdata)")
    end)
  end)

  it("a deadlock report names which task holds what", function()
    local a, b = mp.lock(), mp.lock()
    local t1, t2
    local ok, err = pcall(mp.run, function()
      t1 = mp.spawn(function() a:lock() mp.sleep(0.002) b:lock() end)
      t2 = mp.spawn(function() b:lock() mp.sleep(0.002) a:lock() end)
      t1:join()
    end)
    assert.is_false(ok)
    -- the address as %p prints it: 0x55d0c0a8 (glibc), 00000000A0B1C2D3
    local addr = function(x) return (tostring(x):match("(%w+)$")) end
    assert.matches("^deadlock: ", err)
    assert.matches("moonport.lock: " .. addr(a) .. ": held by task %(%a+%): "
                   .. addr(t1) .. "; waited for by task %(%a+%): "
                   .. addr(t2), err)
    assert.matches("moonport.lock: " .. addr(b) .. ": held by task %(%a+%): "
                   .. addr(t2) .. "; waited for by task %(%a+%): "
                   .. addr(t1), err)
  end)
end)

describe("mp.semaphore", function()
  it("limits how many hold it at once, FIFO", function()
    H.run(function()
      local s = mp.semaphore(3)
      local inside, max, order = 0, 0, {}
      local ts = {}
      for i = 1, 20 do
        ts[i] = mp.spawn(function()
          s:with(function()
            order[#order + 1] = i
            inside = inside + 1
            max = math.max(max, inside)
            mp.sleep(0.001)
            inside = inside - 1
          end)
        end)
      end
      for i = 1, 20 do ts[i]:join() end
      assert.are.equal(3, max)
      for i = 1, 20 do assert.are.equal(i, order[i]) end
      assert.are.equal(3, s:available())
    end)
  end)

  it("a cancelled or timed-out waiter takes no permit", function()
    H.run(function()
      local s = mp.semaphore(1)
      s:acquire()
      assert.are.same({ false, "timeout" },
                      { mp.timeout(0.002, s.acquire, s) })
      local w = mp.spawn(function() s:acquire() end)
      mp.sleep(0)
      w:cancel()
      w:join()
      s:release() -- both left the queue: nobody is handed the permit
      assert.are.equal(1, s:available())
      assert.has_error(function() s:release() end,
        "release: semaphore released more times than acquired")
      assert.are.equal(1, s:available())
    end)
  end)

  it("any task may release; semaphore(0) waits for a release", function()
    H.run(function()
      local s = mp.semaphore(0)
      local t = mp.spawn(function() return s:acquire() end)
      mp.sleep(0)
      assert.is_false(t:done())
      assert.has_error(function() s:release() end,
        "release: semaphore released more times than acquired")
      local s2 = mp.semaphore(1)
      mp.spawn(function() s2:acquire() end):join()
      s2:release() -- the permit another task took
      assert.are.equal(1, s2:available())
      t:cancel()
      t:join()
      local e = "bad argument #1 to 'semaphore' (non-negative integer "
                .. "expected, got "
      assert.has_error(function() mp.semaphore(-1) end, e .. "negative)")
      assert.has_error(function() mp.semaphore(1.5) end, e .. "float)")
      assert.has_error(function() mp.semaphore("2") end, e .. "string)")
      assert.has_error(function() mp.semaphore({}) end, e .. "table)")
    end)
  end)
end)

describe("mp.event", function()
  it("set wakes every waiter and stays set until clear", function()
    H.run(function()
      local ev, woke = mp.event(), 0
      local ts = {}
      for i = 1, 3 do
        ts[i] = mp.spawn(function() ev:wait() woke = woke + 1 end)
      end
      mp.sleep(0.002)
      assert.are.equal(0, woke)
      assert.is_false(ev:isset())
      ev:set()
      ev:clear() -- before they run: woken waiters still return
      for i = 1, 3 do ts[i]:join() end
      assert.are.equal(3, woke)
      ev:set()
      assert.is_true(ev:wait()) -- set: at once
      ev:clear()
      assert.are.same({ false, "timeout" }, { mp.timeout(0.002, ev.wait, ev) })
    end)
  end)

  it("a cancelled waiter leaves the queue", function()
    H.run(function()
      local ev = mp.event()
      local t = mp.spawn(function() ev:wait() end)
      mp.sleep(0)
      assert.are.equal(1, #ev.waiters)
      t:cancel()
      assert.are.same({ false, "cancelled" }, { t:join() })
      assert.are.equal(0, #ev.waiters)
    end)
  end)
end)

describe("mp.ticker", function()
  it("does not drift: 200 ticks under a CPU-busy neighbour", function()
    H.run(function()
      local P, N = 0.01, 200
      local busy = true
      local neighbour = mp.spawn(function()
        while busy do -- 3 ms of Lua, then a yield; 20 ms now and then
          for i = 1, 1e9 do
            local t = os.clock() + (i % 10 == 0 and 0.02 or 0.003)
            while os.clock() < t do end
            mp.sleep(0)
            if not busy then return end
          end
        end
      end)
      local start = mp.now()
      local tk = mp.ticker(P)
      local count, calls, coalesced = 0, 0, 0
      while count < N do
        local n = tk:next()
        calls = calls + 1
        count = count + n
        if n > 1 then coalesced = coalesced + 1 end
      end
      local elapsed = mp.now() - start
      busy = false
      neighbour:join()
      tk:close()
      -- A sleep loop loses at least 3 ms a tick here: 60 ticks. The ticker
      -- counts what fell due: elapsed time and count agree within a tick
      -- (plus slack for a loaded machine descheduling us, and for the
      -- neighbour's 20 ms slices: compared with the count, not N, which
      -- the last call may overshoot).
      assert.is_true(elapsed >= N * P, "early: " .. elapsed)
      assert.is_true(elapsed < (count + 25) * P,
                     ("drifted: %d ticks in %.3f s"):format(count, elapsed))
      assert.is_true(coalesced > 0, "late ticks were not coalesced")
      assert.is_true(calls < count)
    end)
  end)

  it("is phase-locked: tick k comes at start + k*period, whatever the work", function()
    H.run(function()
      -- 100 ms between calls (the consumer's own work) per 200 ms tick:
      -- each tick still comes when due, so next() waits the rest and
      -- returns just after it (lateness: the loop's latency). A ticker
      -- that waited a period from each call would deliver ticks 100 ms
      -- late (or return at once, 0 late, the next time): a median of
      -- ~50-100 ms. The median is robust to a loaded machine's stalls,
      -- and the period long against its latency (16 ms seen under ASan
      -- at load 6 with a 50 ms period).
      local P, N = 0.2, 10
      local start = mp.now()
      local tk = mp.ticker(P)
      local count, late = 0, {}
      while count < N do
        count = count + tk:next()
        late[#late + 1] = mp.now() - (start + count * P)
        mp.sleep(P / 2)
      end
      tk:close()
      table.sort(late)
      local median = late[#late // 2 + 1]
      assert.is_true(median < P / 5, ("median lateness %.2f ms")
                     :format(median * 1e3))
    end)
  end)

  it("coalesces late ticks and counts them", function()
    H.run(function()
      local start = mp.now()
      local tk = mp.ticker(0.01)
      mp.sleep(0.055)
      local n = tk:next() -- at once: 5 ticks (more if the machine stalled)
      assert.is_true(n >= 5, "n = " .. n)
      local n2 = tk:next() -- waits for the next tick
      local due = (mp.now() - start) / 0.01
      assert.is_true(n2 >= 1)
      -- every tick counted once: the counts add up to the ticks due
      assert.is_true(n + n2 <= due and n + n2 > due - 1.5,
                     ("%d + %d ticks, %.2f due"):format(n, n2, due))
      tk:close()
    end)
  end)

  it("close wakes a waiter with nil, 'closed'; for ends", function()
    H.run(function()
      local tk = mp.ticker(60)
      mp.spawn(function() mp.sleep(0.002) tk:close() end)
      assert.are.same({ true, nil, "closed" }, { mp.timeout(5, tk.next, tk) })
      assert.are.same({ nil, "closed" }, { tk:next() })
      local tk2, n = mp.ticker(0.001), 0
      for k in tk2 do
        n = n + k
        if n >= 3 then tk2:close() end
      end
      assert.is_true(n >= 3)
    end)
  end)

  it("a cancelled or timed-out next leaves the ticker usable", function()
    H.run(function()
      local tk = mp.ticker(0.25) -- no tick due during the first checks
      local t = mp.spawn(function() return tk:next() end)
      mp.sleep(0)
      t:cancel()
      assert.are.same({ false, "cancelled" }, { t:join() })
      assert.are.same({ false, "timeout" }, { mp.timeout(0.002, tk.next, tk) })
      assert.is_true(tk:next() >= 1)
      tk:close()
    end)
  end)

  it("rejects bad periods", function()
    for _, p in ipairs { 0, -1, 0 / 0, math.huge } do
      assert.has_error(function() mp.ticker(p) end)
    end
    assert.has_error(function() mp.ticker("1") end,
      "bad argument #1 to 'ticker' (positive number expected, got string)")
  end)
end)
