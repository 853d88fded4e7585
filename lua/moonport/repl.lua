-- moonport.repl: the interactive loop, as lua.c's (prompts from _PROMPT and
-- _PROMPT2, "=expr", expressions print their values through the global
-- print, incomplete chunks continue on the next line) with what an async
-- REPL needs: each entry runs as its own task while the loop keeps serving
-- the tasks started earlier (a server started at the prompt keeps accepting
-- while you type). The moonport command runs M.run(docall) as a task, with
-- docall the function that runs a chunk under its message handler, and
-- calls M:interrupt() on Ctrl-C.
local core = ...
local mp = require "moonport"

local M = {}
local stdout, stderr = io.stdout, io.stderr
local tostring, pcall, load = tostring, pcall, load
local pack, unpack = table.pack, table.unpack
local readline, addhistory = core.readline, core.addhistory

-- lua.c's get_prompt: the global, through tostring, or the default.
local function prompt(first)
  local p
  if first then p = _PROMPT else p = _PROMPT2 end
  if p == nil then return first and "> " or ">> " end
  local ok, s = pcall(tostring, p)
  return ok and type(s) == "string" and s or (first and "> " or ">> ")
end

-- Compiles an entry as lua.c does: "=x" means "return x"; a line is tried
-- as an expression first (to print its value), then as a statement,
-- reading more lines while the chunk is incomplete. Returns the chunk or
-- nil, message; nil at the end of input.
-- nil, message; nil, nil when Ctrl-C dropped the chunk.
local function compile(line)
  local typed = line
  if line:sub(1, 1) == "=" then line = "return " .. line:sub(2) end
  local chunk = load("return " .. line .. ";", "=stdin", "t")
  if chunk then
    addhistory(typed)
    return chunk
  end
  local src = line
  while true do
    local err
    chunk, err = load(src, "=stdin", "t")
    if chunk or not err:find("<eof>$") then
      addhistory(typed)
      return chunk, err
    end
    local more = readline(prompt(false), M.words)
    if not more then
      addhistory(typed)
      if more == false then err = nil end
      return nil, err
    end
    src = src .. "\n" .. more
    typed = typed .. "\n" .. more
  end
end

-- Completion candidates: globals and the fields of tables reachable from
-- them, three names deep ("mp.net.connect"), each table once.
local function identifier(k)
  return type(k) == "string" and k:find("^[%a_][%w_]*$")
end

local function words()
  local out, seen, queue = {}, { [_ENV] = true }, { { _ENV, "", 1 } }
  local i = 1
  while queue[i] do
    local t, prefix, depth = queue[i][1], queue[i][2], queue[i][3]
    i = i + 1
    for k, v in next, t do
      if #out >= 20000 then return out end
      if identifier(k) then
        out[#out + 1] = prefix .. k
        if type(v) == "table" and depth < 3 and not seen[v] then
          seen[v] = true
          queue[#queue + 1] = { v, prefix .. k .. ".", depth + 1 }
        end
      end
    end
  end
  return out
end

local function message(msg)
  stderr:write(tostring(msg), "\n")
end

-- lua.c's l_print: the global print, whatever it has become.
local function show(r)
  if r.n < 2 then return end
  local ok, err = pcall(print, unpack(r, 2, r.n))
  if not ok then
    message("error calling 'print' (" .. tostring(err) .. ")")
  end
end

function M.run(docall)
  while true do
    local ok, w = pcall(words)
    M.words = ok and w or nil
    local line = readline(prompt(true), M.words)
    if line == nil then
      stdout:write("\n")
      return
    end
    local chunk, err = line and compile(line)
    if not chunk then
      if err then message(err) end
    else
      M.entry = mp.spawn(docall, chunk)
      local r = pack(M.entry:join())
      M.entry = nil
      if r[1] then show(r) else message(r[2]) end
    end
  end
end

-- Ctrl-C: cancels the entry if one is suspended (true), else drops the
-- half-typed line. (The command's signal handler already stopped any
-- task that was running Lua code.)
function M:interrupt()
  if self.entry and not self.entry:done() then
    self.entry:cancel()
    return true
  end
  core.readline_interrupt()
  return false
end

return M
