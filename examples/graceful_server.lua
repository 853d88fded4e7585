-- graceful_server.lua: a line server that, on SIGTERM or Ctrl-C (SIGINT),
-- stops accepting, finishes the requests in flight and exits cleanly.
--
--   moonport examples/graceful_server.lua               self-test: serves
--       on a free port, sends itself SIGTERM mid-request, checks that the
--       request still completes, exits
--   moonport examples/graceful_server.lua --serve 7000  serves until
--       SIGTERM/Ctrl-C (try: nc 127.0.0.1 7000, type a line)
local mp = require "moonport"

-- Each request takes a while: the work a shutdown must not cut short.
local function handle(c)
  local line = c:read("l")
  if line then
    print("handling " .. line)
    io.stdout:flush()
    mp.sleep(0.2)
    c:write("done: ", line, "\n")
  end
  c:close()
end

-- Serves until a signal arrives; returns when every request has ended.
-- ready() runs once the signals are routed.
local function serve(srv, ready)
  local watchers = {}
  local function shutdown(name)
    print("got SIG" .. name .. ": finishing the requests in flight")
    srv:close() -- the pending accept returns nil: no new connections
    for _, t in ipairs(watchers) do
      if t ~= mp.current() then t:cancel() end
    end
  end
  for _, name in ipairs { "TERM", "INT" } do
    watchers[#watchers + 1] = mp.spawn(function()
      shutdown(mp.proc.signal(name))
    end)
  end
  mp.sleep(0) -- the watchers run: from now on the signals are routed
  if ready then ready() end
  -- The scope returns once the acceptor and every handler have ended.
  mp.scope(function(s)
    while true do
      local c = srv:accept()
      if not c then break end
      s:spawn(handle, c)
    end
  end)
  print("clean exit")
end

if arg and arg[1] == "--serve" then
  local srv = assert(mp.net.listen("127.0.0.1", tonumber(arg[2]) or 7000))
  serve(srv, function()
    print("listening on", srv:sockname())
    io.stdout:flush()
  end)
  return
end

local srv = assert(mp.net.listen("127.0.0.1", 0))
local _, port = srv:sockname()
local server = mp.spawn(serve, srv)
local c = assert(mp.net.connect("127.0.0.1", port))
assert(c:write("slow request\n"))
mp.sleep(0.05) -- the request is in flight: now ask for a shutdown
assert(mp.proc.run({ "sh", "-c", "kill -TERM $PPID" }))
assert(c:read("l") == "done: slow request") -- it was finished
c:close()
assert(server:join())
assert(not mp.net.connect("127.0.0.1", port)) -- no longer accepting
print("ok")
