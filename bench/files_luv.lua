-- files_luv.lua: luv (libuv) side of bench/files.sh, lua5.4 + Debian lua-luv.
--   files_luv.lua read PATH | small DIR N INFLIGHT
local uv = require "luv"
local mode = arg[1]
local t0 = uv.hrtime()
local total = 0
if mode == "read" then
  local fd = assert(uv.fs_open(arg[2], "r", 0))
  local off = 0
  local function step()
    uv.fs_read(fd, 65536, off, function(err, data)
      assert(not err, err)
      if #data == 0 then uv.fs_close(fd, function() end) return end
      total = total + #data
      off = off + #data
      step()
    end)
  end
  step()
else
  local dir, n, inflight = arg[2], tonumber(arg[3]), tonumber(arg[4])
  local next_i = 0
  local function worker()
    next_i = next_i + 1
    local i = next_i
    if i > n then return end
    uv.fs_open(dir .. "/f" .. i, "r", 0, function(err, fd)
      assert(not err, err)
      uv.fs_read(fd, 65536, 0, function(rerr, data)
        assert(not rerr, rerr)
        total = total + #data
        uv.fs_close(fd, function() worker() end)
      end)
    end)
  end
  for _ = 1, inflight do worker() end
end
uv.run()
print(string.format("%.1f %d", (uv.hrtime() - t0) / 1e6, total))
