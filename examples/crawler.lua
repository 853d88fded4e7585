-- crawler.lua: a polite crawler of a small local site. It starts the site
-- itself (HTTP/1.0 on 127.0.0.1, a free port), then crawls it from /p1,
-- following links, with at most MAX_CONN requests in flight (a
-- semaphore) and at most RATE requests a second (a ticker); mp.scope
-- waits for every page. Exits with an error if a page is missed or a
-- limit is broken.
--
--   moonport examples/crawler.lua
local mp = require "moonport"

local PAGES, MAX_CONN, RATE = 60, 4, 200

-- The site: page i links to 2i and 2i+1 (so every page is reachable from
-- /p1) and to one more page, already seen or not.
local function page(i)
  local links = {}
  for _, j in ipairs { 2 * i, 2 * i + 1, i * 7 % PAGES + 1 } do
    if j <= PAGES then
      links[#links + 1] = ('<a href="/p%d">page %d</a>'):format(j, j)
    end
  end
  return ("<h1>page %d</h1>\n%s\n"):format(i, table.concat(links, "\n"))
end

local active, peak = 0, 0 -- requests the site serves at once

local function serve(c)
  active = active + 1
  peak = math.max(peak, active)
  local line = c:read("l") or ""
  repeat local h = c:read("l") until not h or h == "" or h == "\r"
  local i = tonumber(line:match("^GET /p(%d+) "))
  mp.sleep(0.02) -- the site takes its time
  if i and i >= 1 and i <= PAGES then
    local body = page(i)
    c:write("HTTP/1.0 200 OK\r\nContent-Length: ", #body, "\r\n\r\n", body)
  else
    c:write("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
  end
  c:close()
  active = active - 1
end

mp.run(function()
  local srv = assert(mp.net.listen("127.0.0.1", 0))
  local host, port = srv:sockname()
  local site = mp.spawn(function()
    while true do
      local c = srv:accept()
      if not c then return end -- closed
      mp.spawn(serve, c)
    end
  end)

  local slots = mp.semaphore(MAX_CONN)
  local pace = mp.ticker(1 / RATE)

  -- One request: a slot first, then the next tick of the pace.
  local function get(path)
    return slots:with(function()
      pace:next()
      local s = assert(mp.net.connect(host, port))
      s:write("GET ", path, " HTTP/1.0\r\nHost: ", host, "\r\n\r\n")
      local resp = assert(s:read("a"))
      s:close()
      local status, body = resp:match("^HTTP/1%.%d (%d+).-\r\n\r\n(.*)$")
      assert(status == "200", path .. ": " .. tostring(status))
      return body
    end)
  end

  local seen, fetched = { ["/p1"] = true }, 0
  local t0 = mp.now()
  mp.scope(function(scope)
    local function crawl(path)
      local body = get(path)
      fetched = fetched + 1
      for link in body:gmatch('href="(/p%d+)"') do
        if not seen[link] then
          seen[link] = true
          scope:spawn(crawl, link)
        end
      end
    end
    scope:spawn(crawl, "/p1")
  end)
  local elapsed = mp.now() - t0
  pace:close()
  srv:close()
  site:join()

  print(("crawled %d pages in %.2f s: at most %d requests at once "
         .. "(limit %d), %.0f requests/s (limit %d)")
        :format(fetched, elapsed, peak, MAX_CONN, fetched / elapsed, RATE))
  assert(fetched == PAGES, "pages missed")
  assert(peak <= MAX_CONN, "more requests at once than the semaphore allows")
  -- The ticker lets one request through per tick, the first after 1/RATE.
  assert(elapsed >= PAGES / RATE * 0.99, "faster than the rate limit")
end)
