-- moonport.http_wire: what mp.http's server (http_server.lua) and client
-- (http_client.lua) share: a connection over the C parser (bindings/
-- lhttp.c) that receives and parses until an event, the body readers
-- over a decoded body, the status reasons, header name and value checks,
-- and argument and option checks. The chunk returns a constructor that
-- http.lua calls with the core table and the module; it returns the
-- parts as a table.
return function(core, M)
  local new_parser = core.http_parser
  local now = M.now
  local fmt, concat = string.format, table.concat
  local type, tonumber, setmetatable = type, tonumber, setmetatable
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

  local function argerr(n, fname, msg)
    error(fmt("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
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

  local function num_opt(opts, name, default, fname)
    local v = opts[name]
    if v == nil then return default end
    if type(v) ~= "number" or v ~= v or v < 0 then
      error(fmt("bad argument #4 to '%s' (opts.%s must be a non-negative "
                .. "number)", fname, name), 3)
    end
    return v
  end

  return {
    RECV = RECV, REASON = REASON, argerr = argerr,
    conn_new = conn_new, step = step, pull = pull,
    body_new = body_new, body_read = body_read,
    bad_token = bad_token, NAMES = NAMES, num_opt = num_opt,
  }
end
