/* http.c: libFuzzer target for mp.http's request path: the parser
 * (bindings/lhttp.c over libhttp-parser) and the server's policy around it
 * (lua/moonport/http_server.lua).
 *
 * 1. The parser: the input is parsed as a stream of requests twice, once
 *    whole and once cut into pieces (sizes from the input), as a socket
 *    would deliver it. Both runs must give the same events: each head's
 *    method, url, version, framing and header table (lower-case string
 *    names; string values, set-cookie an array), the same body bytes, and
 *    a failure at the same point (the body of a message that fails is not
 *    compared: a call that fails drops what it decoded). Positions stay
 *    in bounds and every call either makes progress or asks for more.
 * 2. The server: the same bytes arrive on a fake stream (no socket: recv
 *    hands out the pieces, write collects) served by mp.http's connection
 *    loop with a handler that reads the body in formats chosen by the
 *    path. It must end without a Lua error, and what it wrote must be a
 *    series of well-formed responses (status line, headers, a body framed
 *    by Content-Length or chunks), no more than the requests it parsed.
 *
 * Input: a cut seed byte, a limits byte, then the request bytes. */
#include <string.h>

#include "fuzz.h"

static const char *const SRC =
  "local mp = mp\n"
  "local http = mp.http\n"
  "local function cuts(seed, n)\n"
  "  local t, i, x = {}, 1, seed\n"
  "  while i <= n do\n"
  "    x = (x * 1103515245 + 12345) % 2147483648\n"
  "    local k = 1 + (x >> 8) % (seed % 7 == 0 and 4 or 97)\n"
  "    t[#t + 1] = { i, math.min(n, i + k - 1) }\n"
  "    i = i + k\n"
  "  end\n"
  "  return t\n"
  "end\n"
  "local function check_headers(h)\n"
  "  for k, v in pairs(h) do\n"
  "    assert(type(k) == 'string' and k == k:lower(), 'header name')\n"
  "    if k == 'set-cookie' then\n"
  "      assert(type(v) == 'table' and #v >= 1, 'set-cookie array')\n"
  "      for _, c in ipairs(v) do assert(type(c) == 'string') end\n"
  "    else assert(type(v) == 'string', 'header value') end\n"
  "  end\n"
  "end\n"
  "local function ser(h)\n"
  "  local ks = {}\n"
  "  for k in pairs(h) do ks[#ks + 1] = k end\n"
  "  table.sort(ks)\n"
  "  for i, k in ipairs(ks) do\n"
  "    local v = h[k]\n"
  "    if type(v) == 'table' then v = table.concat(v, '\\0') end\n"
  "    ks[i] = k .. '=' .. v\n"
  "  end\n"
  "  return table.concat(ks, '\\n')\n"
  "end\n"
  /* Parses the pieces; returns the event log. */
  "local function parse(data, pieces, maxh)\n"
  "  local p = http.parser('request', maxh)\n"
  "  local log, body = {}, {}\n"
  "  local function flush()\n"
  "    if #body > 0 then log[#log + 1] = 'body ' .. table.concat(body) end\n"
  "    body = {}\n"
  "  end\n"
  "  for _, pc in ipairs(pieces) do\n"
  "    local s = data:sub(pc[1], pc[2])\n"
  "    local i = 1\n"
  "    while true do\n"
  "      local ev, nxt, a, h, m, u, ma, mi, k, cl, ch = p:execute(s, i)\n"
  "      if not ev then\n"
  "        assert(a == 'EHTTP' and type(nxt) == 'string', 'failure')\n"
  /* the body bytes of a failing call are dropped: so are earlier ones */
  "        while log[#log] and log[#log]:find('^body') do\n"
  "          log[#log] = nil\n"
  "        end\n"
  "        log[#log + 1] = 'error'\n"
  "        return log\n"
  "      end\n"
  "      assert(math.type(nxt) == 'integer' and nxt >= i and\n"
  "             nxt <= #s + 1, 'position')\n"
  "      if ev == 'head' then\n"
  "        flush()\n"
  "        check_headers(h)\n"
  "        log[#log + 1] = table.concat({ 'head', m, u, ma, mi,\n"
  "          tostring(k), tostring(cl), tostring(ch), ser(h) }, ' ')\n"
  "        if a then log[#log + 1] = 'done' end\n"
  "      elseif ev == 'done' then\n"
  "        if a then body[#body + 1] = a end\n"
  "        flush()\n"
  "        log[#log + 1] = 'done'\n"
  "      else\n"
  "        if a then body[#body + 1] = a end\n"
  "        assert(nxt == #s + 1, 'more before the end')\n"
  "      end\n"
  "      i = nxt\n"
  "      if i > #s then break end\n"
  "    end\n"
  "  end\n"
  "  flush()\n"
  "  return log\n"
  "end\n"
  /* The fake stream the server reads. */
  "local Fake = {}\n"
  "Fake.__index = Fake\n"
  "function Fake:recv(n)\n"
  "  if self.closed then return nil, 'closed', 'closed' end\n"
  "  self.i = self.i + 1\n"
  "  local pc = self.pieces[self.i]\n"
  "  if not pc then return nil, 'end of stream', 'EOF' end\n"
  "  return self.data:sub(pc[1], pc[2])\n"
  "end\n"
  "function Fake:write(...)\n"
  "  if self.closed then return nil, 'closed', 'closed' end\n"
  "  for i = 1, select('#', ...) do\n"
  "    self.out[#self.out + 1] = tostring((select(i, ...)))\n"
  "  end\n"
  "  return self\n"
  "end\n"
  "function Fake:settimeout() return self end\n"
  "function Fake:setoption() return true end\n"
  "function Fake:shutdown() return true end\n"
  "function Fake:close() self.closed = true return true end\n"
  "local function handler(req, res)\n"
  "  local p = req.path\n"
  "  if p:find('a') then res:finish(req.body)\n"
  "  elseif p:find('l') then\n"
  "    for _ = 1, 50 do\n"
  "      local l = req:read('l')\n"
  "      if not l then break end\n"
  "      res:write(l)\n"
  "    end\n"
  "    res:finish()\n"
  "  elseif p:find('n') then res:finish(tostring(req:read('n', 3)))\n"
  "  elseif p:find('e') then error('on purpose')\n"
  "  elseif p:find('s') then res:status(204):finish()\n"
  "  else res:header('X-Q', req.query or ''):finish(req.method) end\n"
  "end\n"
  /* Checks the server's output: responses, each framed. */
  "local function responses(out, methods)\n"
  "  local i, n = 1, 0\n"
  "  while i <= #out do\n"
  "    local e = out:find('\\r\\n\\r\\n', i, true)\n"
  "    assert(e, 'unterminated head')\n"
  "    local head = out:sub(i, e + 1)\n"
  "    local code = head:match('^HTTP/1%.1 (%d%d%d) [^\\r\\n]*\\r\\n')\n"
  "    assert(code, 'status line: ' .. head)\n"
  "    i = e + 4\n"
  "    if code ~= '100' then\n"
  "      n = n + 1\n"
  "      local len = head:match('\\r\\n[Cc]ontent%-[Ll]ength: (%d+)\\r\\n')\n"
  "      if methods[n] == 'HEAD' or code == '204' then\n"
  "      elseif head:find('Transfer-Encoding: chunked', 1, true) then\n"
  "        while true do\n"
  "          local sz, j = out:match('^(%x+)\\r\\n()', i)\n"
  "          assert(sz, 'chunk size')\n"
  "          sz = tonumber(sz, 16)\n"
  "          i = j + sz\n"
  "          assert(out:sub(i, i + 1) == '\\r\\n', 'chunk end')\n"
  "          i = i + 2\n"
  "          if sz == 0 then break end\n"
  "        end\n"
  "      elseif len then i = i + tonumber(len)\n"
  "      else i = #out + 1 end\n"
  "    end\n"
  "  end\n"
  "  assert(i == #out + 1, 'trailing bytes')\n"
  "  return n\n"
  "end\n"
  "return function(hdr, data)\n"
  "  local seed, lim = hdr:byte(1), hdr:byte(2)\n"
  "  local maxh = 64 + (lim & 15) * 256\n"
  "  local whole = parse(data, { { 1, #data } }, maxh)\n"
  "  local pieces = cuts(seed, #data)\n"
  "  local cut = parse(data, pieces, maxh)\n"
  "  local heads, methods = 0, {}\n"
  "  for i = 1, math.max(#whole, #cut) do\n"
  "    if whole[i] ~= cut[i] then\n"
  "      error(('event %d differs:\\n  whole: %s\\n  cut:   %s'):format(\n"
  "        i, tostring(whole[i]), tostring(cut[i])))\n"
  "    end\n"
  "    if whole[i]:find('^head') then\n"
  "      heads = heads + 1\n"
  "      methods[heads] = whole[i]:match('^head (%S+)')\n"
  "    end\n"
  "  end\n"
  "  local c = setmetatable({ data = data, pieces = pieces, i = 0,\n"
  "                          out = {} }, Fake)\n"
  "  http._serve_stream(c, handler, { max_header = maxh,\n"
  "    max_body = (lim >> 4) * 64, on_error = function() end })\n"
  "  assert(c.closed, 'the connection was not closed')\n"
  "  local n = responses(table.concat(c.out), methods)\n"
  "  assert(n <= heads + 1, 'more responses than requests')\n"
  "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  static int fn;
  if (!L) {
    L = fuzz_state();
    fn = fuzz_chunk(L, SRC);
  }
  if (size < 2 || size > 256 * 1024) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
  lua_pushlstring(L, (const char *)data, 2);
  lua_pushlstring(L, (const char *)data + 2, size - 2);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz http: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
