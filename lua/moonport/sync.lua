-- moonport.sync: mp.lock, mp.semaphore, mp.event and mp.ticker. Locks
-- and semaphores are in C (bindings/lsem.c: a waiting task costs no more
-- than its parked frame); `with` and the deadlock report are here. Events
-- and tickers are built on the park/wake primitive (bindings/lchan.c). The
-- chunk returns a constructor that init.lua calls with the core table and
-- the module.
return function(core, M)
  local park, wake, waiting, self_task = core.park, core.wake, core.waiting,
                                         core.self
  local running = coroutine.running
  local fmt = string.format
  local sem_new, sem_take, sem_drop, sem_report = core.sem_new,
    core.sem_take, core.sem_drop, core.sem_report

  local function remove(q, rec)
    for i = 1, #q do
      if q[i] == rec then table.remove(q, i) return end
    end
  end

  -- Every lock and semaphore, for the deadlock report.
  local live = setmetatable({}, { __mode = "k" })

  local function argerr(n, fname, msg)
    error(fmt("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
  end

  --------------------------------------------------------------------
  -- The semaphore (acquire, release, available: lsem.c) and the lock, a
  -- semaphore of one that knows its owner; only the owner unlocks, and it
  -- cannot lock again (not reentrant): lock, unlock, locked.
  local Semaphore, Lock = core.Semaphore, core.Lock

  -- The guard of `with`, made before the acquire (so that making it
  -- cannot fail with the permit held): releases as the task that
  -- acquired, however the block is left (return, error, cancel, its
  -- coroutine closed).
  local Guard = {}
  Guard.__close = function(g)
    if g.held then sem_drop(g.obj, g.task) end
  end

  local function with(obj, mt, what, fn, ...)
    if getmetatable(obj) ~= mt then
      argerr(1, "with", what .. " expected, got " .. type(obj))
    end
    if type(fn) ~= "function" then
      argerr(1, "with", "function expected, got " .. type(fn))
    end
    local g <close> = setmetatable({ obj = obj, task = self_task(),
                                     held = false }, Guard)
    sem_take(obj)
    g.held = true
    return fn(...)
  end

  Semaphore.__index.with = function(self, fn, ...)
    return with(self, Semaphore, "semaphore", fn, ...)
  end
  Lock.__index.with = function(self, fn, ...)
    return with(self, Lock, "lock", fn, ...)
  end

  function M.semaphore(n)
    if math.type(n) ~= "integer" or n < 0 then
      argerr(1, "semaphore", "non-negative integer expected, got "
             .. (math.type(n) == "integer" and "negative"
                 or math.type(n) or type(n)))
    end
    local s = sem_new(n, false)
    live[s] = true
    return s
  end

  function M.lock()
    local l = sem_new(1, true)
    live[l] = true
    return l
  end

  -- The deadlock report (lsched.c asks before it cancels): each lock or
  -- semaphore that a task holds or waits for.
  core.on_deadlock(function()
    local lines = {}
    for obj in pairs(live) do
      local holders, waiters = sem_report(obj)
      local held = {}
      for task, n in pairs(holders) do
        if n > 0 then
          held[#held + 1] = tostring(task) .. (n > 1 and " (x" .. n .. ")"
                                               or "")
        end
      end
      for i, task in ipairs(waiters) do waiters[i] = tostring(task) end
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
