-- moonport.http_client: mp.http.request and mp.http.get, the client of
-- mp.http: URLs, a pool of idle connections per origin, requests over
-- the connections of http_wire.lua (a pooled one the server closed is
-- retried once), streamed responses and redirects. The chunk returns a
-- constructor that http.lua calls with the mp.http table (which it
-- fills), the shared parts and the module.
return function(http, wire, M)
  local now = M.now
  local fmt, concat = string.format, table.concat
  local type, tostring, tonumber, pairs, ipairs, setmetatable, pcall =
    type, tostring, tonumber, pairs, ipairs, setmetatable, pcall
  local argerr, num_opt = wire.argerr, wire.num_opt
  local conn_new, step, pull = wire.conn_new, wire.step, wire.pull
  local body_new, body_read = wire.body_new, wire.body_read
  local bad_token = wire.bad_token

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

  -- (level 5: the caller of request, past request_head and exchange)
  local function add_header(t, name, v)
    v = tostring(v)
    if bad_token(v) then error("bad header value in opts.headers", 5) end
    t[#t + 1] = name .. ": " .. v .. "\r\n"
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
          for _, v in ipairs(value) do add_header(t, name, v) end
        else
          add_header(t, name, value)
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

  http.parse_url = parse_url
end
