-- A to-be-closed file, or one collected by the GC, has written what it
-- buffered by the time the block ends / the collection returns: a reader
-- that opens the file right after sees every byte (as with Lua's io).
local mp = require "moonport"
local fs = mp.fs

local dir = os.tmpname()
os.remove(dir)
assert(fs.mkdir(dir))
local fails = 0
local function check(what, path, want)
  local h = assert(io.open(path, "rb"))
  local got = h:read("a")
  h:close()
  if got ~= want then
    fails = fails + 1
    print(string.format("FAIL %s: %d bytes, want %d", what, #got, #want))
  end
end

local line = string.rep("x", 99) .. "\n"
for round = 1, 20 do
  local n = round * 37 -- below and above the 64 KiB buffer
  local want = line:rep(n)

  local p1 = dir .. "/tbc" .. round
  do
    local f <close> = assert(fs.open(p1, "w"))
    for _ = 1, n do f:write(line) end
  end
  check("<close> round " .. round, p1, want)

  local p2 = dir .. "/gc" .. round
  do
    local f = assert(fs.open(p2, "w"))
    for _ = 1, n do f:write(line) end
  end
  collectgarbage()
  collectgarbage()
  check("__gc round " .. round, p2, want)

  -- an error unwinding the block closes the file too
  local p3 = dir .. "/err" .. round
  local ok = pcall(function()
    local f <close> = assert(fs.open(p3, "w"))
    for _ = 1, n do f:write(line) end
    error("boom")
  end)
  assert(not ok)
  check("<close> on error, round " .. round, p3, want)
  fs.remove(p1) fs.remove(p2) fs.remove(p3)
end
-- the object is closed by __close: using it raises as after close()
local g
do
  local f <close> = assert(fs.open(dir .. "/last", "w"))
  f:write("abc")
  g = f
end
assert(tostring(g) == "file (closed)", tostring(g))
assert(not pcall(g.write, g, "x"))
fs.remove(dir .. "/last")
assert(fs.rmdir(dir))
if fails > 0 then os.exit(1) end
print("ok")
