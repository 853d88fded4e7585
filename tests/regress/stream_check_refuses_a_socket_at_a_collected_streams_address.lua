-- Stream methods recognise their object by its address among the live
-- streams (bindings/lptrset.h). A stream must leave that set when it is
-- finalized: Lua then frees its block, and the next socket of another
-- type (the same struct, the same size) often lands at that address; a
-- stale entry let stream methods take a UDP socket or a server for a
-- stream (a write returned nil, msg instead of raising "stream
-- expected"). Passes without checking anything where blocks are not
-- reused (ASan's quarantine), and says so.
local mp = require "moonport"

local failed = 0
local function check(what, ok)
  if not ok then
    failed = failed + 1
    print("FAIL: " .. what)
  end
end

local function addr(o) return tostring(o):match("0x%x+$") end

local N = 64
local srv = assert(mp.net.listen("127.0.0.1", 0, { backlog = N }))
local _, port = srv:sockname()
local acc = mp.spawn(function()
  for i = 1, N do
    local c = assert(srv:accept())
    if i % 2 == 0 then c:close() end -- the others are collected open
  end
end)
local write, peername
local freed = {}
for i = 1, N do
  local c = assert(mp.net.connect("127.0.0.1", port))
  write, peername = c.write, c.peername
  freed[addr(c)] = true
  if i % 2 == 1 then c:close() end
end
acc:join()
srv:close()
collectgarbage()
collectgarbage() -- finalized in the first cycle, freed in the second

local reused, others = 0, {}
for i = 1, 2 * N do
  local o = i % 2 == 0 and mp.net.udp() or
            assert(mp.net.listen("127.0.0.1", 0))
  others[i] = o
  if freed[addr(o)] then reused = reused + 1 end
  local ok, err = pcall(write, o, "x")
  check("write refuses " .. tostring(o) .. " (got " .. tostring(ok) ..
        ", " .. tostring(err) .. ")",
        not ok and tostring(err):find("stream expected", 1, true))
  ok, err = pcall(peername, o)
  check("peername refuses " .. tostring(o) .. " (got " .. tostring(ok) ..
        ", " .. tostring(err) .. ")",
        not ok and tostring(err):find("stream expected", 1, true))
end
for _, o in ipairs(others) do o:close() end
if reused == 0 then
  print("note: no socket reused a collected stream's block here")
end
os.exit(failed == 0 and 0 or 1)
