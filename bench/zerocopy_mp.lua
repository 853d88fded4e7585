-- zerocopy_mp.lua: moonport's side of bench/zerocopy.sh.
--   moonport bench/zerocopy_mp.lua copy SRC DST       mp.fs.copy
--   moonport bench/zerocopy_mp.lua sendfile FILE PORT connect to
--       127.0.0.1:PORT, stream:sendfile(file) to the end
local mp = require "moonport"
local mode, a, b = ...
if mode == "copy" then
  assert(mp.fs.copy(a, b))
elseif mode == "sendfile" then
  local f = assert(mp.fs.open(a))
  local c = assert(mp.net.connect("127.0.0.1", tonumber(b)))
  assert(c:sendfile(f))
  c:close()
  f:close()
else
  error("usage: zerocopy_mp.lua copy SRC DST | sendfile FILE PORT")
end
