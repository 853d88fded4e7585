-- Bytes write() accepted into a file's buffer are the file's: a flush
-- whose task is cancelled, times out or is abandoned while the write is in
-- flight still writes them (they were dropped: a cancelled task's flush
-- left an empty file). Also a write() that carries the buffer with it.
local mp = require "moonport"
local fs = mp.fs

local failures = 0
local function check(cond, what)
  if not cond then
    failures = failures + 1
    print("FAIL: " .. what)
  end
end

local function slurp(p)
  local h = assert(io.open(p, "rb"))
  local s = h:read("a")
  h:close()
  return s
end

-- Waits until no op is in flight (an orphaned write finishing).
local function quiet()
  local t0 = mp.now()
  while mp.debug.stats().ops_inflight > 0 and mp.now() - t0 < 10 do
    mp.sleep(0.001)
  end
end

local data = string.rep("0123456789abcdef", 2048) -- 32 KiB
local cases = {
  cancel = function(f)
    local t = mp.spawn(function() return f:flush() end)
    mp.sleep(0) -- t suspends in the flush
    t:cancel()
    t:join()
  end,
  timeout = function(f)
    mp.timeout(1e-9, f.flush, f)
  end,
  ["cancel inside write"] = function(f)
    -- 40 KiB more overflow the 64 KiB buffer: write() flushes the first
    local t = mp.spawn(function() return f:write(data, data:sub(1, 8192)) end)
    mp.sleep(0)
    t:cancel()
    t:join()
  end,
  abandoned = function(f)
    local co = coroutine.create(function() return f:flush() end)
    pcall(table.sort, { 1, 2 }, function(a, b)
      coroutine.resume(co)
      return a < b
    end)
  end,
}

mp.run(function()
  for _, backend_case in ipairs { "cancel", "timeout", "cancel inside write",
                                  "abandoned" } do
    for round = 1, 20 do
      local p = os.tmpname()
      local f = assert(fs.open(p, "w"))
      assert(f:write(data))
      cases[backend_case](f)
      f:close()
      quiet()
      local got = slurp(p)
      os.remove(p)
      local want = #data
      if backend_case == "cancel inside write" then
        -- the bytes before the interrupted write() are all there; that
        -- write itself may or may not have been taken
        check(got:sub(1, #data) == data and (#got == #data or
              #got == 2 * #data + 8192),
              backend_case .. " round " .. round .. ": " .. #got .. " bytes")
      else
        check(got == data, backend_case .. " round " .. round .. ": " ..
              #got .. " of " .. want .. " bytes")
      end
    end
  end
end)

if failures > 0 then
  print(failures .. " failures")
  os.exit(1)
end
print("ok")
