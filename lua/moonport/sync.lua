-- moonport.sync: mp.lock, mp.semaphore, mp.event and mp.ticker, built on
-- the park/wake primitive channels use (bindings/lchan.c). The chunk
-- returns a constructor that init.lua calls with the core table and the
-- module.
--
-- Waiters are records { task, co, done } in FIFO queues, as a channel's
-- (a semaphore's: { task, st }, see acquire).
-- A release hands the permit straight to the first waiter that will
-- return (no barging: FIFO), and a hand-over wins over a cancel or a
-- timeout that arrives before the waiter runs (core.park), so the waiter
-- returns holding it; a waiter that leaves any other way (cancel, timeout,
-- its coroutine abandoned or closed, "operation abandoned") takes its
-- record out of the queue, and passes on a permit handed to it, so it
-- never ends up holding anything.
return function(core, M)
  local park, wake, waiting, self_task = core.park, core.wake, core.waiting,
                                         core.self
  local cwait = core.wait
  local running = coroutine.running
  local fmt = string.format

  local function remove(q, rec)
    for i = 1, #q do
      if q[i] == rec then table.remove(q, i) return end
    end
  end

  -- The first waiter whose task will return what it is handed (see
  -- init.lua's take: a park swallowed by a foreign resume is skipped).
  local function take(q)
    while q[1] do
      local rec = table.remove(q, 1)
      if waiting(rec.task, rec.co) then return rec end
      rec.st = "skipped"
    end
  end

  -- Every lock and semaphore, for the deadlock report.
  local live = setmetatable({}, { __mode = "k" })

  local function argerr(n, fname, msg)
    error(fmt("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
  end

  --------------------------------------------------------------------
  -- The semaphore: count permits, holders[task] = permits it holds (0: a
  -- waiter's reserved entry, so that granting it allocates nothing: out
  -- of memory in a release must not lose the permit or strand the
  -- waiter it was handed to).
  local Semaphore = {}
  Semaphore.__index = Semaphore
  Semaphore.__name = "moonport.semaphore"

  local function grant(s, task)
    s.holders[task] = (s.holders[task] or 0) + 1
  end

  -- A permit comes back: to the first waiter, or to the count.
  local function give_back(s)
    local rec = take(s.waiters)
    if rec then
      rec.st = "done"
      grant(s, rec.task)
      wake(rec.task)
    else
      s.count = s.count + 1
    end
  end

  local function drop_holder(s, task)
    local n = s.holders[task]
    if not n or n == 0 then return false end
    s.holders[task] = n > 1 and n - 1 or nil
    return true
  end

  local function a_holder(s)
    for task, n in pairs(s.holders) do
      if n > 0 then return task end
    end
  end

  -- What a waiter lets go of when it leaves without the permit (an
  -- error, its coroutine abandoned or closed): its record, and a permit
  -- handed to it.
  local function leave(s, rec)
    remove(s.waiters, rec)
    if rec.st == "done" then
      rec.st = false
      drop_holder(s, rec.task)
      give_back(s)
    end
    if s.holders[rec.task] == 0 then s.holders[rec.task] = nil end
  end

  -- Waits for a permit; returns true holding one, or raises holding none.
  -- Called in tail position (a parked waiter holds fewer frames).
  -- fname and level: what its errors name and blame (the caller of the
  -- method, tail calls skipped).
  local function acquire(s, fname, level)
    local me, co = self_task() -- co: only if not the task's own
    if s.count > 0 and not s.waiters[1] then
      grant(s, me) -- first: out of memory there changes nothing
      s.count = s.count - 1
      return true
    end
    -- Every field and entry the hand-over sets exists before the waiter
    -- is queued: setting them allocates nothing. st: false while queued,
    -- "done" once handed the permit, "skipped" when take passed it over.
    local rec = co and { task = me, co = co, st = false }
                    or { task = me, st = false }
    s.holders[me] = s.holders[me] or 0
    local q = s.waiters
    q[#q + 1] = rec
    repeat
      -- leave(s, rec) runs if the coroutine is abandoned or closed
      local err, raw = cwait(leave, s, rec, fname)
      if err ~= nil then
        leave(s, rec)
        error(err, not raw and (level or 2) or 0)
      end
      if rec.st == "skipped" then -- back in line
        rec.st = false
        s.waiters[#s.waiters + 1] = rec
      end
    until rec.st == "done"
    return true
  end

  local function check_sem(s, fname)
    if getmetatable(s) ~= Semaphore then
      argerr(1, fname, "semaphore expected, got " .. type(s))
    end
  end

  function Semaphore:acquire()
    if getmetatable(self) ~= Semaphore then check_sem(self, "acquire") end
    return acquire(self, "acquire")
  end

  -- Any task may release (the permit is taken from the caller's count,
  -- else from another holder's); more releases than acquires raise.
  function Semaphore:release()
    check_sem(self, "release")
    if not drop_holder(self, self_task()) then
      local other = a_holder(self)
      if not other then
        error("release: semaphore released more times than acquired", 2)
      end
      drop_holder(self, other)
    end
    give_back(self)
  end

  -- The guard of `with`, made before the acquire (so that making it
  -- cannot fail with the permit held): releases as the task that
  -- acquired, however the block is left (return, error, cancel, its
  -- coroutine closed).
  local Guard = {}
  Guard.__close = function(g)
    local s = g.obj
    if g.held and drop_holder(s, g.task) then give_back(s) end
  end

  local function with(obj, take_it, fname, fn, ...)
    if type(fn) ~= "function" then
      argerr(1, fname, "function expected, got " .. type(fn))
    end
    local g <close> = setmetatable({ obj = obj, task = self_task(),
                                     held = false }, Guard)
    take_it(obj)
    g.held = true
    return fn(...)
  end

  function Semaphore:with(fn, ...)
    check_sem(self, "with")
    return with(self, acquire, "with", fn, ...)
  end

  function Semaphore:available() return self.count end

  function M.semaphore(n)
    if math.type(n) ~= "integer" or n < 0 then
      argerr(1, "semaphore", "non-negative integer expected, got "
             .. (math.type(n) == "integer" and "negative"
                 or math.type(n) or type(n)))
    end
    local s = setmetatable({ count = n, max = n, waiters = {}, holders = {}},
                        Semaphore)
    live[s] = true
    return s
  end

  --------------------------------------------------------------------
  -- The lock: a semaphore of one that knows its owner; only the owner
  -- unlocks, and it cannot lock again (not reentrant).
  local Lock = {}
  Lock.__index = Lock
  Lock.__name = "moonport.lock"

  local function check_lock(l, fname)
    if getmetatable(l) ~= Lock then
      argerr(1, fname, "lock expected, got " .. type(l))
    end
  end

  local function lock(l)
    if (l.holders[self_task()] or 0) > 0 then
      error("lock: the lock is already held by this task (locks are not "
            .. "reentrant)", 3)
    end
    return acquire(l, "with", 3)
  end

  function Lock:lock()
    -- (calls here stay one level deep: see Channel:send)
    if getmetatable(self) ~= Lock then check_lock(self, "lock") end
    if (self.holders[self_task()] or 0) > 0 then
      error("lock: the lock is already held by this task (locks are not "
            .. "reentrant)", 2)
    end
    return acquire(self, "lock") -- a tail call: one frame less parked
  end

  function Lock:unlock()
    check_lock(self, "unlock")
    if not drop_holder(self, self_task()) then
      error(a_holder(self) and "unlock: the lock is held by another task"
            or "unlock: the lock is not locked", 2)
    end
    give_back(self)
  end

  function Lock:locked() return self.count == 0 end

  function Lock:with(fn, ...)
    check_lock(self, "with")
    return with(self, lock, "with", fn, ...)
  end

  function M.lock()
    local l = setmetatable({ count = 1, max = 1, waiters = {}, holders = {}},
                        Lock)
    live[l] = true
    return l
  end

  -- The deadlock report (lsched.c asks before it cancels): each lock or
  -- semaphore that a task holds or waits for.
  core.on_deadlock(function()
    local lines = {}
    for obj in pairs(live) do
      local held = {}
      for task, n in pairs(obj.holders) do
        if n > 0 then
          held[#held + 1] = tostring(task) .. (n > 1 and " (x" .. n .. ")"
                                               or "")
        end
      end
      local waiters = {}
      for _, rec in ipairs(obj.waiters) do
        waiters[#waiters + 1] = tostring(rec.task)
      end
      if #waiters > 0 then
        lines[#lines + 1] = fmt("  %s: held by %s; waited for by %s",
          tostring(obj), #held > 0 and table.concat(held, ", ") or "nobody",
          table.concat(waiters, ", "))
      end
    end
    if #lines == 0 then return nil end
    table.sort(lines)
    return table.concat(lines, "\n")
  end)

  --------------------------------------------------------------------
  -- The event: set wakes every waiter and stays set until clear.
  local Event = {}
  Event.__index = Event
  Event.__name = "moonport.event"

  local function check_event(e, fname)
    if getmetatable(e) ~= Event then
      argerr(1, fname, "event expected, got " .. type(e))
    end
  end

  function Event:set()
    check_event(self, "set")
    self.flag = true
    local q = self.waiters
    self.waiters = {}
    for _, rec in ipairs(q) do
      rec.done = true
      wake(rec.task)
    end
  end

  function Event:clear()
    check_event(self, "clear")
    self.flag = false
  end

  function Event:isset()
    check_event(self, "isset")
    return self.flag
  end

  function Event:wait()
    check_event(self, "wait")
    if self.flag then return true end
    local rec = { task = self_task(), co = running(), done = false,
                  skipped = false }
    self.waiters[#self.waiters + 1] = rec
    local function leave() remove(self.waiters, rec) end
    local ok, err = pcall(function()
      repeat park(leave) until rec.done or self.flag
    end)
    leave()
    if not ok then error(err, 0) end
    return true
  end

  function M.event()
    return setmetatable({ flag = false, waiters = {} }, Event)
  end

  --------------------------------------------------------------------
  -- The ticker: tick k is due at start + k * period. next() waits for the
  -- first tick after the last one it returned and returns how many fell
  -- due since (1 when on time; a late call does not wait and returns them
  -- all: ticks never queue up, and each due time is computed from start,
  -- so lateness never accumulates). The wait is a park under an
  -- mp.timeout, so close can wake it.
  local Ticker = {}
  Ticker.__index = Ticker
  Ticker.__name = "moonport.ticker"
  local now, floor, timeout = M.now, math.floor, M.timeout

  local function check_ticker(t, fname)
    if getmetatable(t) ~= Ticker then
      argerr(1, fname, "ticker expected, got " .. type(t))
    end
  end

  function Ticker:next()
    check_ticker(self, "next")
    while not self.closed do
      local k = floor((now() - self.start) / self.period)
      if k > self.last then
        local n = k - self.last
        self.last = k
        return n
      end
      local rec = { task = self_task(), co = running() }
      self.waiters[rec] = true
      local due = self.start + (self.last + 1) * self.period
      local ok, err = pcall(timeout, math.max(0, due - now()), park,
                            function() self.waiters[rec] = nil end)
      self.waiters[rec] = nil
      if not ok then error(err, 0) end
    end
    return nil, "closed"
  end

  function Ticker:close()
    check_ticker(self, "close")
    if self.closed then return end
    self.closed = true
    for rec in pairs(self.waiters) do
      if waiting(rec.task, rec.co) then wake(rec.task) end
    end
    self.waiters = {}
  end

  -- `for n in ticker do`: the generic for calls the ticker.
  function Ticker:__call()
    return self:next()
  end

  function M.ticker(period)
    if type(period) ~= "number" or not (period > 0) or period == math.huge
    then
      argerr(1, "ticker", "positive number expected, got "
             .. (type(period) == "number" and tostring(period) or type(period)))
    end
    return setmetatable({ period = period, start = now(), last = 0,
                          waiters = {}, closed = false }, Ticker)
  end
end
