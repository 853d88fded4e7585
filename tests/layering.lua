-- layering.lua: the bindings' imports point down (README, "Tasks";
-- lcore.h draws the layers) and the bindings include no OS header.
--   lua5.4 tests/layering.lua [bindings-dir]
-- 1. No include cycle among the binding headers.
-- 2. No circle between the files: a file depends on another when it
--    calls one of its functions or includes a header declaring them
--    (lmp_open_* aside); dependencies point down only (a lower layer
--    reaches a higher one through a hook; lmoonport.c, which opens
--    everything, is the top).
-- 3. No OS header: C standard library, Lua, mp.h and mp_os.h only.
local dir = arg[1] or "bindings"

-- Files not yet ported (issue 9: files and sockets), exempt from 2 and 3:
-- remove each as its branch lands; the list must end empty.
local PENDING = {}
for f in ([[]]):gmatch("%S+") do -- every file is ported
  PENDING[f] = true
end

local files, names = {}, {}
local p = io.popen("ls " .. dir)
for f in p:lines() do
  if f:match("^l[%w_]*%.[ch]$") or f == "module.c" then
    local h = assert(io.open(dir .. "/" .. f))
    files[f] = h:read("a")
    h:close()
    names[#names + 1] = f
  end
end
p:close()
table.sort(names)
assert(files["lcore.h"], "no lcore.h in " .. dir)

-- The code without comments and string literals.
local function code(src)
  src = src:gsub("/%*.-%*/", " "):gsub("//[^\n]*", "")
  return (src:gsub('"[^"\n]*"', '""'):gsub("'[^'\n]*'", "''"))
end

local function includes(f)
  local t = {}
  for i in files[f]:gmatch('\n#include "(l[%w_]*%.h)"') do t[#t + 1] = i end
  return t
end

local failed = false
local function report(ok, msg, details)
  print((ok and "ok - " or "not ok - ") .. msg)
  for _, d in ipairs(details or {}) do print("  " .. d) end
  if not ok then failed = true end
end

-- A cycle in graph (file -> set of files), as a list, or nil.
local function find_cycle(graph)
  local state, stack = {}, {}
  local function visit(n)
    state[n] = 1
    stack[#stack + 1] = n
    local out = {}
    for m in pairs(graph[n] or {}) do out[#out + 1] = m end
    table.sort(out)
    for _, m in ipairs(out) do
      if state[m] == 1 then
        local c, on = {}, false
        for _, s in ipairs(stack) do
          if s == m then on = true end
          if on then c[#c + 1] = s end
        end
        c[#c + 1] = m
        return c
      elseif not state[m] then
        local c = visit(m)
        if c then return c end
      end
    end
    stack[#stack] = nil
    state[n] = 2
  end
  for _, n in ipairs(names) do
    if not state[n] then
      local c = visit(n)
      if c then return c end
    end
  end
end

-- 1. Header cycles.
local hgraph = {}
for _, f in ipairs(names) do
  if f:match("%.h$") then
    hgraph[f] = {}
    for _, i in ipairs(includes(f)) do hgraph[f][i] = true end
  end
end
local c = find_cycle(hgraph)
report(not c, "no include cycle among the binding headers",
       c and { table.concat(c, " -> ") })

-- 2. Files: who defines each function a header declares.
local definer = {}
for _, f in ipairs(names) do
  if f:match("%.c$") then
    for name in ("\n" .. code(files[f])):gmatch(
        "\n[%w_][%w_ %*]-[%s%*]([%w_]+)%s*%([^;{]-%)%s*{") do
      definer[name] = definer[name] or f
    end
  end
end
local exported, declares = {}, {}
for _, f in ipairs(names) do
  if f:match("%.h$") then
    declares[f] = {}
    for name in code(files[f]):gmatch("([%w_]+)%s*%(") do
      if definer[name] then
        exported[name] = definer[name]
        -- what lmoonport.c opens may be declared beside its neighbours
        if not name:match("^lmp_open_") then
          declares[f][definer[name]] = name
        end
      end
    end
  end
end
local cgraph, why = {}, {}
local function depends(f, d, reason)
  if d ~= f and not PENDING[d] and not cgraph[f][d] then
    cgraph[f][d] = true
    why[f .. " " .. d] = reason
  end
end
for _, f in ipairs(names) do
  if f:match("%.c$") and not PENDING[f] then
    local src = code(files[f])
    cgraph[f] = {}
    for name, d in pairs(exported) do
      if src:find("%f[%w_]" .. name .. "%s*%(") then
        depends(f, d, "calls " .. name)
      end
    end
    for _, h in ipairs(includes(f)) do
      for d, name in pairs(declares[h] or {}) do
        depends(f, d, "includes " .. h .. " (" .. name .. ")")
      end
    end
  end
end
c = find_cycle(cgraph)
local det
if c then
  det = {}
  for i = 1, #c - 1 do
    det[#det + 1] = ("%s %s, in %s"):format(
      c[i], why[c[i] .. " " .. c[i + 1]], c[i + 1])
  end
end
report(not c, "no circle between the binding files", det)

-- 3. OS headers.
local os_headers = {
  "sys/", "unistd%.h", "fcntl%.h", "netinet/", "arpa/", "netdb%.h",
  "dirent%.h", "poll%.h", "termios%.h", "errno%.h", "pthread%.h" }
bad = {}
for _, f in ipairs(names) do
  if not PENDING[f] then
    for inc in files[f]:gmatch("\n#include <([^>]+)>") do
      for _, pat in ipairs(os_headers) do
        if inc:find("^" .. pat) then
          bad[#bad + 1] = f .. ": <" .. inc .. ">"
        end
      end
    end
  end
end
local pending = {}
for f in pairs(PENDING) do pending[#pending + 1] = f end
table.sort(pending)
report(#bad == 0, "no OS header in bindings/ (not yet checked: " ..
       table.concat(pending, " ") .. ")", bad)

os.exit(failed and 1 or 0)
