-- mp.run(fn, ...) inside a task (a script under the moonport command)
-- calls fn there and returns its results or raises its error, so one
-- script runs under lua5.4 (require "moonport") and under moonport.
local mp = require "moonport"
local a, b, n = mp.run(function(x, y)
  mp.sleep(0.001)
  return x + 1, y, select("#", x, y)
end, 41, "y")
assert(a == 42 and b == "y" and n == 2, "mp.run inside a task: results")
local ok, err = pcall(mp.run, function() error("inner", 0) end)
assert(not ok and err == "inner", "mp.run inside a task: errors")
assert(not pcall(mp.run, 42), "mp.run inside a task: non-function raises")
print("ok")
