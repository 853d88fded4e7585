-- stream:read("n") on bytes that are not a numeral returned
-- nil, "end of stream", "EOF" although the stream was open and the bytes
-- still buffered: a caller closes a live connection. As io.read (and
-- file:read) it returns nil, and the bytes stay readable; "EOF" is for a
-- stream that ends before any numeral. (Found by tests/fuzz/read.c.)
local mp = require "moonport"

local failed = 0
local function check(what, ok)
  if not ok then
    failed = failed + 1
    print("FAIL: " .. what)
  end
end

local server = assert(mp.net.listen("127.0.0.1", 0))
local _, port = server:sockname()
local writer = mp.spawn(function()
  local c = assert(server:accept())
  assert(c:write("42 abc\n  7\n"))
  mp.sleep(0.05) -- the reader sees "abc" before the end of the stream
  assert(c:write(" \n"))
  c:close()
end)
local s = assert(mp.net.connect("127.0.0.1", port))

local a, b, c, d = s:read("n", "n")
check("a numeral, then nil for 'abc' (got " .. tostring(a) .. ", " ..
      tostring(b) .. ", " .. tostring(c) .. ", " .. tostring(d) .. ")",
      a == 42 and b == nil and c == nil and d == nil)
check("the bytes after the bad numeral stay buffered",
      s:read("l") == "abc")
check("a numeral after it", s:read("n") == 7)
local v, msg, code = s:read("n")
check("EOF when the stream ends before a numeral (got " .. tostring(code) ..
      ")", v == nil and type(msg) == "string" and code == "EOF")
writer:join()
s:close()
server:close()
os.exit(failed == 0 and 0 or 1)
