-- readfloor.lua: f:read(65536) over a whole file, for bench/readfloor.sh.
--   readfloor.lua io|mp PATH      (under lua5.4 or the moonport command)
-- io: stock io.open; mp: mp.fs.open, in the main chunk (no task).
-- Prints the elapsed milliseconds (mp.now: the module is loaded in both
-- modes, for its clock) and the bytes read.
local mp = require "moonport"
local mode, path = arg[1], arg[2]
local open = mode == "mp" and mp.fs.open or io.open
local s, total = mp.now(), 0
local f = assert(open(path, "rb"))
while true do
  local d = f:read(65536)
  if not d then break end
  total = total + #d
end
f:close()
print(string.format("%.1f %d", (mp.now() - s) * 1e3, total))
