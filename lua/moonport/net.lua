-- moonport.net: mp.net, the Lua half of the socket API. Argument checks,
-- name resolution and the address loop of connect live here; the objects
-- and their IO are C (bindings/lsock.c, lstream.c, ludp.c, ldns.c). The chunk
-- returns a constructor that init.lua calls with the core table.
return function(core, M)
  local net = {}
  local addrs, unix_addr = core.net_addrs, core.net_unix_addr
  local tcp_connect, tcp_listen = core.net_connect, core.net_listen
  local mtype, fmt = math.type, string.format

  -- level: 3 (the default) blames the caller of the function that calls
  -- argerr; the check_* helpers below are one call deeper and pass 4.
  local function argerr(n, fname, msg, level)
    error(fmt("bad argument #%d to '%s' (%s)", n, fname, msg), level or 3)
  end

  local function check_host(host, n, fname)
    if type(host) ~= "string" then
      argerr(n, fname, "host string expected, got " .. type(host), 4)
    end
  end

  -- Ports are integers (or strings of digits); min is 1 for a peer.
  local function check_port(port, n, fname, min)
    if type(port) == "string" and port:match("^%d+$") then
      port = tonumber(port)
    end
    if mtype(port) ~= "integer" then
      argerr(n, fname, "port number expected, got " ..
             (mtype(port) or type(port)), 4)
    end
    if port < min or port > 65535 then
      argerr(n, fname, fmt("port out of range (%d..65535)", min), 4)
    end
    return port
  end

  local function check_opts(opts, n, fname)
    if opts == nil then return {} end
    if type(opts) ~= "table" then
      argerr(n, fname, "options table expected, got " .. type(opts), 4)
    end
    local t = opts.timeout
    if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0) then
      argerr(n, fname, "opts.timeout must be a non-negative number", 4)
    end
    local tls = opts.tls
    if tls ~= nil and tls ~= false and tls ~= true and type(tls) ~= "table"
    then
      argerr(n, fname, "opts.tls must be true or a table", 4)
    end
    return opts
  end

  -- TLS (bindings/ltls.c, docs/tls.md). Contexts are built once per set
  -- of options and shared while in use (weak cache).
  local tls_ctx, tls_start = core.tls_ctx, core.tls_start
  local ctxcache = setmetatable({}, { __mode = "v" })
  local hosts = setmetatable({}, { __mode = "k" }) -- stream -> connect host

  -- fresh: a server's own context (listen, settls) reads its files now,
  -- so settls picks up a certificate replaced at the same path.
  local function context(o, server, fname, argn, fresh)
    if not core.tls then
      return nil, fname .. ": TLS is not built in (no OpenSSL)", "ENOSYS"
    end
    if o == true then o = {} end
    if fresh then return tls_ctx(o, server, fname, argn) end
    local alpn = o.alpn
    if type(alpn) == "table" then alpn = table.concat(alpn, "\0") end
    local key = table.concat({ server and "S" or "C", tostring(o.cert),
      tostring(o.key), tostring(o.cafile), tostring(o.capath),
      tostring(o.verify), tostring(alpn) }, "\1")
    local c = ctxcache[key]
    if c then return c end
    local msg, code
    c, msg, code = tls_ctx(o, server, fname, argn)
    if c then ctxcache[key] = c end
    return c, msg, code
  end

  local function check_timeout(t, n, fname)
    if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0) then
      argerr(n, fname, "tls.timeout must be a non-negative number", 4)
    end
  end

  -- Client: the handshake under what is left of connect's timeout.
  local function client_tls(s, c, o, host, left)
    local name = o ~= true and o.servername or host
    if left then s:settimeout(left) end
    local ok, msg, code = tls_start(s, c, name, false, nil, true)
    if ok then
      s:settimeout(nil)
      hosts[s] = host
      return s
    end
    s:close()
    return nil, msg, code
  end

  -- Tries each address in turn; the timeout covers resolution and every
  -- attempt together.
  function net.connect(host, port, opts)
    check_host(host, 1, "connect")
    port = check_port(port, 2, "connect", 1)
    opts = check_opts(opts, 3, "connect")
    local timeout = opts.timeout
    local start = timeout and M.now()
    local ctx, list, msg, code
    if opts.tls then
      ctx, msg, code = context(opts.tls, false, "connect", 3)
      if not ctx then return nil, msg, code end
    end
    if timeout then
      local ok, a, b, c = M.timeout(timeout, addrs, host, port, false)
      if not ok then
        return nil, fmt("connect %s:%d: timed out", host, port), "timeout"
      end
      list, msg, code = a, b, c
    else
      list, msg, code = addrs(host, port, false)
    end
    if not list then return nil, msg, code end
    for _, a in ipairs(list) do
      local left = timeout and math.max(0, timeout - (M.now() - start))
      local s
      s, msg, code = tcp_connect(a.sa, left)
      if s then
        if opts.tls then
          left = timeout and math.max(0, timeout - (M.now() - start))
          return client_tls(s, ctx, opts.tls, host, left)
        end
        hosts[s] = host
        return s
      end
      if code == "timeout" then break end
    end
    return nil, msg, code
  end

  -- Listens on the first address the host resolves to ("*" or "" for
  -- every local address).
  function net.listen(host, port, opts)
    if host == nil then host = "*" end
    check_host(host, 1, "listen")
    port = check_port(port, 2, "listen", 0)
    opts = check_opts(opts, 3, "listen")
    local backlog = opts.backlog or 511
    if mtype(backlog) ~= "integer" or backlog < 1 then
      argerr(3, "listen", "opts.backlog must be a positive integer")
    end
    local reuseaddr = opts.reuseaddr
    if reuseaddr == nil then reuseaddr = true end
    local ctx
    if opts.tls then
      check_timeout(opts.tls ~= true and opts.tls.timeout, 3, "listen")
      ctx, msg, code = context(opts.tls, true, "listen", 3, true)
      if not ctx then return nil, msg, code end
    end
    local list, msg, code = addrs(host, port, true)
    if not list then return nil, msg, code end
    local s
    for _, a in ipairs(list) do
      s, msg, code = tcp_listen(a.sa, math.min(backlog, 65535),
                                opts.reuseport and true or false,
                                reuseaddr and true or false)
      if s then
        if ctx then core.tls_server(s, ctx, opts.tls.timeout) end
        return s
      end
    end
    return nil, msg, code
  end

  function net.connect_unix(path, opts)
    check_host(path, 1, "connect_unix")
    opts = check_opts(opts, 2, "connect_unix")
    local sa, msg, code = unix_addr(path)
    if not sa then return nil, "connect " .. msg, code end
    return tcp_connect(sa, opts.timeout)
  end

  -- The socket file is not removed on close (as with every Unix server):
  -- remove a stale one before listening again.
  function net.listen_unix(path, opts)
    check_host(path, 1, "listen_unix")
    opts = check_opts(opts, 2, "listen_unix")
    local sa, msg, code = unix_addr(path)
    if not sa then return nil, "listen " .. msg, code end
    local backlog = opts.backlog or 511
    if mtype(backlog) ~= "integer" or backlog < 1 then
      argerr(2, "listen_unix", "opts.backlog must be a positive integer")
    end
    return tcp_listen(sa, math.min(backlog, 65535), false, false)
  end

  function net.resolve(host)
    check_host(host, 1, "resolve")
    local list, msg, code = addrs(host, 0, false)
    if not list then return nil, msg, code end
    local out = {}
    for i, a in ipairs(list) do
      out[i] = { addr = a.addr, family = a.family }
    end
    return out
  end

  -- mp.net.wrap(fd): a server, stream or udp object over an inherited
  -- descriptor (bindings/lstream.c), which it then owns.
  net.wrap = core.net_wrap

  -- mp.net.udp([host, port]): unbound (IPv4) without arguments.
  function net.udp(host, port)
    if host == nil and port == nil then return core.net_udp(nil) end
    check_host(host, 1, "udp")
    port = check_port(port, 2, "udp", 0)
    local list, msg, code = addrs(host, port, true)
    if not list then return nil, msg, code end
    return core.net_udp(list[1].sa)
  end

  -- stream:starttls(opts): the server role for a stream from accept
  -- (or opts.server), else the client role checking the host given to
  -- connect (or opts.servername).
  net.tls = core.tls -- built with TLS (MP_WITH_TLS)
  local stream = core.tls_stream_methods
  if stream then
    function stream.starttls(self, o)
      if o == nil then o = {} end
      if type(o) ~= "table" then
        argerr(2, "starttls", "options table expected, got " .. type(o))
      end
      check_timeout(o.timeout, 2, "starttls")
      local server = o.server
      if server == nil then server = core.tls_accepted(self) end
      local c, msg, code = context(o, server, "starttls", 2)
      if not c then return nil, msg, code end
      return tls_start(self, c, o.servername or hosts[self], server,
                       o.timeout)
    end
    function core.tls_server_methods.settls(self, o)
      if type(o) ~= "table" then
        argerr(2, "settls", "options table expected, got " .. type(o))
      end
      check_timeout(o.timeout, 2, "settls")
      local c, msg, code = context(o, true, "settls", 2, true)
      if not c then return nil, msg, code end
      core.tls_server(self, c, o.timeout)
      return true
    end
  end

  local udp = core.net_udp_methods
  local raw_sendto = udp._sendto
  udp._sendto = nil

  -- Sends to the first address of the socket's family.
  function udp.sendto(self, data, host, port)
    if type(data) ~= "string" then
      argerr(2, "sendto", "string expected, got " .. type(data))
    end
    check_host(host, 3, "sendto")
    port = check_port(port, 4, "sendto", 1)
    local list, msg, code = addrs(host, port, false)
    if not list then return nil, msg, code end
    local ok
    for _, a in ipairs(list) do
      ok, msg, code = raw_sendto(self, data, a.sa)
      if ok or (code ~= "EAFNOSUPPORT" and code ~= "EINVAL") then
        return ok, msg, code
      end
    end
    return nil, msg, code
  end

  return net
end
