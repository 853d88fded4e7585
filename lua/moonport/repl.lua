-- moonport.repl: the interactive loop. Each entry runs as its own task
-- while the loop keeps serving the tasks started earlier (a server started
-- at the prompt keeps accepting while you type). Expressions print their
-- values; incomplete chunks continue on the next line; an error prints
-- and the REPL goes on. The moonport command runs this as a task and
-- cancels the running entry on Ctrl-C.
local core = ...
local mp = require "moonport"

local M = {}

-- Compiles a line: as an expression first (to print its value), then as
-- a statement, reading more lines while the chunk is incomplete.
local function compile(line)
  local chunk = load("return " .. line, "=stdin", "t")
  if chunk then return chunk end
  local src = line
  while true do
    local err
    chunk, err = load(src, "=stdin", "t")
    if chunk then return chunk end
    if not err:find("<eof>$") then return nil, err end
    local more = core.readline(">> ")
    if not more then return nil, err end
    src = src .. "\n" .. more
  end
end

local function show(ok, ...)
  if not ok then
    local err = ...
    io.stderr:write(tostring(err), "\n")
  elseif select("#", ...) > 0 then
    local out = table.pack(...)
    for i = 1, out.n do out[i] = tostring(out[i]) end
    print(table.concat(out, "\t"))
  end
end

function M.run()
  while true do
    local line = core.readline("> ")
    if not line then
      io.write("\n")
      return
    end
    if line:find("%S") then
      local chunk, err = compile(line)
      if not chunk then
        io.stderr:write(err, "\n")
      else
        local entry = mp.spawn(function()
          return xpcall(chunk, function(e)
            return debug.traceback(tostring(e), 2)
          end)
        end)
        M.entry = entry
        local r = table.pack(entry:join())
        M.entry = nil
        if r[1] then
          show(table.unpack(r, 2, r.n))
        else
          io.stderr:write(tostring(r[2]), "\n") -- cancelled by Ctrl-C
        end
      end
    end
  end
end

return M
