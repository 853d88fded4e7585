-- moonport.http_server: mp.http.serve, the server of mp.http: requests
-- and responses over the connections of http_wire.lua, keep-alive,
-- 100 Continue, limits and deadlines, the server's own error responses,
-- and a graceful close. The chunk returns a constructor that http.lua
-- calls with the mp.http table (which it fills), the shared parts and
-- the module.
return function(http, wire, M)
  local spawn, now = M.spawn, M.now
  local fmt = string.format
  local type, tostring, tonumber, pairs, setmetatable, pcall =
    type, tostring, tonumber, pairs, setmetatable, pcall
  local mtype = math.type
  local RECV, REASON, argerr = wire.RECV, wire.REASON, wire.argerr
  local conn_new, step, pull = wire.conn_new, wire.step, wire.pull
  local body_new, body_read = wire.body_new, wire.body_read
  local bad_token, NAMES, num_opt = wire.bad_token, wire.NAMES, wire.num_opt

  local STATUS_LINE = setmetatable({}, { __index = function(t, code)
    local line = fmt("HTTP/1.1 %d %s\r\n", code, REASON[code] or "Unknown")
    t[code] = line
    return line
  end })

  -- The Date header, formatted once a second.
  local date_at, date_line = -1, ""
  local function date()
    local t = os.time()
    if t ~= date_at then
      date_at = t
      date_line = os.date("!Date: %a, %d %b %Y %H:%M:%S GMT\r\n", t)
    end
    return date_line
  end

  ------------------------------------------------------------------------
  -- Server side: requests and responses.
  local Req = {}
  local Res = {}
  Res.__index = Res

  -- The request's body source: sends 100 Continue on the first pull.
  local function req_pull(conn)
    if conn.expect and not conn.continued then
      conn.continued = true
      if not conn.res._started then
        local ok, msg, code = conn.c:write("HTTP/1.1 100 Continue\r\n\r\n")
        if not ok then conn.broken = true return nil, msg, code end
      end
    end
    conn.deadline = now() + conn.srv.timeout
    return pull(conn)
  end

  local function req_body(req)
    local b = req._b
    if not b then
      b = body_new(req_pull, req._conn)
      req._b = b
    end
    return b
  end

  Req.__index = function(req, k)
    if k == "body" then
      local b, msg = req_body(req):read1("a")
      if not b then error(msg, 2) end
      rawset(req, "body", b)
      return b
    end
    return Req[k]
  end

  function Req:read(...)
    return body_read(req_body(self), "read", ...)
  end

  local function check_res(res, fname)
    if getmetatable(res) ~= Res then
      error(fmt("bad argument #1 to '%s' (response expected)", fname), 3)
    end
    if res._done then error(fname .. ": the response is finished", 3) end
  end

  function Res:status(code)
    check_res(self, "status")
    if mtype(code) ~= "integer" or code < 100 or code > 999 then
      argerr(1, "status", "status code (100..999) expected")
    end
    if self._started then error("status: the headers are sent", 2) end
    self._code = code
    return self
  end

  function Res:header(name, value)
    check_res(self, "header")
    local lname = type(name) == "string" and NAMES[name]
    if not lname then argerr(1, "header", "header name expected") end
    local tv = type(value)
    if tv == "number" then value = tostring(value)
    elseif tv ~= "string" then argerr(2, "header", "string expected") end
    if bad_token(value) then argerr(2, "header", "control characters") end
    if self._started then error("header: the headers are sent", 2) end
    if lname == "content-length" then self._clen = tonumber(value)
    elseif lname == "connection" and value:lower():find("close") then
      self._keep = false
    elseif lname == "transfer-encoding" then
      argerr(1, "header", "Transfer-Encoding is the server's")
    end
    self._hs = self._hs .. name .. ": " .. value .. "\r\n"
    return self
  end

  -- The status line and headers, with extra (a length or chunked).
  local function res_head(res, extra, body)
    local conn = res._conn
    -- A client waiting for a 100 Continue it did not get may or may not
    -- send its body: the connection cannot go on.
    if conn.srv.closing or (conn.expect and not conn.continued and
                            not conn.msg_done) then
      res._keep = false
    end
    local conn_line = ""
    if not res._keep then conn_line = "Connection: close\r\n"
    elseif res._v10 then conn_line = "Connection: keep-alive\r\n" end
    -- one concatenation (a single VM op: faster than table.concat)
    return STATUS_LINE[res._code] .. res._hs .. date() .. conn_line ..
           extra .. "\r\n" .. (body or "")
  end

  local CLEN = setmetatable({}, { __index = function(t, n)
    local line = "Content-Length: " .. n .. "\r\n"
    if n < 4096 then t[n] = line end
    return line
  end })

  local function no_body(code)
    return code < 200 or code == 204 or code == 304
  end

  -- The response, or nil, msg, code (the connection is then dropped).
  local function res_fail(res, ok, msg, code)
    if not ok then
      res._conn.broken = true
      return nil, msg, code
    end
    return res
  end

  function Res:write(chunk, ...)
    check_res(self, "write")
    if type(chunk) == "number" then chunk = tostring(chunk) end
    if type(chunk) ~= "string" then argerr(1, "write", "string expected") end
    local c = self._conn.c
    if not self._started then
      self._started = true
      local extra = ""
      if no_body(self._code) or self._clen then
        self._raw = true
      elseif self._v10 then
        self._raw, self._keep = true, false -- the end is the close
      else
        extra = "Transfer-Encoding: chunked\r\n"
      end
      local head = res_head(self, extra)
      if self._head or no_body(self._code) then
        return res_fail(self, c:write(head))
      end
      if chunk == "" then return res_fail(self, c:write(head)) end
      if self._raw then return res_fail(self, c:write(head, chunk)) end
      return res_fail(self, c:write(head, fmt("%x\r\n", #chunk), chunk,
                                    "\r\n"))
    end
    if chunk == "" or self._head or no_body(self._code) then return self end
    if self._raw then return res_fail(self, c:write(chunk)) end
    return res_fail(self, c:write(fmt("%x\r\n", #chunk), chunk, "\r\n"))
  end

  function Res:finish(body)
    check_res(self, "finish")
    if body ~= nil and type(body) ~= "string" then
      if type(body) == "number" then body = tostring(body)
      else argerr(1, "finish", "string expected") end
    end
    local c = self._conn.c
    if self._started then
      self._done = true
      if self._head or no_body(self._code) then return self end
      if self._raw then
        if body and body ~= "" then return res_fail(self, c:write(body)) end
        return self
      end
      if body and body ~= "" then
        return res_fail(self, c:write(fmt("%x\r\n", #body), body,
                                      "\r\n0\r\n\r\n"))
      end
      return res_fail(self, c:write("0\r\n\r\n"))
    end
    self._started, self._done = true, true
    body = body or ""
    if no_body(self._code) then
      return res_fail(self, c:write(res_head(self, "")))
    end
    local extra = self._clen and "" or CLEN[#body]
    if self._head or body == "" then
      return res_fail(self, c:write(res_head(self, extra)))
    end
    if #body <= 2048 then -- one string, one buffer for the kernel
      return res_fail(self, c:write(res_head(self, extra, body)))
    end
    return res_fail(self, c:write(res_head(self, extra), body))
  end

  -- A whole response, from the server itself (errors, limits). Unless
  -- the connection goes on, it is closed gently: a close with unread
  -- bytes would reset it and the client could lose the response, so the
  -- write side is shut and what the client still sends is read and
  -- dropped for a moment.
  local function simple(conn, code, keep)
    local body = REASON[code] .. "\n"
    local c = conn.c
    local ok = c:write(STATUS_LINE[code], date(),
      keep and "" or "Connection: close\r\n",
      "Content-Type: text/plain\r\nContent-Length: ", tostring(#body),
      "\r\n\r\n", conn.head and "" or body)
    if keep or not ok then return ok end
    conn.broken = true
    if c:shutdown() then
      c:settimeout(1)
      local n = 0
      repeat
        local data = c:recv(RECV)
        n = n + (data and #data or 0)
      until not data or n > 1024 * 1024
    end
    return ok
  end

  local function run_handler(handler, req, res, on_error)
    local ok, err = xpcall(handler, debug.traceback, req, res)
    if not ok then
      if on_error then pcall(on_error, err, req) end
      return false
    end
    return true
  end

  local function default_on_error(err, req)
    io.stderr:write(fmt("mp.http: %s %s: handler error: %s\n", req.method,
                        req.path, tostring(err)))
  end

  -- Serves requests on one connection until it closes or must.
  local function serve_requests(srv, conn)
    local c = conn.c
    c:setoption("nodelay", true)
    conn.deadline = now() + srv.timeout -- the first request's headers
    conn.wait_then = srv.timeout
    while not srv.closing do
      conn.idle, conn.head = true, false
      if conn.pos > #conn.buf and conn.rx then
        -- Between requests: idle until a byte comes, then the deadline.
        conn.wait = srv.idle
      elseif conn.rx then
        conn.deadline = now() + srv.timeout
      end
      local ev, done, headers, method, url, major, minor, keep, clen,
            chunked = step(conn)
      conn.wait = nil
      if not ev then
        local code, reason = headers, method
        if code == "EHTTP" then
          local status = (reason == "HEADER_TOO_LARGE" or
                          reason == "HEADER_OVERFLOW") and 431 or 400
          simple(conn, status, false)
        end
        break
      end
      if ev ~= "head" then -- a body before a head cannot happen
        simple(conn, 400, false)
        break
      end
      conn.idle, conn.head = false, method == "HEAD"
      -- A Transfer-Encoding that does not end in chunked leaves the
      -- body's end unknown (a smuggling vector): refused, as RFC 9112.
      if headers["transfer-encoding"] and not chunked then
        simple(conn, 400, false)
        break
      end
      if clen and clen > srv.max_body then
        simple(conn, 413, false)
        break
      end
      conn.msg_done, conn.nbody, conn.limit = done, 0, srv.max_body
      conn.expect, conn.continued = nil, nil
      local expect = headers.expect
      if expect and major == 1 and minor >= 1 and
         expect:lower() == "100-continue" then
        conn.expect = true
      end
      local q = url:find("?", 1, true)
      local req = setmetatable({
        method = method, url = url,
        path = q and url:sub(1, q - 1) or url,
        query = q and url:sub(q + 1) or nil,
        headers = headers,
        version = major == 1 and (minor == 1 and "1.1" or minor == 0 and
                  "1.0") or major .. "." .. minor,
        _conn = conn,
      }, Req)
      local res = setmetatable({ _conn = conn, _code = 200, _hs = "",
        _started = false, _done = false,
        _keep = keep, _v10 = minor == 0 and major == 1,
        _head = method == "HEAD" }, Res)
      conn.res = res
      local ok = run_handler(srv.handler, req, res, srv.on_error)
      if not res._done then
        if res._started then
          if ok and not conn.broken then res:finish()
          else conn.broken = true end
        else
          if conn.too_large then simple(conn, 413, false)
          elseif conn.bad then simple(conn, 400, false)
          elseif not ok then
            res._keep = keep and not conn.broken
            simple(conn, 500, res._keep)
          else res:finish() end
        end
      end
      if conn.broken or not res._keep then break end
      -- The rest of the body: read and dropped, unless the client waits
      -- for a 100 Continue it never got (then it may never send it).
      if not conn.msg_done then
        if conn.expect and not conn.continued then break end
        conn.deadline = now() + srv.timeout
        repeat local piece = pull(conn) until not piece
        if not conn.msg_done then break end
      end
    end
  end

  local function serve_conn(srv, c)
    local conn = conn_new(c, "request", srv.max_header)
    conn.srv = srv
    srv.conns[conn] = true
    srv.nconns = srv.nconns + 1
    local ok, err = pcall(serve_requests, srv, conn)
    srv.conns[conn] = nil
    srv.nconns = srv.nconns - 1
    if not conn.closed then c:close() end
    if srv.nconns == 0 and srv.drained then srv.drained:set() end
    if not ok then error(err, 0) end
  end

  local Server = {}
  Server.__index = Server

  function Server:sockname() return self.listener:sockname() end

  -- Stops accepting, closes the idle connections, lets the requests in
  -- flight finish (their connections close after the response), and
  -- returns once every connection has closed.
  function Server:close()
    if not self.closing then
      self.closing = true
      self.listener:close()
      for conn in pairs(self.conns) do
        if conn.idle then
          conn.closed = true
          conn.c:close()
        end
      end
    end
    if self.nconns > 0 and M.current() then
      self.drained = self.drained or M.event()
      self.drained:wait()
    end
    return true
  end
  Server.__close = Server.close

  function http.serve(host, port, handler, opts)
    if type(handler) ~= "function" and
       not (getmetatable(handler) or {}).__call then
      argerr(3, "serve", "handler function expected, got " .. type(handler))
    end
    if opts ~= nil and type(opts) ~= "table" then
      argerr(4, "serve", "options table expected, got " .. type(opts))
    end
    opts = opts or {}
    local srv = setmetatable({
      handler = handler, conns = {}, nconns = 0,
      max_header = num_opt(opts, "max_header", 16384, "serve") // 1,
      max_body = num_opt(opts, "max_body", 8 * 1024 * 1024, "serve"),
      timeout = num_opt(opts, "timeout", 10, "serve"),
      idle = num_opt(opts, "idle", 60, "serve"),
      on_error = opts.on_error or default_on_error,
    }, Server)
    if srv.max_header < 1 then srv.max_header = 1 end
    local l, msg, code = M.net.listen(host, port,
      { backlog = opts.backlog or 1024, tls = opts.tls })
    if not l then return nil, msg, code end
    srv.listener = l
    srv.task = spawn(function()
      while true do
        local c = l:accept()
        if not c then break end -- closed
        if srv.closing then c:close() break end
        spawn(serve_conn, srv, c)
      end
    end)
    return srv
  end

  -- Serves one connection over any object with the stream methods the
  -- server uses (recv, write, settimeout, setoption, shutdown, close), in
  -- the calling task: the fuzz target's way in (tests/fuzz/http.c).
  function http._serve_stream(c, handler, opts)
    local srv = setmetatable({ handler = handler, conns = {}, nconns = 0,
      max_header = opts.max_header or 16384, max_body = opts.max_body or
      8 * 1024 * 1024, timeout = 10, idle = 60, on_error = opts.on_error },
      Server)
    serve_conn(srv, c)
  end
end
