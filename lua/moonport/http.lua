-- moonport.http: mp.http, an HTTP/1.1 server and client in sequential
-- Lua. The parser is C (bindings/lhttp.c over libhttp-parser): it builds
-- the header table and decodes bodies; this file is the policy around it
-- (keep-alive, limits, deadlines, pooling, redirects). The chunk returns a
-- constructor that init.lua calls with the core table and the module.
return function(core, M)
  local http = {}
  local new_parser = core.http_parser
  local spawn, now = M.spawn, M.now
  local fmt, concat, byte = string.format, table.concat, string.byte
  local type, tostring, tonumber, pairs, ipairs, setmetatable, pcall =
    type, tostring, tonumber, pairs, ipairs, setmetatable, pcall
  local mtype = math.type

  local RECV = 65536

  local REASON = {
    [100] = "Continue", [101] = "Switching Protocols",
    [200] = "OK", [201] = "Created", [202] = "Accepted",
    [204] = "No Content", [206] = "Partial Content",
    [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
    [304] = "Not Modified", [307] = "Temporary Redirect",
    [308] = "Permanent Redirect",
    [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
    [404] = "Not Found", [405] = "Method Not Allowed",
    [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone",
    [411] = "Length Required", [413] = "Content Too Large",
    [414] = "URI Too Long", [415] = "Unsupported Media Type",
    [417] = "Expectation Failed", [422] = "Unprocessable Content",
    [429] = "Too Many Requests",
    [431] = "Request Header Fields Too Large",
    [500] = "Internal Server Error", [501] = "Not Implemented",
    [502] = "Bad Gateway", [503] = "Service Unavailable",
    [504] = "Gateway Timeout",
  }
  local STATUS_LINE = setmetatable({}, { __index = function(t, code)
    local line = fmt("HTTP/1.1 %d %s\r\n", code, REASON[code] or "Unknown")
    t[code] = line
    return line
  end })

  local function argerr(n, fname, msg)
    error(fmt("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
  end

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
  -- A connection: the stream, its parser, the bytes received and not yet
  -- parsed (buf from pos), and the deadline of what it waits for.
  local function conn_new(c, kind, max_header)
    return { c = c, p = new_parser(kind, max_header), buf = "", pos = 1 }
  end

  -- Parses until an event: "head" (then: done, headers, method or
  -- status, url, major, minor, keep_alive, content_length, chunked),
  -- "done", or "more" with a body piece; receives when the bytes run out.
  -- nil, msg, code[, reason] on failure (the peer's close between
  -- messages is "EOF"). The receive waits for conn.wait seconds (a
  -- keep-alive connection's idle time; the deadline conn.wait_then
  -- seconds away starts with its first byte) or until conn.deadline.
  local function step(conn)
    while true do
      if conn.pos > #conn.buf then
        local c = conn.c
        local wait = conn.wait
        if wait then
          if conn.tmo ~= wait then
            c:settimeout(wait)
            conn.tmo = wait
          end
        elseif conn.deadline then
          local left = conn.deadline - now()
          if left <= 0 then return nil, "HTTP: timed out", "timeout" end
          c:settimeout(left)
          conn.tmo = nil
        end
        local data, msg, code = c:recv(RECV)
        if not data then
          if code ~= "EOF" then return nil, msg, code end
          local ev, m2, c2, r2 = conn.p:finish()
          if ev == "done" then return ev end
          if ev then return nil, msg, code end -- between messages
          return nil, m2, c2, r2
        end
        conn.rx = true
        if wait then -- the header deadline starts now
          conn.wait = nil
          conn.deadline = now() + conn.wait_then
        end
        conn.buf, conn.pos = data, 1
      end
      local ev, nxt, x, h, m, u, ma, mi, k, cl, ch =
        conn.p:execute(conn.buf, conn.pos)
      if not ev then return nil, nxt, x, h end
      conn.pos = nxt
      if ev ~= "more" or x then return ev, x, h, m, u, ma, mi, k, cl, ch end
    end
  end

  -- The next piece of the current message's body, nil at its end, or
  -- nil, msg, code. conn.limit bounds the total.
  local function pull(conn)
    if conn.msg_done then return nil end
    while true do
      local ev, piece, code = step(conn)
      if not ev then
        conn.broken = true
        if code == "EHTTP" then conn.bad = true end
        return nil, piece, code
      end
      if ev == "done" then conn.msg_done = true end
      if piece then
        local n = conn.nbody + #piece
        conn.nbody = n
        if conn.limit and n > conn.limit then
          conn.broken, conn.too_large = true, true
          return nil, "HTTP: body larger than " .. conn.limit .. " bytes",
                 "EHTTP"
        end
        return piece
      end
      if conn.msg_done then return nil end
    end
  end

  ------------------------------------------------------------------------
  -- Body readers: the stream formats over a decoded body. src:pull()
  -- gives the pieces.
  local Body = {}
  Body.__index = Body

  local function body_new(pull_fn, src)
    return setmetatable({ pull = pull_fn, src = src, buf = "", pos = 1 },
                        Body)
  end

  -- true when bytes were added, false at the end, nil, msg, code.
  function Body:fill()
    if self.ended then return false end
    local piece, msg, code = self.pull(self.src)
    if not piece then
      if msg then return nil, msg, code end
      self.ended = true
      return false
    end
    if self.pos > #self.buf then
      self.buf = piece
    else
      self.buf = self.buf:sub(self.pos) .. piece
    end
    self.pos = 1
    return true
  end

  local EOB = "end of body"

  function Body:read1(f)
    if f == "a" then
      local parts = {}
      if self.pos <= #self.buf then parts[1] = self.buf:sub(self.pos) end
      self.buf, self.pos = "", 1
      while not self.ended do
        local piece, msg, code = self.pull(self.src)
        if piece then parts[#parts + 1] = piece
        elseif msg then
          self.buf = concat(parts) -- nothing lost
          return nil, msg, code
        else self.ended = true end
      end
      return concat(parts)
    elseif f == "l" or f == "L" then
      while true do
        local i = self.buf:find("\n", self.pos, true)
        if i then
          local line = self.buf:sub(self.pos, f == "l" and i - 1 or i)
          self.pos = i + 1
          return line
        end
        local ok, msg, code = self:fill()
        if ok == nil then return nil, msg, code end
        if not ok then
          if self.pos > #self.buf then return nil, EOB, "EOF" end
          local line = self.buf:sub(self.pos)
          self.buf, self.pos = "", 1
          return line
        end
      end
    elseif f == "n" then
      while #self.buf - self.pos < 200 do
        local ok, msg, code = self:fill()
        if ok == nil then return nil, msg, code end
        if not ok then break end
      end
      local s, e = self.buf:find("^%s*[%w%.%+%-]+", self.pos)
      if not s then
        if self.pos > #self.buf then return nil, EOB, "EOF" end
        return nil
      end
      self.pos = e + 1
      return tonumber((self.buf:sub(s, e)))
    else -- a count
      while #self.buf - self.pos + 1 < f do
        local ok, msg, code = self:fill()
        if ok == nil then return nil, msg, code end
        if not ok then
          if f == 0 or self.pos > #self.buf then return nil, EOB, "EOF" end
          break
        end
      end
      local s = self.buf:sub(self.pos, self.pos + f - 1)
      if #s < f then return nil, EOB, "EOF" end -- the bytes stay, as streams
      self.pos = self.pos + #s
      return s
    end
  end

  local function check_format(f, n, fname)
    if mtype(f) == "integer" then
      if f < 0 then argerr(n, fname, "invalid format") end
      return f
    end
    if type(f) == "string" then
      local c = f:match("^%*?([alLn])")
      if c then return c end
    end
    argerr(n, fname, "invalid format")
  end

  -- read(...): the results, or the results so far then nil, msg, code.
  local function body_read(b, fname, ...)
    local n = select("#", ...)
    if n == 0 then return b:read1("l") end
    local out = {}
    for i = 1, n do
      local f = check_format((select(i, ...)), i + 1, fname)
      local v, msg, code = b:read1(f)
      if v == nil then
        out[i] = nil
        if msg then out[i + 1], out[i + 2] = msg, code end
        return table.unpack(out, 1, msg and i + 2 or i)
      end
      out[i] = v
    end
    return table.unpack(out, 1, n)
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

  -- Header values must not hold control characters (a tab aside): a
  -- CR or LF would let a value inject headers. Values seen valid are
  -- remembered (most are constants), up to a bound.
  local good, ngood = {}, 0
  local function bad_token(s)
    if good[s] then return false end
    if s:find("[%z\1-\8\10-\31\127]") then return true end
    if ngood < 1024 then
      good[s], ngood = true, ngood + 1
    end
    return false
  end

  -- Valid header names, lower-cased (names are mostly constants: up to
  -- a bound, they are remembered).
  local nnames = 0
  local NAMES = setmetatable({}, { __index = function(t, name)
    if name == "" or name:find("[^%w!#$%%&'*+.^_`|~-]") then return false end
    local lname = name:lower()
    if nnames < 1024 then
      t[name], nnames = lname, nnames + 1
    end
    return lname
  end })

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

  local function num_opt(opts, name, default, fname)
    local v = opts[name]
    if v == nil then return default end
    if type(v) ~= "number" or v ~= v or v < 0 then
      error(fmt("bad argument #4 to '%s' (opts.%s must be a non-negative "
                .. "number)", fname, name), 3)
    end
    return v
  end

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

  ------------------------------------------------------------------------
  -- Client side.

  -- scheme, host, port, target ("/path?query"), the Host header.
  local function parse_url(url)
    local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
    if not scheme then return nil, "HTTP: not an absolute URL: " .. url end
    scheme = scheme:lower()
    if scheme ~= "http" and scheme ~= "https" then
      return nil, "HTTP: unsupported scheme: " .. scheme
    end
    local auth = rest:match("^[^/?#]*")
    local target = rest:sub(#auth + 1):gsub("#.*", "")
    if target == "" then target = "/"
    elseif target:byte(1) == 63 then target = "/" .. target end -- "?q"
    auth = auth:gsub("^.*@", "") -- user info is not sent
    local host, port = auth:match("^%[([^%]]+)%]:?(%d*)$")
    if not host then host, port = auth:match("^([^:]*):?(%d*)$") end
    if not host or host == "" then
      return nil, "HTTP: no host in URL: " .. url
    end
    local default = scheme == "https" and 443 or 80
    port = tonumber(port) or default
    if port < 1 or port > 65535 then
      return nil, "HTTP: bad port in URL: " .. url
    end
    local hosthdr = auth
    if port == default then hosthdr = auth:gsub(":%d*$", "") end
    return { scheme = scheme, host = host, port = port, target = target,
             hosthdr = hosthdr, key = scheme .. "://" .. host .. ":" .. port }
  end

  -- Resolves a Location against the URL it came from.
  local function resolve(base, loc)
    if loc:match("^%a[%w+.-]*://") then return loc end
    local u = parse_url(base)
    local origin = u.scheme .. "://" .. u.hosthdr
    if loc:sub(1, 2) == "//" then return u.scheme .. ":" .. loc end
    if loc:sub(1, 1) == "/" then return origin .. loc end
    local dir = u.target:gsub("[?#].*", ""):gsub("[^/]*$", "")
    return origin .. dir .. loc
  end

  -- Idle connections per scheme://host:port, at most pool_size each.
  local pools = {}
  http.pool_size = 8

  local function pool_get(key)
    local list = pools[key]
    while list and #list > 0 do
      local conn = list[#list]
      list[#list] = nil
      return conn
    end
  end

  local function pool_put(conn)
    local list = pools[conn.key]
    if not list then
      list = {}
      pools[conn.key] = list
    end
    if #list >= http.pool_size or conn.pos <= #conn.buf then
      conn.c:close()
      return
    end
    list[#list + 1] = conn
  end

  -- Closes every pooled connection (a script about to end, a test).
  function http.close_idle()
    for key, list in pairs(pools) do
      for _, conn in ipairs(list) do conn.c:close() end
      pools[key] = nil
    end
  end

  local function timed_out(deadline)
    return deadline - now() <= 0
  end

  local function connect(u, deadline, opts)
    if timed_out(deadline) then return nil, "HTTP: timed out", "timeout" end
    local copts = { timeout = deadline - now() }
    if u.scheme == "https" then copts.tls = opts.tls or true end
    local c, msg, code = M.net.connect(u.host, u.port, copts)
    if not c then return nil, msg, code end
    c:setoption("nodelay", true)
    return c
  end

  local Response = {}
  Response.__index = Response

  function Response:read(...)
    return body_read(self._b, "read", ...)
  end

  -- Drops the rest of the body: the connection goes back to the pool
  -- when little is left, else it is closed.
  function Response:close()
    local conn = self._conn
    if not conn or self._closed then return true end
    self._closed = true
    if not conn.msg_done and not conn.broken then
      conn.limit = conn.nbody + 65536
      repeat local piece = pull(conn) until not piece
    end
    if conn.msg_done and not conn.broken and self._keep then
      pool_put(conn)
    else
      conn.c:close()
    end
    return true
  end

  -- The client's body source: returns the connection to the pool at the
  -- end of the body.
  local function res_pull(res)
    local conn = res._conn
    local piece, msg, code = pull(conn)
    if not piece and not res._closed then
      if msg then res._closed = true conn.c:close()
      elseif conn.msg_done then res:close() end
    end
    return piece, msg, code
  end

  local function request_head(method, u, headers, body)
    local t = { method, " ", u.target, " HTTP/1.1\r\n" }
    local has = {}
    if headers then
      for name, value in pairs(headers) do
        if type(name) ~= "string" or name:find("[%s:%c]") then
          error("bad header name in opts.headers", 4)
        end
        if type(value) == "table" then
          for _, v in ipairs(value) do
            v = tostring(v)
            if bad_token(v) then
              error("bad header value in opts.headers", 4)
            end
            t[#t + 1] = name .. ": " .. v .. "\r\n"
          end
        else
          value = tostring(value)
          if bad_token(value) then
            error("bad header value in opts.headers", 4)
          end
          t[#t + 1] = name .. ": " .. value .. "\r\n"
        end
        has[name:lower()] = true
      end
    end
    if not has.host then t[#t + 1] = "Host: " .. u.hosthdr .. "\r\n" end
    if not has["user-agent"] then t[#t + 1] = "User-Agent: moonport\r\n" end
    if type(body) == "string" then
      if not has["content-length"] then
        t[#t + 1] = "Content-Length: " .. #body .. "\r\n"
      end
    elseif type(body) == "function" then
      t[#t + 1] = "Transfer-Encoding: chunked\r\n"
    elseif method == "POST" or method == "PUT" or method == "PATCH" then
      t[#t + 1] = "Content-Length: 0\r\n"
    end
    t[#t + 1] = "\r\n"
    return concat(t)
  end

  -- One request and its response's head on a pooled or new connection.
  -- A pooled connection the server closed meanwhile is retried once on a
  -- new one, unless the body was a function (it cannot be replayed).
  local function exchange(method, u, opts, body, deadline)
    local head = request_head(method, u, opts.headers, body)
    for attempt = 1, 2 do
      local conn = pool_get(u.key)
      local reused = conn ~= nil
      if not conn then
        local c, msg, code = connect(u, deadline, opts)
        if not c then return nil, msg, code end
        conn = conn_new(c, "response", 64 * 1024)
        conn.key = u.key
      end
      conn.deadline, conn.rx, conn.broken = deadline, false, false
      local c = conn.c
      c:settimeout(math.max(0, deadline - now()))
      local ok, msg, code
      if type(body) == "string" and #body < 16384 then
        ok, msg, code = c:write(head, body)
      else
        ok, msg, code = c:write(head)
        if ok and type(body) == "string" then ok, msg, code = c:write(body)
        elseif ok and type(body) == "function" then
          while ok do
            local done, chunk = pcall(body)
            if not done then -- the connection is half-written: drop it
              c:close()
              error(chunk, 0)
            end
            if chunk == nil then
              ok, msg, code = c:write("0\r\n\r\n")
              break
            end
            if type(chunk) ~= "string" and type(chunk) ~= "number" then
              c:close()
              error("opts.body returned a " .. type(chunk) ..
                    " (string or nil expected)", 0)
            end
            chunk = tostring(chunk)
            if #chunk > 0 then
              ok, msg, code = c:write(fmt("%x\r\n", #chunk), chunk, "\r\n")
            end
          end
        end
      end
      local ev, piece, reason
      if ok then
        while true do
          conn.p:skipbody(method == "HEAD")
          ev, msg, code, reason = step(conn)
          if ev ~= "head" then break end
          local _, status = conn.p:info()
          conn.msg_done = msg
          if status >= 200 or status == 101 then break end
          repeat ev, piece = step(conn) until ev ~= "more" -- a 1xx: skip
          if not ev then break end
        end
      end
      if ev == "head" then return conn end
      c:close()
      if code == "EHTTP" and reason then msg = msg .. " (" .. reason .. ")" end
      if not (reused and not conn.rx and attempt == 1 and
              type(body) ~= "function" and code ~= "timeout") then
        return nil, msg, code
      end
    end
  end

  local REDIRECT = { [301] = true, [302] = true, [303] = true,
                     [307] = true, [308] = true }

  function http.request(opts)
    if type(opts) ~= "table" then
      argerr(1, "request", "options table expected, got " .. type(opts))
    end
    local url = opts.url
    if type(url) ~= "string" then argerr(1, "request", "opts.url expected") end
    local method = opts.method or "GET"
    if type(method) ~= "string" or not method:match("^[%w!#$%%&'*+.^_`|~-]+$")
    then
      argerr(1, "request", "opts.method must be a method name")
    end
    local body = opts.body
    if body ~= nil and type(body) ~= "string" and type(body) ~= "function" then
      argerr(1, "request", "opts.body must be a string or a function")
    end
    if opts.headers ~= nil and type(opts.headers) ~= "table" then
      argerr(1, "request", "opts.headers must be a table")
    end
    local timeout = num_opt(opts, "timeout", 30, "request")
    local redirects = num_opt(opts, "redirects", 0, "request")
    local deadline = now() + timeout
    for hop = 0, redirects do
      local u, perr = parse_url(url)
      if not u then return nil, perr, "EINVAL" end
      local conn, msg, code = exchange(method, u, opts, body, deadline)
      if not conn then return nil, msg, code end
      local headers, status, _, major, minor, keep = conn.p:info()
      conn.nbody, conn.limit = 0, nil
      local res = setmetatable({ status = status, headers = headers,
        version = major .. "." .. minor, url = url, _conn = conn,
        _keep = keep }, Response)
      res._b = body_new(res_pull, res)
      local loc = headers.location
      if hop < redirects and REDIRECT[status] and type(loc) == "string" and
         (type(body) ~= "function" or status == 303) then
        res:close()
        url = resolve(url, loc)
        if status == 303 or ((status == 301 or status == 302) and
                             method == "POST") then
          if method ~= "HEAD" then method = "GET" end
          body = nil
        end
      else
        if not opts.stream then
          local b, rmsg, rcode = res._b:read1("a")
          if not b then return nil, rmsg, rcode end
          res.body = b
        end
        return res
      end
    end
  end

  function http.get(url, opts)
    if type(url) ~= "string" then
      argerr(1, "get", "URL string expected, got " .. type(url))
    end
    if opts ~= nil and type(opts) ~= "table" then
      argerr(2, "get", "options table expected, got " .. type(opts))
    end
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    o.url, o.stream = url, nil
    local res, msg, code = http.request(o)
    if not res then return nil, msg, code end
    return res.body, res.status, res.headers
  end

  -- The parser itself: p:execute(s, i), p:finish(), p:info() (see
  -- bindings/lhttp.c), for code that frames HTTP on its own.
  http.parser = new_parser

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

  http.parse_url = parse_url
  http.reasons = REASON
  return http
end
