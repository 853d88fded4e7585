-- http_workers.lua: an HTTP/1.1 keep-alive responder on every core: run
-- with --workers, each worker listens on the same port (reuseport) and
-- the kernel spreads the connections; a shared channel hands the port
-- picked by the first worker to the others and gathers the counts.
--
--   moonport --workers 4 examples/http_workers.lua   self-test: serves
--       on a free port, sends 40 connections' requests to itself, prints
--       what each worker served, exits (also without --workers: one)
--   moonport --workers examples/http_workers.lua --serve 8080   serves
--       until SIGTERM or Ctrl-C, then each worker prints its count
--       (bench/workers.sh drives it with wrk)
local mp = require "moonport"

local me, n = mp.worker()
local BODY = "Hello, World!"
local RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" ..
                 "Content-Length: " .. #BODY .. "\r\n\r\n" .. BODY
local served, conns = 0, 0

-- Requests (a request line and headers, no body) until the peer closes.
local function serve(c)
  conns = conns + 1
  c:setoption("nodelay", true)
  while true do
    local line = c:read("l")
    if not line then break end
    repeat
      local h = c:read("l")
      if not h then c:close() return end
    until h == "\r" or h == ""
    served = served + 1
    if not c:write(RESPONSE) then break end
  end
  c:close()
end

-- Every worker listens on the same port: the first picks it (0: a free
-- one) and passes it on.
local function listen(port)
  local ports = mp.shared_channel("port", n)
  local srv
  if me == 1 then
    srv = assert(mp.net.listen("127.0.0.1", port,
                               { reuseport = true, backlog = 1024 }))
    port = select(2, srv:sockname())
    for _ = 2, n do ports:send(port) end
  else
    port = ports:recv()
    srv = assert(mp.net.listen("127.0.0.1", port,
                               { reuseport = true, backlog = 1024 }))
  end
  local acceptor = mp.spawn(function()
    while true do
      local c = srv:accept()
      if not c then break end -- closed
      mp.spawn(serve, c)
    end
  end)
  return srv, port, acceptor
end

if arg and arg[1] == "--serve" then
  local _, port = listen(tonumber(arg[2]) or 8080)
  -- A stop (SIGTERM, Ctrl-C) cancels every task: this prints on the way.
  local report <close> = setmetatable({}, { __close = function()
    io.stdout:write(("worker %d served %d requests on %d connections\n")
                    :format(me, served, conns))
  end })
  print("worker " .. me .. " listening on", port)
  mp.sleep(math.huge)
end

-- Self-test. Worker 1 sends 40 connections of 5 requests each, then
-- tells every worker to stop and sums what they served.
local srv, port, acceptor = listen(0)
local stop = mp.shared_channel("stop", n)
local counts = mp.shared_channel("counts", n)
if me == 1 then
  mp.scope(function(s)
    for _ = 1, 40 do
      s:spawn(function()
        local c = assert(mp.net.connect("127.0.0.1", port, { timeout = 5 }))
        c:settimeout(5)
        for _ = 1, 5 do
          c:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
          repeat local h = assert(c:read("l")) until h == "\r"
          assert(c:read(#BODY) == BODY)
        end
        c:close()
      end)
    end
  end)
  for _ = 1, n do stop:send(true) end
end
stop:recv() -- every response was read: each worker counted its own
-- The acceptor is stopped first: it may not have reached accept yet, and
-- accept on a closed server raises (a worker that raises is restarted).
acceptor:cancel()
srv:close()
counts:send({ worker = me, requests = served })
if me == 1 then
  local total = 0
  for _ = 1, n do
    local c = counts:recv()
    print(("worker %d served %d requests"):format(c.worker, c.requests))
    total = total + c.requests
  end
  assert(total == 200, total)
  print("ok")
end
