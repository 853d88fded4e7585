-- moonport: the module table. Primitives come from the C core (passed in
-- as `...`); this file adds what is simplest in Lua: mp.timeout, mp.scope,
-- channels, and the coroutine wrappers that let IO run inside a script's
-- own coroutines.
local core = ...

local M = {}
for _, name in ipairs { "spawn", "current", "sleep", "now", "run", "backend",
                        "work" } do
  M[name] = core[name]
end

-- mp.net: sockets and names (lua/moonport/net.lua over bindings/l*.c).
M.net = require("moonport.net")(core, M)

local pack, unpack = table.pack, table.unpack
local TIMEOUT = core.TIMEOUT

--------------------------------------------------------------------------
-- mp.timeout(seconds, fn, ...): true, results... or false, "timeout".
--
-- The deadline belongs to the calling task. When it fires, the task's
-- in-flight operation is cancelled and that suspension (and every later one
-- until this call returns) raises the TIMEOUT error, which only the
-- mp.timeout that owns the expired deadline turns into a result.
function M.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("bad argument #1 to 'timeout' (non-negative number expected, got "
          .. (type(seconds) == "number" and "NaN or negative" or type(seconds))
          .. ")", 2)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to 'timeout' (function expected, got "
          .. type(fn) .. ")", 2)
  end
  local deadline = core.deadline_push(seconds)
  local r = pack(pcall(fn, ...))
  local fired = core.deadline_pop(deadline)
  if r[1] then return true, unpack(r, 2, r.n) end
  if fired and r[2] == TIMEOUT then return false, "timeout" end
  error(r[2], 0)
end

--------------------------------------------------------------------------
-- mp.scope(fn): structured concurrency. fn(s) may call s:spawn(f, ...);
-- the scope returns only when every child has ended. The first failure
-- (in a child or in fn) cancels the other children and the body, and is
-- re-raised once everything has stopped.
local Scope = {}
Scope.__index = Scope

