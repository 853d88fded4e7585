-- moonport.http: mp.http, an HTTP/1.1 server and client in sequential
-- Lua. The parser is C (bindings/lhttp.c over libhttp-parser): it builds
-- the header table and decodes bodies; the Lua files are the policy
-- around it (keep-alive, limits, deadlines, pooling, redirects), in three
-- parts: http_wire.lua (what both sides share: the connection, body
-- readers, header and option checks), http_server.lua and
-- http_client.lua. This one assembles the mp.http table. The chunk
-- returns a constructor that init.lua calls with the core table and the
-- module.
return function(core, M)
  local http = {}
  local wire = require("moonport.http_wire")(core, M)
  require("moonport.http_server")(http, wire, M)
  require("moonport.http_client")(http, wire, M)

  -- The parser itself: p:execute(s, i), p:finish(), p:info() (see
  -- bindings/lhttp.c), for code that frames HTTP on its own.
  http.parser = core.http_parser

  http.reasons = wire.REASON
  return http
end
