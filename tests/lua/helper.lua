-- helper.lua: shared by the busted specs. Loads moonport from the build
-- tree (ctest sets LUA_CPATH) and gives run(fn): fn runs as a task and the
-- loop is driven until every task has ended; an error or failed assertion
-- inside the task fails the spec.
local mp = require "moonport"

local H = { mp = mp }

function H.run(fn, ...)
  return mp.run(fn, ...)
end

-- The backend the suite was asked to run on (ctest sets it).
function H.expected_backend()
  local b = os.getenv("MP_EXPECT_BACKEND")
  if b == "seccomp" then return "epoll" end
  return b
end

-- Windows (tests/win/busted.lua runs the specs there under wine): no
-- /proc, no Unix tools; paths use '/' all the same.
H.windows = package.config:sub(1, 1) == "\\"

-- On Windows the directories are made and removed in this process with
-- mp.fs (in a task; H.run runs fn at once inside one): wine's cmd.exe
-- costs a process start each time and has hung in rmdir under load.
local function in_task(fn, ...)
  return H.run(fn, ...)
end

-- A fresh temporary directory, removed by the caller with H.rmtree.
function H.tmpdir()
  if H.windows then
    return in_task(function()
      return assert(mp.fs.mkdtemp()) -- in the system's temporary folder
    end)
  end
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. p))
  return p
end