function Scope:spawn(f, ...)
  if type(f) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected, got "
          .. type(f) .. ")", 2)
  end
  local scope = self
  local t
  t = core.spawn(function(...)
    local r = pack(pcall(f, ...))
    if not r[1] and not scope.cancelling then scope:_fail(r[2], t) end
    return unpack(r, 2, r.n)
  end, ...)
  self.children[#self.children + 1] = t
  return t
end

function Scope:_fail(err, from)
  if self.failed then return end
  self.failed, self.err, self.cancelling = true, err, true
  for _, c in ipairs(self.children) do
    if c ~= from then c:cancel() end
  end
  if self.in_body and self.owner then self.owner:cancel() end
end

function M.scope(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'scope' (function expected, got "
          .. type(fn) .. ")", 2)
  end
  local s = setmetatable({ children = {}, owner = core.current(),
                           in_body = true }, Scope)
  local r = pack(pcall(fn, s))
  s.in_body = false
  if not r[1] and not s.failed then s:_fail(r[2]) end
  -- Wait for every child, even if this task is cancelled meanwhile.
  local i = 1
  while s.children[i] do
    local c = s.children[i]
    if not c:done() then
      local ok, err = pcall(c.join, c)
      if not ok then s:_fail(err) end
    else
      i = i + 1
    end
  end
  if s.failed then error(s.err, 0) end
  return unpack(r, 2, r.n)
end

--------------------------------------------------------------------------
-- mp.channel([capacity]): ch:send(v), ch:recv(), ch:close().
--
-- Waiters are records { task = t, value = v, done = bool } in FIFO queues;
-- a hand-over fills the record and wakes its task. A waiter woken for
-- another reason (cancel, timeout) raises out of core.park, and the
-- record is removed on the way out so no value is lost or duplicated.
local Channel = {}
Channel.__index = Channel
Channel.__name = "moonport.channel"

local function remove(q, rec)
  for i = 1, #q do
    if q[i] == rec then table.remove(q, i) return end
  end
end

local function wait(q, rec)
  q[#q + 1] = rec
  local ok, err = pcall(function()
    repeat core.park() until rec.done or rec.closed
  end)
  if not ok then
    remove(q, rec)
    error(err, 0)
  end
end

function M.channel(capacity)
  capacity = capacity or 0
  if math.type(capacity) ~= "integer" or capacity < 0 then
    error("bad argument #1 to 'channel' (non-negative integer expected)", 2)
  end
  return setmetatable({ cap = capacity, buf = {}, head = 1, tail = 0,
                        senders = {}, receivers = {}, closed = false },
                      Channel)
end

local function check(ch, name)
  if getmetatable(ch) ~= Channel then
    error("bad argument #1 to '" .. name .. "' (channel expected)", 3)
  end
end

function Channel:send(v)
  check(self, "send")
  if self.closed then return nil, "channel closed", "closed" end
  local r = table.remove(self.receivers, 1)
  if r then
    r.value, r.done = v, true
    core.wake(r.task)
    return true
  end
  if self.tail - self.head + 1 < self.cap then
    self.tail = self.tail + 1
    self.buf[self.tail] = v
    return true
  end
  local rec = { task = core.self(), value = v }
  wait(self.senders, rec)
  if rec.done then return true end
  return nil, "channel closed", "closed"
end

function Channel:recv()
  check(self, "recv")
  if self.tail >= self.head then
    local v = self.buf[self.head]
    self.buf[self.head] = nil
    self.head = self.head + 1
    local s = table.remove(self.senders, 1)
    if s then -- room again: the oldest waiting sender gets in
      self.tail = self.tail + 1
      self.buf[self.tail] = s.value
      s.done = true
      core.wake(s.task)
    end
    return v
  end
  local s = table.remove(self.senders, 1)
  if s then -- rendezvous
    s.done = true
    core.wake(s.task)
    return s.value
  end
  if self.closed then return nil, "closed" end
  local rec = { task = core.self() }
  wait(self.receivers, rec)
  if rec.done then return rec.value end
  return nil, "closed"
end

function Channel:close()
  check(self, "close")
  if self.closed then return end
  self.closed = true
  for _, q in ipairs { self.receivers, self.senders } do
    for _, rec in ipairs(q) do
      rec.closed = true
      core.wake(rec.task)
    end
  end
  self.receivers, self.senders = {}, {}
end

function Channel:__len()
  return self.tail - self.head + 1
end

--------------------------------------------------------------------------
-- The coroutine library inside tasks. A moonport call made inside a
-- script's own coroutine yields a private sentinel; these wrappers pass it
-- up to the task (suspending it) and resume the inner coroutine with the
-- completion, so the script's own yield/resume pairs see only their own
-- values, as OpenResty does for cosockets.
local SENTINEL = core.SENTINEL
local co_resume, co_yield, co_create = coroutine.resume, coroutine.yield,
                                       coroutine.create
local co_isyieldable, co_close, co_status = coroutine.isyieldable,
                                            coroutine.close, coroutine.status

local function pass(co, ok, ...)
  if ok and (...) == SENTINEL and co_status(co) == "suspended" then
    if not co_isyieldable() then
      core.abandon()
      error("attempt to suspend a task across a C-call boundary", 2)
    end
    co_yield(SENTINEL)
    return pass(co, co_resume(co))
  end
  return ok, ...
end

if not rawget(coroutine, "moonport") then
  coroutine.resume = function(co, ...)
    return pass(co, co_resume(co, ...))
  end

  coroutine.wrap = function(f)
    local co = co_create(f)
    local function unwrap(ok, ...)
      if ok then return ... end
      local err = ...
      if co_status(co) == "dead" then co_close(co) end
      error(err, 0)
    end
    return function(...)
      return unwrap(pass(co, co_resume(co, ...)))
    end
  end
  rawset(coroutine, "moonport", true)
end

--------------------------------------------------------------------------
-- mp.fs: files (bindings/lfile.c) plus two conveniences written in Lua.
local fs = core.fs
M.fs = fs

-- Whole contents, or nil, msg, code. The file is closed even if the task
-- is cancelled mid-read (to-be-closed variable).
function fs.readfile(path)
  local f <close>, err, code = fs.open(path, "rb")
  if not f then return nil, err, code end
  local data, rerr, rcode = f:read("a")
  if data == nil then return nil, rerr, rcode end
  return data
end

-- Replaces path atomically: the data goes to a temporary file in the same
-- directory, renamed over path once written. A reader sees the old or the
-- new contents, never a mix. (No fsync: durability across a crash needs
-- f:sync(); the new file gets default permissions.)
local tmpseq = 0
local function unmask(msg, tmp, path)
  local i, j = msg:find(tmp, 1, true)
  if not i then return msg end
  return msg:sub(1, i - 1) .. path .. msg:sub(j + 1)
end

local TmpGuard = {
  __close = function(g) if not g.done then os.remove(g.path) end end
}

function fs.writefile(path, data)
  if type(path) ~= "string" then
    error("bad argument #1 to 'writefile' (string expected, got "
          .. type(path) .. ")", 2)
  end
  if type(data) ~= "string" and type(data) ~= "number" then
    error("bad argument #2 to 'writefile' (string expected, got "
          .. type(data) .. ")", 2)
  end
  tmpseq = tmpseq + 1
  local tmp = string.format("%s.mp-tmp-%x-%d", path,
                            math.random(0, 0x7fffffff), tmpseq)
  -- Whatever raises from here on (out of memory, a cancel), the guard
  -- removes the temporary file (at once: no op can be started then).
  local guard <close> = setmetatable({ path = tmp }, TmpGuard)
  local f, err, code = fs.open(tmp, "wbx")
  if not f then
    guard.done = true -- not ours
    -- report the caller's path, not the temporary name
    return nil, unmask(err, tmp, path), code
  end
  local ok, werr, wcode = f:write(data)
  local cok, cerr, ccode = f:close()
  if ok and not cok then ok, werr, wcode = nil, cerr, ccode end
  if ok then ok, werr, wcode = fs.rename(tmp, path) end
  if not ok then
    guard.done = fs.remove(tmp)
    return nil, unmask(werr, tmp, path), wcode
  end
  guard.done = true
  return true
end

return M
