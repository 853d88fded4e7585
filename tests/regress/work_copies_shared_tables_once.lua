-- mp.work copies a table reached twice once, and the copy refers to it
-- twice: `t = {t, t}` forty times over is 41 tables, not 2^40 copies
-- (that hung the process), and the copy keeps the sharing.
local mp = require "moonport"

local fails = 0
local function check(ok, what)
  if not ok then
    fails = fails + 1
    print("FAIL " .. what)
  end
end

local function id(...) return ... end

-- identity first: it fails at once on a copy that duplicates
local a = {}
local r = mp.work(id, { a, a })
check(rawequal(r[1], r[2]), "a table referenced twice is copied twice")

local t = {}
for _ = 1, 40 do t = { t, t } end
local c = mp.work(id, t)
local depth = 0
while c[1] do
  check(rawequal(c[1], c[2]), "shared at depth " .. depth)
  c = c[1]
  depth = depth + 1
end
check(depth == 40, "depth " .. depth .. ", want 40")

-- the same in results, built in the worker
local w = mp.work(function(n)
  local u = {}
  for _ = 1, n do u = { u, u } end
  return u
end, 40)
check(rawequal(w[1], w[2]), "a shared result table is copied twice")

if fails > 0 then os.exit(1) end
print("ok")