-- A fresh file name for a test's scratch file, removed by the caller
-- with os.remove. On Windows os.tmpname (msvcrt's tmpnam) names a file
-- in the root of the current drive ("\\s10."), which is / under wine:
-- there the name is made in the system's temporary folder instead.
local ntmp = 0
function H.tmpname()
  if not H.windows then return os.tmpname() end
  ntmp = ntmp + 1
  local dir = (os.getenv("TEMP") or os.getenv("TMP") or "."):gsub("\\", "/")
  local p = ("%s/mp-%d-%d-%d.tmp"):format(dir, os.time(), ntmp,
                                          math.random(1 << 30))
  assert(io.open(p, "w")):close()
  return p
end

-- Makes directory p and its missing parents (mkdir -p).
function H.mkdir_p(p)
  if H.windows then
    return in_task(function()
      local at = p:match("^%a:/") or p:match("^/") or ""
      for part in p:sub(#at + 1):gmatch("[^/]+") do
        at = at == "" and part or (at:sub(-1) == "/" and at or at .. "/")
          .. part
        local st = mp.fs.stat(at)
        if not st then
          local ok, msg = mp.fs.mkdir(at)
          if not ok then return nil, msg end
        end
      end
      return true
    end)
  end
  return os.execute("mkdir -p '" .. p .. "'")
end

-- Removes p and everything under it (rm -rf); what cannot be removed
-- (still open on Windows) is left.
function H.rmtree(p)
  if H.windows then
    local function rm(q)
      local st = mp.fs.lstat(q)
      if st and st.type == "directory" then
        for _, name in ipairs(mp.fs.dir(q) or {}) do rm(q .. "/" .. name) end
        mp.fs.rmdir(q)
      elseif st then
        mp.fs.remove(q)
      end
    end
    in_task(rm, p)
    return
  end
  os.execute("rm -rf '" .. p .. "'")
end

-- Counts this process's open descriptors (for leak checks); 0 where the
-- system cannot list its handles (Windows: mp.debug.fds() is nil), and
-- then fds_back_to checks nothing.
function H.fd_count()
  if H.windows then
    local n, fds = 0, mp.debug.fds()
    if not fds then return 0 end
    for _ in pairs(fds) do n = n + 1 end
    return n
  end
  local n = 0
  local pipe = io.popen("ls /proc/" .. H.pid() .. "/fd")
  for _ in pipe:lines() do n = n + 1 end
  pipe:close()
  return n
end

-- Waits (up to 2 s, inside a task) until at most n descriptors are open:
-- closes complete asynchronously. A descriptor of an earlier spec may
-- close meanwhile, hence "at most".
function H.fds_back_to(n)
  if H.windows and not mp.debug.fds() then return true end
  for _ = 1, 200 do
    if H.fd_count() <= n then return true end
    mp.sleep(0.01)
  end
  return false
end

--------------------------------------------------------------------------
-- Leak check after every test (libuv's "no handle left"): each `it` starts
-- from a snapshot of the loop and the process (mp.debug.stats/fds); when it
-- ends, garbage is collected and the loop is run until the counts settle
-- (closes complete asynchronously), for at most LEAK_WAIT seconds. What is
-- still above the snapshot fails the test with a message naming it:
-- "leaked 1 descriptor: 7=socket:[1234]", "2 ops still in flight".

local LEAK_WAIT = tonumber(os.getenv("MP_LEAK_WAIT")) or 3

-- The counts that must come back. Pool threads start on first use and stay
-- with the loop, so only other threads count.
local function counts()
  local s = mp.debug.stats()
  return {
    ["ops still in flight"] = s.ops_inflight,
    ["op records never released"] = s.ops_live,
    ["timers still armed"] = s.timers,
    ["threadpool jobs still queued or running"] = s.pool_jobs,
    ["tasks still alive"] = s.tasks,
    ["task anchors left in the registry"] = s.anchors,
    ["join waiters left"] = s.waiters,
    ["registry references left"] = s.registry,
    -- (not on Windows: the IOCP loop's POLL waiter threads start on
    -- first use and stay with the loop, outside the pool's count)
    ["threads still running"] = H.windows and 0
                                or (s.threads or 0) - s.pool_threads,
  }
end

local function leaks(base)
  local found = {}
  local now, fds = counts(), mp.debug.fds() or {}
  local names = {}
  for fd, what in pairs(fds) do
    if not base.fds[fd] or base.fds[fd] ~= what then
      names[#names + 1] = fd .. "=" .. what
    end
  end
  table.sort(names)
  if #names > 0 then
    found[#found + 1] = ("leaked %d descriptor%s: %s"):format(
      #names, #names == 1 and "" or "s", table.concat(names, ", "))
  end
  local keys = {}
  for k in pairs(now) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if now[k] > base.counts[k] then
      found[#found + 1] = ("%d %s"):format(now[k] - base.counts[k], k)
    end
  end
  return found
end

function H.leak_snapshot()
  collectgarbage()
  collectgarbage()
  return { counts = counts(), fds = mp.debug.fds() or {} }
end

-- Returns nil, or a message naming every leak once the counts had
-- LEAK_WAIT seconds to settle.
function H.leak_check(base)
  local deadline = mp.now() + LEAK_WAIT
  local found
  repeat
    collectgarbage()
    collectgarbage()
    found = leaks(base)
    if #found == 0 then return nil end
    mp.sleep(0.01) -- runs the loop: pending closes and orphans complete
  until mp.now() > deadline
  return table.concat(found, "; ")
end

-- Installs the check around every test of the spec file (busted's test
-- start/end events; an error raised there fails the run and names the
-- test). MP_LEAK_CHECK=0 turns it off.
local ok, busted = pcall(require, "busted")
if ok and type(busted) == "table" and busted.subscribe
   and os.getenv("MP_LEAK_CHECK") ~= "0" then
  local base
  busted.subscribe({ "test", "start" }, function()
    base = H.leak_snapshot()
    return nil, true
  end)
  busted.subscribe({ "test", "end" }, function(element)
    if not base then return nil, true end
    local b = base
    base = nil
    local msg = H.leak_check(b)
    if msg then error("leak check: " .. element.name .. ": " .. msg, 0) end
    return nil, true
  end)
end

-- The moonport command under test (ctest sets MOONPORT), as a path the
-- system can start: under wine a Linux path is on drive Z:.
function H.moonport()
  local exe = os.getenv("MOONPORT") or "moonport"
  if H.windows and exe:sub(1, 1) == "/" then exe = "Z:" .. exe end
  return exe
end

function H.pid()
  if H.windows then return nil end -- (no /proc)
  local f = io.open("/proc/self/stat")
  local pid = f:read("n")
  f:close()
  return pid
end

return H
