-- moonport: the module table. Primitives come from the C core (passed in
-- as `...`); this file adds what is simplest in Lua: mp.timeout, mp.scope,
-- channels, and the coroutine wrappers that let IO run inside a script's
-- own coroutines.
local core = ...

local M = {}
for _, name in ipairs { "spawn", "current", "sleep", "now", "backend",
                        "work", "worker", "shared_channel" } do
  M[name] = core[name]
end

-- mp.run(fn, ...) inside a task just calls fn there (the loop is already
-- running), so one script works both under lua5.4 and under moonport.
local core_run = core.run
function M.run(...)
  if core.current() and select("#", ...) > 0 then
    local fn = ...
    if type(fn) ~= "function" then
      error("bad argument #1 to 'run' (function expected, got "
            .. type(fn) .. ")", 2)
    end
    return fn(select(2, ...))
  end
  return core_run(...)
end

-- Argument errors name the function ("bad argument #1 to
-- 'moonport.fs.open'") even when the call site gives no name, as for io.
if package and package.loaded then package.loaded["moonport.fs"] = core.fs end

-- mp.net: sockets and names (lua/moonport/net.lua over bindings/l*.c).
M.net = require("moonport.net")(core, M)

-- mp.proc: child processes and signals (lua/moonport/proc.lua).
M.proc = require("moonport.proc")(core, M)
-- The standard streams, read and written through the loop (file objects
-- over second handles: closing one leaves the process's own open).
M.stdin, M.stdout, M.stderr = core.stdio(0), core.stdio(1), core.stdio(2)

local pack, unpack = table.pack, table.unpack
local TIMEOUT = core.TIMEOUT

--------------------------------------------------------------------------
-- mp.timeout(seconds, fn, ...): true, results... or false, "timeout".
--
-- The deadline belongs to the calling task and to this call's frame: once
-- it fires, each suspension of the task made with this call on its resume
-- chain (its in-flight operation cancelled) raises the TIMEOUT error,
-- which only the mp.timeout that owns the expired deadline turns into a
-- result. A suspension elsewhere (this call's coroutine suspended, closed
-- or dropped) is not interrupted; closing or collecting that coroutine
-- drops the deadline (its guard is to-be-closed and collectable).
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
  local deadline <close> = core.deadline_push(seconds)
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
-- mp.channel([capacity]): ch:send(v), ch:recv(), ch:close(), #ch: in C
-- (bindings/lchan.c), where a waiting task costs no more than its parked
-- frame. mp.select's arms wait there as records (core.chan_enqueue).
local Channel = core.Channel
M.channel = core.channel
local try_recv, pass_on = core.chan_try_recv, core.chan_pass_on
local enqueue, dequeue, closed = core.chan_enqueue, core.chan_dequeue,
                                 core.chan_closed
local running = coroutine.running

--------------------------------------------------------------------------
-- mp.select(a, b, ...): i and what a:recv() (a channel) or a:join() (a
-- task) returns, for the first argument that is ready.
--
-- Ready now: the first in argument order wins and only it is consumed.
-- Else the task waits on all at once: one record per channel, in a group
-- that the first hand-over (or close) claims (lchan.c skips the others, so
-- exactly one value is handed over), and a join watch per task. A claim
-- wins over a cancel or timeout (core.park), so a value handed over is
-- always returned; a select that leaves without a claim takes every
-- record and watch back. A task ending meanwhile is not consumed (join
-- can be repeated), so a claimed channel comes first.
local select_n = select
local TASK = "moonport.task" -- a task's (protected) metatable

local function select_arms(...)
  local n = select_n("#", ...)
  if n == 0 then error("bad argument #1 to 'select' (channel or task "
                       .. "expected, got no value)", 3) end
  local arms = pack(...)
  local me = core.self()
  for i = 1, n do
    local a = arms[i]
    if getmetatable(a) ~= Channel and getmetatable(a) ~= TASK then
      error(("bad argument #%d to 'select' (channel or task expected, got "
             .. "%s)"):format(i, type(a)), 3)
    end
    if a == me then
      error("bad argument #" .. i .. " to 'select' (a task cannot select "
            .. "itself)", 3)
    end
  end
  return arms, n
end

local function ready_arm(arms, n)
  for i = 1, n do
    local a = arms[i]
    if getmetatable(a) == Channel then
      local r = pack(try_recv(a))
      if r[1] then return i, pack(unpack(r, 2, r.n)) end
    elseif a:done() then
      return i, pack(a:join())
    end
  end
end

-- A task that failed while watched (its failure not reported, as for a
-- joiner's) and is not the arm returned: reported now.
local function unjoined(arms, n, chosen)
  for j = 1, n do
    if j ~= chosen and getmetatable(arms[j]) ~= Channel then
      core.unjoined(arms[j])
    end
  end
end

function M.select(...)
  local arms, n = select_arms(...)
  local i, r = ready_arm(arms, n)
  if i then return i, unpack(r, 1, r.n) end
  local group, recs = {}, {}
  local me, co = core.self(), running()
  local function leave() -- every record and watch back
    for _, rec in ipairs(recs) do dequeue(rec.ch, rec) end
    for j = 1, n do
      local a = arms[j]
      if getmetatable(a) ~= Channel then core.join_unwatch(a, me) end
    end
  end
  -- Abandoned or closed with a value handed over: it goes on as a
  -- receiver's would (pass_on).
  local function abandon()
    leave()
    unjoined(arms, n)
    local rec = group.done
    if rec and not rec.closed then pass_on(rec.ch, rec.value) end
  end
  local ok, err = pcall(function() -- out of memory here: leave() too
    for j = 1, n do
      local a = arms[j]
      if getmetatable(a) == Channel then
        local rec = { task = me, co = co, group = group, ch = a, arm = j,
                      done = false, closed = false, skipped = false,
                      value = false, ticket = 0 }
        recs[#recs + 1] = rec
        enqueue(a, rec)
      else
        core.join_watch(a)
      end
    end
    while true do
      core.park(abandon)
      if group.done then return end
      for _, rec in ipairs(recs) do
        if rec.skipped then -- back in line (see take), unless closed
          rec.skipped = false
          if closed(rec.ch) then
            group.done, rec.closed = rec, true
            return
          end
          enqueue(rec.ch, rec)
        end
      end
      for j = 1, n do
        if getmetatable(arms[j]) ~= Channel and arms[j]:done() then return end
      end
    end
  end)
  leave()
  local rec, chosen, r = group.done, nil, nil
  if rec then
    chosen = rec.arm
  elseif ok then -- a task ended (the first in argument order)
    for j = 1, n do
      local a = arms[j]
      if getmetatable(a) ~= Channel and a:done() then
        chosen, r = j, pack(a:join())
        break
      end
    end
  end
  unjoined(arms, n, chosen)
  if not chosen then error(err, 0) end
  if r then return chosen, unpack(r, 1, r.n) end
  if rec.closed then return chosen, nil, "closed" end
  return chosen, rec.value
end

-- mp.lock, mp.semaphore, mp.event, mp.ticker (lua/moonport/sync.lua).
require("moonport.sync")(core, M)

-- mp.http: HTTP/1.1 client and server (lua/moonport/http.lua), when the
-- build has its parser (bindings/lhttp.c).
if core.http_parser then M.http = require("moonport.http")(core, M) end

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
local co_running = coroutine.running

-- While a suspension is passed up: via[c] = the coroutine whose
-- suspension c passes up; parked[co] counts the passes of suspensions
-- that came from co (an overcount only costs coroutine.close a search). A
-- closed coroutine releases the suspension at the end of its chain.
local via = setmetatable({}, { __mode = "k" })
local parked = setmetatable({}, { __mode = "k" })

local function pass(co, ok, ...)
  if ok and (...) == SENTINEL and co_status(co) == "suspended" then
    if not co_isyieldable() then
      local bottom = co -- where the suspension came from
      while via[bottom] do bottom = via[bottom] end
      core.abandon(bottom)
      error("attempt to suspend a task across a C-call boundary", 2)
    end
    local me = co_running()
    via[me], parked[co] = co, (parked[co] or 0) + 1
    co_yield(SENTINEL)
    local n = parked[co] - 1
    via[me], parked[co] = nil, n > 0 and n or nil
    return pass(co, co_resume(co))
  end
  return ok, ...
end

local unresumable = core.co_unresumable

if not rawget(coroutine, "moonport") then
  coroutine.resume = function(co, ...)
    if unresumable(co) then -- a task's, not started or ended (lcoro.c)
      return false, "cannot resume non-suspended coroutine"
    end
    return pass(co, co_resume(co, ...))
  end

  -- As lua's auxwrap: a failed coroutine is closed (its __close handlers
  -- run, and an error they raise replaces the original one).
  coroutine.wrap = function(f)
    local co = co_create(f)
    local function unwrap(ok, ...)
      if ok then return ... end
      local err = ...
      if co_status(co) == "dead" then
        local cok, cerr = co_close(co)
        if not cok then err = cerr end
      end
      error(err, 2)
    end
    return function(...)
      return unwrap(pass(co, co_resume(co, ...)))
    end
  end

  -- A coroutine closed while suspended in moonport first gives back what
  -- it waited on (its task, if another, finds it dead): bindings/lcoro.c.
  coroutine.close = core.co_close(via, parked)

  -- At a task's top level the script is where lua's main chunk would
  -- be (bindings/lcoro.c).
  coroutine.yield = core.co_yield
  coroutine.running = core.co_running
  coroutine.isyieldable = core.co_isyieldable
  rawset(coroutine, "moonport", true)
end

--------------------------------------------------------------------------
-- mp.fs: files (bindings/lfile.c: open, readfile; lfs.c, lfsx.c).
local fs = core.fs
M.fs = fs

-- fs.writefile (an atomic replace) is in C: bindings/lfs.c.

return M
