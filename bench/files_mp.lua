-- files_mp.lua: moonport side of bench/files.sh (lua5.4 with the module
-- from the build tree; the body runs as a task under mp.run).
--   files_mp.lua read PATH | small|readfile DIR N INFLIGHT
-- Prints the elapsed milliseconds and the bytes read.
local mp = require "moonport"
local fs = mp.fs
local mode = arg[1]
mp.run(function()
local t0 = mp.now()
local total = 0
if mode == "read" then
  local f = assert(fs.open(arg[2], "rb"))
  while true do
    local d = f:read(65536)
    if not d then break end
    total = total + #d
  end
  f:close()
else
  local dir, n, inflight = arg[2], tonumber(arg[3]), tonumber(arg[4])
  local next_i = 0
  local workers = {}
  for w = 1, inflight do
    workers[w] = mp.spawn(function()
      while true do
        next_i = next_i + 1
        local i = next_i
        if i > n then return end
        local d
        if mode == "readfile" then
          d = assert(fs.readfile(dir .. "/f" .. i))
        else
          local f = assert(fs.open(dir .. "/f" .. i, "rb"))
          d = assert(f:read(65536)) -- (read before adding: it yields)
          f:close()
        end
        total = total + #d
      end
    end)
  end
  for w = 1, inflight do assert(workers[w]:join()) end
end
print(string.format("%.1f %d", (mp.now() - t0) * 1e3, total))
end)
