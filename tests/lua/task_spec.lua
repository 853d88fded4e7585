-- task_spec.lua: tasks and time (mp.spawn, join, cancel, sleep, timeout,
-- run, scope, channel, work, backend) and the coroutine library in tasks.
local H = require "helper"
local mp = H.mp

describe("mp.backend", function()
  it("reports the backend the suite runs on", function()
    local want = H.expected_backend()
    local name, why = mp.backend()
    assert.is_true(name == "io_uring" or name == "epoll" or name == "iocp")
    if want then assert.are.equal(want, name) end
    if os.getenv("MP_EXPECT_BACKEND") == "seccomp" then
      assert.are.equal("EPERM", why) -- fell back, and says why
    end
  end)
end)

describe("mp.spawn and task:join", function()
  it("starts tasks on the next turn, in spawn order", function()
    local log = {}
    H.run(function()
      for i = 1, 5 do mp.spawn(function() log[#log + 1] = i end) end
      log[#log + 1] = "parent"
      mp.sleep(0)
      log[#log + 1] = "after"
    end)
    assert.are.same({ "parent", 1, 2, 3, 4, 5, "after" }, log)
  end)

  it("join returns true and every result, like pcall", function()
    H.run(function()
      local t = mp.spawn(function(a, b) mp.sleep(0.001) return a + b, nil, "x" end, 2, 3)
      assert.are.same({ true, 5, nil, "x", n = 4 }, table.pack(t:join()))
      -- joining again gives the same outcome
      assert.are.same({ true, 5, nil, "x", n = 4 }, table.pack(t:join()))
      assert.is_true(t:done())
    end)
  end)

  it("join returns false and the error of a failed task", function()
    H.run(function()
      local t = mp.spawn(function() error({ code = 7 }) end)
      local ok, err = t:join()
      assert.is_false(ok)
      assert.are.equal(7, err.code)
    end)
  end)

  it("join returns the very error object a task failed with before anyone joined", function()
    H.run(function()
      local E = setmetatable({}, { __tostring = function() return 1 end })
      local t = mp.spawn(function() error(E) end)
      local n = mp.spawn(function() error(42) end)
      mp.sleep(0.001) -- both failed (and were reported) unjoined
      local ok, err = t:join()
      assert.is_false(ok)
      assert.is_true(rawequal(E, err))
      assert.are.same({ false, 42 }, { n:join() })
      assert.are.equal("integer", math.type(select(2, n:join())))
    end)
  end)

  it("many tasks can join one task", function()
    H.run(function()
      local target = mp.spawn(function() mp.sleep(0.01) return "v" end)
      local joiners = {}
      for i = 1, 10 do
        joiners[i] = mp.spawn(function() return select(2, target:join()) end)
      end
      for i = 1, 10 do assert.are.same({ true, "v" }, { joiners[i]:join() }) end
    end)
  end)

  it("works outside any task: join runs the loop", function()
    local t = mp.spawn(function() mp.sleep(0.005) return 42 end)
    assert.is_nil(mp.current())
    assert.are.same({ true, 42 }, { t:join() })
  end)

  it("mp.current is the running task", function()
    H.run(function()
      local me
      local t = mp.spawn(function() me = mp.current() end)
      t:join()
      assert.are.equal(t, me)
      assert.is_not_nil(mp.current())
      assert.matches("^task", tostring(t))
    end)
  end)

  it("a task cannot join itself", function()
    H.run(function()
      assert.has_error(function() mp.current():join() end,
                       "join: a task cannot join itself")
    end)
  end)
end)

-- A task parked in join is on its target's joiner list, linked through
-- its own record (lcore.c lmp_park_join): no memory per joiner. Joiners
-- leave it from anywhere in the list (head, middle, tail) when they are
-- cancelled, time out, or their coroutine is abandoned or closed.
describe("joiner lists", function()
  -- n tasks join target; each logs its index when woken and returns
  -- what join returned
  local function joiners(target, n, log)
    local ts = {}
    for i = 1, n do
      ts[i] = mp.spawn(function()
        local r = table.pack(target:join())
        log[#log + 1] = i
        return table.unpack(r, 1, r.n)
      end)
    end
    mp.sleep(0) -- all parked, in order
    return ts
  end

  it("wakes many joiners of one target in the order they joined", function()
    H.run(function()
      local ch, log = mp.channel(), {}
      local target = mp.spawn(function() return ch:recv() end)
      local ts = joiners(target, 200, log)
      ch:send("v")
      for i = 1, 200 do
        assert.are.same({ true, true, "v" }, { ts[i]:join() })
      end
      for i = 1, 200 do assert.are.equal(i, log[i]) end
    end)
  end)

  it("a joiner cancelled or timed out anywhere in the list leaves it",
     function()
    H.run(function()
      local ch, log = mp.channel(), {}
      local target = mp.spawn(function() return ch:recv() end)
      local ts = joiners(target, 10, log)
      -- a joiner under an mp.timeout, last in the list
      local timed = mp.spawn(function()
        return mp.timeout(0.001, target.join, target)
      end)
      -- the list is newest first: 10 is its head, 1 its tail
      ts[10]:cancel()
      ts[5]:cancel()
      ts[1]:cancel()
      assert.are.same({ true, false, "timeout" }, { timed:join() })
      for _, i in ipairs { 1, 5, 10 } do
        assert.are.same({ false, "cancelled" }, { ts[i]:join() })
      end
      ch:send("v")
      for _, i in ipairs { 2, 3, 4, 6, 7, 8, 9 } do
        assert.are.same({ true, true, "v" }, { ts[i]:join() })
      end
      assert.are.same({ 2, 3, 4, 6, 7, 8, 9 }, log)
    end)
  end)

  it("a joiner cancelled after its target ended, before it ran, gets the outcome", function()
    H.run(function()
      local ch = mp.channel()
      local target = mp.spawn(function() return ch:recv() end)
      local j = mp.spawn(function()
        local ok, v = target:join()
        return ok, v, pcall(mp.sleep, 1)
      end)
      local k = mp.spawn(function()
        local ok, v = target:join()
        return ok, v, pcall(mp.sleep, 1)
      end)
      mp.sleep(0) -- both parked
      ch:send("v") -- the target is readied
      k:cancel() -- k is readied (off the list), behind the target
      mp.sleep(0) -- the target ends (j is woken), then k runs
      j:cancel()
      assert.are.same({ true, true, "v", false, "cancelled" }, { j:join() })
      assert.are.same({ true, true, "v", false, "cancelled" }, { k:join() })
    end)
  end)

  it("a joiner whose coroutine is closed or abandoned leaves the list",
     function()
    H.run(function()
      local ch, log = mp.channel(), {}
      local target = mp.spawn(function() return ch:recv() end)
      local first = joiners(target, 3, log)
      -- joins from a coroutine of its own, closed from outside
      local co = coroutine.create(function() return target:join() end)
      local closed = mp.spawn(function() return coroutine.resume(co) end)
      -- joins from a coroutine resumed in a table.sort comparator: it
      -- cannot suspend its task, so it is abandoned at once
      local aco = coroutine.create(function() return target:join() end)
      local abandoned = mp.spawn(function()
        local ok = pcall(table.sort, { 1, 2 }, function(a, b)
          coroutine.resume(aco)
          return a < b
        end)
        return ok, coroutine.status(aco)
      end)
      local last = joiners(target, 3, log)
      assert.are.same({ true, false, "suspended" }, { abandoned:join() })
      assert.is_true(coroutine.close(co))
      local r = table.pack(closed:join())
      assert.is_true(r[1]) -- it went on, finding co dead
      ch:send("v")
      for i = 1, 3 do
        assert.are.same({ true, true, "v" }, { first[i]:join() })
        assert.are.same({ true, true, "v" }, { last[i]:join() })
      end
      assert.are.same({ 1, 2, 3, 1, 2, 3 }, log)
      -- resumed later, the abandoned join says so
      local ok, err = coroutine.resume(aco)
      assert.is_false(ok)
      assert.matches("operation abandoned", err)
    end)
  end)

  it("a failed target's error reaches every joiner", function()
    H.run(function()
      local ch, log = mp.channel(), {}
      local target = mp.spawn(function() ch:recv() error("boom", 0) end)
      local ts = joiners(target, 5, log)
      ch:send(1)
      for i = 1, 5 do
        assert.are.same({ true, false, "boom" }, { ts[i]:join() })
      end
      assert.are.same({ 1, 2, 3, 4, 5 }, log)
    end)
  end)

  it("a task joins one target, then another", function()
    H.run(function()
      local a_ch, b_ch, log = mp.channel(), mp.channel(), {}
      local a = mp.spawn(function() return a_ch:recv() end)
      local b = mp.spawn(function() return b_ch:recv() end)
      local both = mp.spawn(function()
        local _, x = a:join()
        local _, y = b:join()
        return x, y
      end)
      local on_a = joiners(a, 2, log)
      local on_b = joiners(b, 2, log)
      a_ch:send("x")
      assert.are.same({ true, true, "x" }, { on_a[1]:join() })
      mp.sleep(0) -- both is now on b's list, behind on_b
      b_ch:send("y")
      assert.are.same({ true, "x", "y" }, { both:join() })
      assert.are.same({ true, true, "y" }, { on_b[2]:join() })
      assert.are.same({ 1, 2, 1, 2 }, log)
    end)
  end)

  it("the target's mp.timeout moving its side block keeps the list whole",
     function()
    H.run(function()
      local ch, ch2, log = mp.channel(), mp.channel(), {}
      -- the target's first deadline comes after its first joiner made
      -- the block; six nested ones grow it twice
      local function nest(n)
        if n == 0 then return ch2:recv() end
        return select(2, mp.timeout(10, nest, n - 1))
      end
      local target = mp.spawn(function() ch:recv() return nest(6) end)
      local ts = joiners(target, 4, log)
      ch:send(1)
      mp.sleep(0) -- the target is in its sixth mp.timeout
      ts[4]:cancel() -- the head of the list: it points into the block
      ts[1]:cancel()
      assert.are.same({ false, "cancelled" }, { ts[4]:join() })
      local late = mp.spawn(function() return target:join() end)
      mp.sleep(0)
      ch2:send("v")
      assert.are.same({ true, true, "v" }, { ts[2]:join() })
      assert.are.same({ true, true, "v" }, { ts[3]:join() })
      assert.are.same({ true, true, "v" }, { late:join() })
      assert.are.same({ false, "cancelled" }, { ts[1]:join() })
    end)
  end)

  it("the main program joins beside tasks", function()
    local ch, log = mp.channel(), {}
    local target = mp.spawn(function() return ch:recv() end)
    local ts
    mp.spawn(function()
      ts = joiners(target, 3, log)
      ch:send("v")
    end)
    assert.are.same({ true, "v" }, { target:join() })
    for i = 1, 3 do assert.are.same({ true, true, "v" }, { ts[i]:join() }) end
  end)

  it("a deadlock cancels every joiner on the list", function()
    local log = {}
    local ok, err = pcall(mp.run, function()
      local target = mp.spawn(function() mp.channel():recv() end)
      joiners(target, 5, log)
      target:join()
    end)
    assert.is_false(ok)
    assert.matches("deadlock", err)
  end)
end)

-- A live task is anchored by its coroutine (anchors[co] = task; the
-- coroutine's stack holds the task); a finished one keeps its coroutine,
-- which holds its results, through a table with weak keys.
describe("task lifetime", function()
  local function full_gc()
    collectgarbage()
    collectgarbage()
  end

  it("a finished task keeps its coroutine and results through collections",
     function()
    local seen = setmetatable({}, { __mode = "v" })
    local res = {}
    local t = mp.spawn(function()
      seen.co = coroutine.running()
      return res, "x"
    end)
    mp.sleep(0.001)
    assert.is_true(t:done())
    res = nil
    full_gc()
    assert.is_not_nil(seen.co) -- kept by the task
    local ok, r, x = t:join()
    assert.is_true(ok)
    assert.are.equal("table", type(r))
    assert.are.equal("x", x)
  end)

  it("a finished task nobody holds goes, with its coroutine", function()
    local seen = setmetatable({}, { __mode = "v" })
    local base = mp.debug.stats().anchors
    seen.t = mp.spawn(function() seen.co = coroutine.running() return 1 end)
    assert.are.equal(base + 1, mp.debug.stats().anchors)
    mp.sleep(0.001)
    assert.is_true(seen.t:done())
    assert.are.equal(base, mp.debug.stats().anchors)
    full_gc()
    assert.is_nil(seen.t)
    assert.is_nil(seen.co)
  end)

  it("a parked task nobody holds stays, and runs on", function()
    local seen = setmetatable({}, { __mode = "v" })
    local ch = mp.channel()
    local got = {}
    seen.t = mp.spawn(function()
      seen.co = coroutine.running()
      got[1] = ch:recv()
    end)
    mp.sleep(0.001)
    full_gc()
    assert.is_not_nil(seen.t)
    assert.is_not_nil(seen.co)
    ch:send("v")
    mp.sleep(0.001)
    assert.are.equal("v", got[1])
  end)

  it("a finished target dropped while its joiner waits still answers it",
     function()
    local target = mp.spawn(function() mp.sleep(0.005) return 7, {} end)
    local joiner = mp.spawn(function(tg) return tg:join() end, target)
    target = nil -- held by the joiner's stack only
    while not joiner:done() do
      full_gc()
      mp.sleep(0.001)
    end
    full_gc()
    local ok, tok, v, tbl = joiner:join()
    assert.is_true(ok)
    assert.is_true(tok)
    assert.are.equal(7, v)
    assert.are.equal("table", type(tbl))
  end)

  it("a failed task keeps its error object through collections", function()
    local err = {}
    local t = mp.spawn(function() mp.sleep(0.002) error(err) end)
    local j = mp.spawn(function() return t:join() end) -- not reported
    while not t:done() do
      full_gc()
      mp.sleep(0.001)
    end
    full_gc()
    local ok, e = t:join()
    assert.is_false(ok)
    assert.are.equal(err, e)
    assert.are.same({ true, false, err }, { j:join() })
  end)

  it("a done task referenced only by a weak-keyed table goes", function()
    local byTask = setmetatable({}, { __mode = "k" })
    local t = mp.spawn(function() return "r" end)
    mp.sleep(0.001)
    byTask[t] = "info"
    assert.are.same({ true, "r" }, { t:join() })
    t = nil
    full_gc()
    assert.is_nil(next(byTask))
  end)

  it("coroutine.close on suspended coroutines beside parked tasks",
     function()
    local ch = mp.channel()
    local ts = {}
    for i = 1, 50 do ts[i] = mp.spawn(function() return ch:recv() end) end
    mp.sleep(0.001)
    for _ = 1, 20 do
      local c = coroutine.create(function() coroutine.yield() end)
      coroutine.resume(c)
      assert.is_true(coroutine.close(c))
    end
    ch:close()
    for i = 1, 50 do assert.is_true((ts[i]:join())) end
  end)
end)

describe("task:cancel", function()
  it("cancels a sleeping task; its join reports cancelled", function()
    H.run(function()
      local t0 = mp.now()
      local t = mp.spawn(function() mp.sleep(10) return "woke" end)
      mp.sleep(0.01)
      t:cancel()
      assert.are.same({ false, "cancelled" }, { t:join() })
      assert.is_true(mp.now() - t0 < 5)
    end)
  end)

  it("a task cancelled before it starts never runs", function()
    H.run(function()
      local ran = false
      local t = mp.spawn(function() ran = true end)
      t:cancel()
      assert.are.same({ false, "cancelled" }, { t:join() })
      assert.is_false(ran)
    end)
  end)

  it("closes to-be-closed variables of a cancelled task", function()
    H.run(function()
      local closed = false
      local t = mp.spawn(function()
        local guard <close> = setmetatable({}, { __close = function() closed = true end })
        mp.sleep(10)
      end)
      mp.sleep(0.005)
      t:cancel()
      t:join()
      assert.is_true(closed)
    end)
  end)

  it("closes to-be-closed variables of a failed task", function()
    H.run(function()
      local closed = false
      local t = mp.spawn(function()
        local guard <close> = setmetatable({}, { __close = function() closed = true end })
        mp.sleep(0.001)
        error("fail")
      end)
      t:join()
      assert.is_true(closed)
    end)
  end)

  it("cancellation can be caught, and the task goes on", function()
    H.run(function()
      local t = mp.spawn(function()
        local ok, err = pcall(mp.sleep, 10)
        mp.sleep(0.001) -- the cancel was consumed: this sleep works
        return ok, err
      end)
      mp.sleep(0.005)
      t:cancel()
      assert.are.same({ true, false, "cancelled" }, { t:join() })
    end)
  end)

  it("cancels a task waiting on a channel or a join", function()
    H.run(function()
      local ch = mp.channel()
      local a = mp.spawn(function() return ch:recv() end)
      local b = mp.spawn(function() return a:join() end)
      mp.sleep(0.001)
      b:cancel()
      assert.are.same({ false, "cancelled" }, { b:join() })
      a:cancel()
      assert.are.same({ false, "cancelled" }, { a:join() })
      -- the cancelled receiver left the channel: a sender now blocks, so
      -- a buffered channel would be needed; check with a fresh receiver
      local c = mp.spawn(function() return ch:recv() end)
      mp.sleep(0)
      assert.is_true(ch:send("late"))
      assert.are.same({ true, "late" }, { c:join() })
    end)
  end)

  it("a wake that arrived first beats the cancel, which hits the next suspension", function()
    H.run(function()
      local ch = mp.channel()
      local r = mp.spawn(function()
        local v = ch:recv()
        return v, pcall(mp.sleep, 1)
      end)
      mp.sleep(0) -- r waits in recv
      assert.is_true(ch:send("handed"))
      r:cancel()
      assert.are.same({ true, "handed", false, "cancelled" }, { r:join() })
    end)
  end)
end)

describe("mp.sleep and mp.now", function()
  it("sleeps at least the time asked", function()
    H.run(function()
      local t0 = mp.now()
      mp.sleep(0.03)
      local dt = mp.now() - t0
      assert.is_true(dt >= 0.03, "slept " .. dt)
      assert.is_true(dt < 1, "slept " .. dt)
    end)
  end)

  it("wakes sleepers in deadline order", function()
    local log = {}
    -- 100 ms apart: each sleep starts when its task first runs, and a
    -- loaded machine (ASan, load 6+) has stalled those starts by 20 ms
    H.run(function()
      for _, d in ipairs { 300, 100, 200, 0, 100 } do
        mp.spawn(function() mp.sleep(d / 1000) log[#log + 1] = d end)
      end
    end)
    assert.are.same({ 0, 100, 100, 200, 300 }, log)
  end)

  it("sleep(0) lets other ready tasks run", function()
    local log = {}
    H.run(function()
      mp.spawn(function() for i = 1, 3 do log[#log + 1] = "a" .. i mp.sleep(0) end end)
      mp.spawn(function() for i = 1, 3 do log[#log + 1] = "b" .. i mp.sleep(0) end end)
    end)
    assert.are.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, log)
  end)

  it("rejects bad durations", function()
    assert.has_error(function() mp.sleep(-1) end)
    assert.has_error(function() mp.sleep("x") end)
    assert.has_error(function() mp.sleep(0 / 0) end)
  end)

  it("a huge sleep does not wrap around to 'now'", function()
    H.run(function()
      local t = mp.spawn(function() mp.sleep(math.huge) end)
      local t2 = mp.spawn(function() mp.sleep(2 ^ 63) end)
      mp.sleep(0.01)
      assert.is_false(t:done())
      assert.is_false(t2:done())
      t:cancel() t2:cancel()
    end)
  end)

  it("runs 100,000 concurrent sleeping tasks", function()
    local n = 0
    H.run(function()
      for i = 1, 100000 do
        mp.spawn(function() mp.sleep((i % 100) / 1000) n = n + 1 end)
      end
    end)
    assert.are.equal(100000, n)
  end)
end)

describe("mp.timeout", function()
  it("returns fn's results when it finishes in time", function()
    H.run(function()
      assert.are.same({ true, 1, 2 }, { mp.timeout(1, function(a) mp.sleep(0.001) return a, 2 end, 1) })
    end)
  end)

  it("expires, cancelling the in-flight operation", function()
    H.run(function()
      local t0 = mp.now()
      assert.are.same({ false, "timeout" }, { mp.timeout(0.02, mp.sleep, 10) })
      assert.is_true(mp.now() - t0 < 1)
      mp.sleep(0.001) -- the task is usable afterwards
    end)
  end)

  it("propagates errors from fn", function()
    H.run(function()
      assert.has_error(function() mp.timeout(1, function() error("inner", 0) end) end, "inner")
    end)
  end)

  it("nests: the outer deadline wins through an inner one", function()
    H.run(function()
      local inner_result
      local ok, err = mp.timeout(0.02, function()
        inner_result = { mp.timeout(5, mp.sleep, 10) }
        return "unreachable"
      end)
      assert.are.same({ false, "timeout" }, { ok, err })
      assert.is_nil(inner_result)
      -- and an inner deadline that fires first is reported by the inner call
      assert.are.same({ true, false, "timeout" },
        { mp.timeout(5, function() return mp.timeout(0.01, mp.sleep, 10) end) })
    end)
  end)

  it("stays expired: code that swallows the timeout cannot sleep on", function()
    H.run(function()
      local attempts = 0
      local ok, err = mp.timeout(0.01, function()
        for _ = 1, 3 do
          attempts = attempts + 1
          pcall(mp.sleep, 10)
        end
        mp.sleep(10)
      end)
      assert.are.same({ false, "timeout" }, { ok, err })
      assert.are.equal(3, attempts)
    end)
  end)

  it("interrupts a task waiting on a channel", function()
    H.run(function()
      local ch = mp.channel()
      assert.are.same({ false, "timeout" }, { mp.timeout(0.01, ch.recv, ch) })
    end)
  end)

  it("survives a generator suspended inside its own mp.timeout", function()
    H.run(function()
      local g = coroutine.wrap(function()
        mp.timeout(5, function() coroutine.yield(1) end)
      end)
      assert.are.same({ true, 1 }, { mp.timeout(5, function() return g() end) })
      mp.sleep(0.001)
    end)
  end)

  it("works outside tasks", function()
    assert.are.same({ false, "timeout" }, { mp.timeout(0.01, mp.sleep, 10) })
    assert.are.same({ true, "ok" }, { mp.timeout(1, function() return "ok" end) })
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() mp.timeout(-1, print) end)
    assert.has_error(function() mp.timeout(1, "nope") end)
  end)
end)

describe("mp.run", function()
  it("returns fn's results after every task has ended", function()
    local other_done = false
    local a, b = mp.run(function()
      mp.spawn(function() mp.sleep(0.01) other_done = true end)
      return "a", "b"
    end)
    assert.are.same({ "a", "b" }, { a, b })
    assert.is_true(other_done)
  end)

  it("re-raises fn's error", function()
    assert.has_error(function() mp.run(function() error("bad", 0) end) end, "bad")
  end)

  it("cannot be called inside a task", function()
    H.run(function()
      assert.has_error(function() mp.run() end, "run: cannot be called inside a task")
    end)
  end)

  it("reports a deadlock instead of hanging", function()
    assert.has_error(function()
      mp.run(function() mp.channel():recv() end)
    end)
  end)
end)

describe("mp.scope", function()
  it("waits for every child", function()
    local done = {}
    H.run(function()
      local r = mp.scope(function(s)
        for i = 1, 3 do s:spawn(function() mp.sleep(i / 1000) done[i] = true end) end
        return "body"
      end)
      assert.are.equal("body", r)
      assert.are.same({ true, true, true }, done)
    end)
  end)

  it("a failing child cancels its siblings and the body, then re-raises", function()
    H.run(function()
      local sibling_finished, body_finished = false, false
      local t0 = mp.now()
      local ok, err = pcall(mp.scope, function(s)
        s:spawn(function() mp.sleep(0.01) error("child failed", 0) end)
        s:spawn(function() mp.sleep(10) sibling_finished = true end)
        mp.sleep(10)
        body_finished = true
      end)
      assert.is_false(ok)
      assert.are.equal("child failed", err)
      assert.is_false(sibling_finished)
      assert.is_false(body_finished)
      assert.is_true(mp.now() - t0 < 5)
    end)
  end)

  it("nested scopes with failing children", function()
    H.run(function()
      local inner_cleanup = false
      local ok, err = pcall(mp.scope, function(outer)
        outer:spawn(function()
          mp.scope(function(inner)
            inner:spawn(function()
              local g <close> = setmetatable({}, { __close = function() inner_cleanup = true end })
              mp.sleep(10)
            end)
            inner:spawn(function() mp.sleep(0.005) error("deep", 0) end)
          end)
        end)
        outer:spawn(function() mp.sleep(10) end)
      end)
      assert.are.same({ false, "deep" }, { ok, err })
      assert.is_true(inner_cleanup)
    end)
  end)

  it("an error in the body cancels the children", function()
    H.run(function()
      local child_done = false
      local ok, err = pcall(mp.scope, function(s)
        s:spawn(function() mp.sleep(10) child_done = true end)
        mp.sleep(0.001)
        error("body", 0)
      end)
      assert.are.same({ false, "body" }, { ok, err })
      assert.is_false(child_done)
    end)
  end)
end)

describe("mp.channel", function()
  it("rendezvous (capacity 0): send waits for a receiver", function()
    H.run(function()
      local ch = mp.channel()
      local log = {}
      local sender = mp.spawn(function()
        ch:send(1) log[#log + 1] = "sent1"
        ch:send(2) log[#log + 1] = "sent2"
      end)
      mp.sleep(0.005)
      assert.are.same({}, log)
      assert.are.equal(1, ch:recv())
      assert.are.equal(2, ch:recv())
      sender:join()
      assert.are.same({ "sent1", "sent2" }, log)
    end)
  end)

  it("buffers up to its capacity, in order", function()
    H.run(function()
      local ch = mp.channel(3)
      for i = 1, 3 do assert.is_true(ch:send(i)) end -- no waiting
      assert.are.equal(3, #ch)
      local blocked = mp.spawn(function() ch:send(4) return "in" end)
      mp.sleep(0.005)
      assert.is_false(blocked:done())
      for i = 1, 4 do assert.are.equal(i, ch:recv()) end
      assert.are.same({ true, "in" }, { blocked:join() })
    end)
  end)

  it("close: receivers drain then get nil, 'closed'; waiters are woken", function()
    H.run(function()
      local ch = mp.channel(2)
      ch:send("x")
      local waiting_sender
      local ch0 = mp.channel()
      local r = mp.spawn(function() return ch0:recv() end)
      waiting_sender = mp.spawn(function() return ch0:send("never") end)
      mp.sleep(0) -- r got "never"? no: rendezvous pairs them
      ch:close()
      assert.are.equal("x", ch:recv())
      assert.are.same({ nil, "closed" }, { ch:recv() })
      assert.are.same({ nil, "channel closed", "closed" }, { ch:send(1) })
      assert.are.same({ true, "never" }, { r:join() })
      assert.are.same({ true, true }, { waiting_sender:join() })
      local ch2 = mp.channel()
      local rs = {}
      for i = 1, 3 do rs[i] = mp.spawn(function() return ch2:recv() end) end
      mp.sleep(0.001)
      ch2:close()
      for i = 1, 3 do assert.are.same({ true, nil, "closed" }, { rs[i]:join() }) end
    end)
  end)

  it("moves many values between many tasks exactly once", function()
    H.run(function()
      local ch = mp.channel(4)
      local sum = 0
      mp.scope(function(s)
        for p = 1, 4 do
          s:spawn(function() for i = 1, 250 do ch:send(p * 1000 + i) end end)
        end
        for _ = 1, 1000 do sum = sum + ch:recv() end
      end)
      assert.are.equal(10 * 250 * 1000 + 4 * (250 * 251 / 2), sum)
    end)
  end)

  for _, cap in ipairs { 0, 3 } do
    it("a receiver handed a value keeps it when cancelled or timed out (capacity " .. cap .. ")", function()
      H.run(function()
        local ch = mp.channel(cap)
        local r = mp.spawn(function() return ch:recv() end)
        mp.sleep(0)
        assert.is_true(ch:send(1))
        r:cancel()
        assert.are.same({ true, 1 }, { r:join() })
        r = mp.spawn(function() return mp.timeout(0, ch.recv, ch) end)
        mp.sleep(0) -- r parks; the deadline fires before it runs again
        assert.is_true(ch:send(2))
        assert.are.same({ true, true, 2 }, { r:join() })
        assert.are.equal(0, #ch)
      end)
    end)
  end

  it("a sender whose value was taken returns true when cancelled", function()
    H.run(function()
      local ch = mp.channel()
      local s = mp.spawn(function() return ch:send("once") end)
      mp.sleep(0)
      assert.are.equal("once", ch:recv())
      s:cancel()
      assert.are.same({ true, true }, { s:join() })
      -- a retry would have delivered twice: nothing else is in flight
      assert.are.same({ false, "timeout" }, { mp.timeout(0.01, ch.recv, ch) })
    end)
  end)

  it("a waiter in an abandoned coroutine leaves the queue", function()
    H.run(function()
      local ch = mp.channel()
      local co = coroutine.create(function() return ch:recv() end)
      assert.is_false(pcall(table.sort, { 1, 2 }, function(a, b)
        coroutine.resume(co)
        return a < b
      end))
      local s = mp.spawn(function() return ch:send("v") end)
      assert.are.equal("v", ch:recv()) -- not handed to the abandoned one
      s:join()
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.matches("operation abandoned", err)
    end)
  end)

  it("rejects bad capacities", function()
    assert.has_error(function() mp.channel(-1) end)
    assert.has_error(function() mp.channel(1.5) end)
    assert.has_error(function() mp.channel("x") end)
  end)
end)

describe("mp.work", function()
  it("runs a function on the threadpool and copies results", function()
    H.run(function()
      local r1, r2 = mp.work(function(t, n)
        local sum = 0
        for _, v in ipairs(t.list) do sum = sum + v end
        return sum * n, { nested = { ok = true, s = t.name .. "!" }, [1] = 1.5 }
      end, { list = { 1, 2, 3 }, name = "x" }, 2)
      assert.are.equal(12, r1)
      assert.are.same({ nested = { ok = true, s = "x!" }, [1] = 1.5 }, r2)
    end)
  end)

  it("runs jobs in parallel with other tasks", function()
    H.run(function()
      local ticks = 0
      local ticker = mp.spawn(function() for _ = 1, 5 do mp.sleep(0.002) ticks = ticks + 1 end end)
      mp.work(function() local t = os.clock() while os.clock() - t < 0.05 do end end)
      ticker:join()
      assert.are.equal(5, ticks)
    end)
  end)

  it("keeps binary strings intact", function()
    H.run(function()
      local s = "\0\1\255" .. string.rep("x", 100000)
      assert.are.equal(s, mp.work(function(x) return x end, s))
    end)
  end)

  it("re-raises errors from the worker", function()
    H.run(function()
      assert.has_error(function() mp.work(function() error("in worker", 0) end) end, "in worker")
    end)
  end)

  it("rejects upvalues, functions and table keys with clear errors", function()
    H.run(function()
      local up = 1
      assert.has_error(function() mp.work(function() return up end) end)
      assert.has_error(function() mp.work(print) end)
      local function fails(pattern, ...)
        local ok, err = pcall(mp.work, ...)
        assert.is_false(ok)
        assert.matches(pattern, err)
      end
      fails("bad argument #2 .*cannot copy this type", function() end, print)
      fails("bad argument #3 .*table keys must be strings, numbers or booleans",
        function() end, 1, { { [{}] = 1 } })
      fails("work: result #2: cannot copy this type",
        function() return 1, print end)
    end)
  end)

  local function id(...) return ... end

  it("keeps shared tables shared, across arguments and results", function()
    H.run(function()
      local s, u = {}, {}
      local a, b = mp.work(id, { s, s, x = u }, u)
      assert.are.equal(a[1], a[2])
      assert.are.equal(a.x, b)
      assert.are_not.equal(a[1], a.x)
      local r1, r2 = mp.work(function() local t = { 1 } return t, { t } end)
      assert.are.equal(r1, r2[1])
    end)
  end)

  it("copies cycles", function()
    H.run(function()
      local c = { name = "c" }
      c.self, c.list = c, { c, { c } }
      local r = mp.work(id, c)
      assert.are_not.equal(c, r)
      assert.are.equal(r, r.self)
      assert.are.equal(r, r.list[1])
      assert.are.equal(r, r.list[2][1])
      assert.are.equal("c", r.name)
    end)
  end)

  it("copies a shared table once: 2^60 paths are 61 tables", function()
    H.run(function()
      local t = {}
      for _ = 1, 60 do t = { t, t } end
      local r, n = mp.work(function(x)
        local n = 0
        while x[1] do assert(x[1] == x[2]) x, n = x[1], n + 1 end
        return x, n
      end, t)
      assert.are.equal(60, n)
      assert.are.same({}, r)
    end)
  end)

  it("copies nesting of any depth without recursing", function()
    H.run(function()
      local t = {}
      local x = t
      for i = 1, 100000 do x[1] = { i } x = x[1] end
      local r = mp.work(id, t)
      for _ = 1, 100000 do r = r[1] end
      assert.are.same({ 100000 }, r)
    end)
  end)

  it("copies a long string held many times once, whole", function()
    H.run(function()
      local s = string.rep("\0x", 500000)
      local t = {}
      for i = 1, 10000 do t[i] = s end
      t[s] = s -- as a key too
      local n, r = mp.work(function(u) return #u, u end, t)
      assert.are.equal(10000, n)
      assert.are.equal(s, r[1])
      assert.are.equal(s, r[10000])
      assert.are.equal(s, r[s])
    end)
  end)

  it("works outside tasks", function()
    assert.are.equal(9, mp.work(function(x) return x * x end, 3))
  end)
end)

describe("the coroutine library inside tasks", function()
  it("IO inside a coroutine.wrap generator suspends the task, not the generator", function()
    H.run(function()
      local other = 0
      mp.spawn(function() for _ = 1, 3 do mp.sleep(0.001) other = other + 1 end end)
      local gen = coroutine.wrap(function()
        for i = 1, 3 do mp.sleep(0.003) coroutine.yield(i) end
      end)
      assert.are.same({ 1, 2, 3 }, { gen(), gen(), gen() })
      assert.is_true(other >= 1)
    end)
  end)

  it("resume/yield pairs see only their own values", function()
    H.run(function()
      local co = coroutine.create(function(a)
        mp.sleep(0.001)
        local b = coroutine.yield(a + 1)
        mp.sleep(0.001)
        return b * 2
      end)
      assert.are.same({ true, 2 }, { coroutine.resume(co, 1) })
      assert.are.same({ true, 20 }, { coroutine.resume(co, 10) })
      assert.are.equal("dead", coroutine.status(co))
    end)
  end)

  it("nested user coroutines forward IO up to the task", function()
    H.run(function()
      local inner = coroutine.wrap(function()
        local deeper = coroutine.wrap(function() mp.sleep(0.001) coroutine.yield("deep") end)
        coroutine.yield(deeper())
      end)
      assert.are.equal("deep", inner())
    end)
  end)

  it("errors in a wrapped generator propagate", function()
    H.run(function()
      local gen = coroutine.wrap(function() mp.sleep(0.001) error("gen", 0) end)
      assert.has_error(gen, "gen")
    end)
  end)

  it("IO where the task cannot yield raises a clear error", function()
    H.run(function()
      local ok, err = pcall(table.sort, { 3, 1, 2 }, function(a, b) mp.sleep(0.001) return a < b end)
      assert.is_false(ok)
      assert.matches("cannot suspend here", err)
      -- and via a wrapped generator inside the comparator
      local gen = coroutine.wrap(function() mp.sleep(0.001) coroutine.yield(1) end)
      ok, err = pcall(table.sort, { 3, 1 }, function(a, b) gen() return a < b end)
      assert.is_false(ok)
      mp.sleep(0.001) -- the task still works
    end)
  end)

  it("a wait that cannot suspend names its function and the caller's line", function()
    H.run(function()
      local l, s, held, go = mp.lock(), mp.semaphore(0), mp.lock(), mp.channel()
      local holder = mp.spawn(function() held:lock() go:recv() held:unlock() end)
      mp.sleep(0)
      local cases = {
        recv = function() mp.channel():recv() end,
        send = function() mp.channel(0):send(1) end,
        lock = function() held:lock() end,
        acquire = function() s:acquire() end,
        with = function() held:with(print) end,
      }
      for name, f in pairs(cases) do
        local ok, err = pcall(table.sort, { 2, 1 }, function() f() return true end)
        assert.is_false(ok)
        -- the line of the call in cases, not a line of moonport's own
        assert.matches("^[^:]*task_spec%.lua:%d+: " .. name .. ": cannot suspend here", err)
      end
      go:send(true)
      assert.is_true(holder:join())
      assert.is_true(l:with(function() return true end))
      -- an interruption is still raised as it is
      local t = mp.spawn(function() mp.channel():recv() end)
      mp.sleep(0)
      t:cancel()
      assert.same({ false, "cancelled" }, { t:join() })
    end)
  end)

  it("a coroutine abandoned while suspended raises when resumed later", function()
    H.run(function()
      local path = H.tmpname()
      local h = io.open(path, "wb") h:write("one\ntwo\n") h:close()
      mp.fs._nowait(false) -- a read from the page cache would not suspend
      local f = assert(mp.fs.open(path))
      mp.fs._nowait(true)
      local co = coroutine.create(function() return f:read("l") end)
      local ok, err = pcall(table.sort, { 3, 2, 1 }, function(a, b)
        coroutine.resume(co)
        return a < b
      end)
      assert.is_false(ok)
      assert.matches("C%-call boundary", err)
      mp.sleep(0.005)
      collectgarbage()
      local g = assert(mp.fs.open(path)) -- reuses the op records
      assert.are.equal("one\ntwo\n", g:read("a"))
      ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.matches("operation abandoned", err)
      assert.are.equal("one", f:read("l")) -- nothing was consumed
      f:close()
      g:close()
      os.remove(path)
    end)
  end)

  it("a coroutine suspended by one task and resumed by another raises there", function()
    H.run(function()
      local co = coroutine.create(function() mp.sleep(0.01) return "done" end)
      local a = mp.spawn(function() return coroutine.resume(co) end)
      mp.sleep(0)
      local b = mp.spawn(function() return coroutine.resume(co) end)
      local _, ok, err = b:join()
      assert.is_false(ok)
      assert.matches("operation abandoned", err)
      local _, aok = a:join() -- a goes on once its sleep ends
      assert.is_false(aok) -- its coroutine is dead now
    end)
  end)

  it("a bare coroutine.yield at a task's top level fails that task", function()
    H.run(function()
      local t = mp.spawn(function() coroutine.yield(1) end)
      local ok, err = t:join()
      assert.is_false(ok)
      assert.matches("outside a coroutine", err)
    end)
  end)

  it("IO in a generator works outside tasks too", function()
    local gen = coroutine.wrap(function() mp.sleep(0.001) coroutine.yield("x") end)
    assert.are.equal("x", gen())
  end)
end)

describe("misuse raises naming the function", function()
  it("spawn", function()
    assert.has_error(function() mp.spawn(42) end)
    local ok, err = pcall(mp.spawn, 42)
    assert.is_false(ok)
    assert.matches("spawn", err)
  end)

  it("task methods check self", function()
    H.run(function()
      local t = mp.spawn(function() end)
      assert.has_error(function() t.join({}) end)
      assert.has_error(function() t.cancel(nil) end)
      t:join()
    end)
  end)
end)
