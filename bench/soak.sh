#!/usr/bin/env bash
# bench/soak.sh: a soak run (not part of make test). A moonport process
# serves HTTP/1.1 to two wrk clients at once, one on keep-alive connections
# and one closing its connection after every request (churn: an accept and
# a close per request), while its own tasks write, read and remove files
# and run timers, timeouts and channels. Every 5 s the server's RSS and
# open descriptor count are sampled. After a warm-up both must stay flat:
# RSS may move by at most max(5%, 2 MiB) between the first loaded sample
# and the last, and once the clients stop the descriptor count must come
# back to what it was before the load. Prints the samples and a verdict
# (exit status 1 when not flat).
#
#   bench/soak.sh                 DURATION=60 by default
#   MOONPORT_BACKEND=epoll bench/soak.sh
set -u
cd "$(dirname "$0")/.."
MP=${MOONPORT:-./build/moonport}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-15} # first loaded sample that counts, in seconds
OUT=$(mktemp -d)
trap 'kill $srv 2>/dev/null; rm -rf "$OUT"' EXIT
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)"; exit 1; }

cat > "$OUT/server.lua" <<'LUA'
local mp = require "moonport"
local dir = arg[1]
local BODY = ("soak "):rep(40)
local function response(keep)
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
         .. #BODY .. (keep and "" or "\r\nConnection: close") .. "\r\n\r\n"
         .. BODY
end
local KEEP, CLOSE = response(true), response(false)

local function serve(c)
  c:settimeout(10)
  while true do
    local line = c:read("l")
    if not line then break end
    local keep = true
    while true do
      local h = c:read("l")
      if not h then c:close() return end
      if h == "\r" or h == "" then break end
      if h:lower():find("^connection:%s*close") then keep = false end
    end
    if not c:write(keep and KEEP or CLOSE) or not keep then break end
  end
  c:close()
end

local srv = assert(mp.net.listen("127.0.0.1", 0, { backlog = 1024 }))
local _, port = srv:sockname()
mp.spawn(function()
  while true do
    local c = srv:accept()
    if not c then break end
    mp.spawn(serve, c)
  end
end)

-- Files: replace, read back, read by lines, remove, over and over.
for w = 1, 4 do
  mp.spawn(function()
    local n = 0
    while true do
      n = n + 1
      local p = ("%s/f%d_%d"):format(dir, w, n % 8)
      local data = ("%d %d\n"):format(w, n):rep(math.random(1, 2000))
      assert(mp.fs.writefile(p, data))
      assert(mp.fs.readfile(p) == data)
      local f = assert(mp.fs.open(p, "r"))
      for _ in f:lines() do end
      f:close()
      if n % 3 == 0 then assert(mp.fs.remove(p)) end
      mp.sleep(0.002)
    end
  end)
end
-- Timers, timeouts and channels.
local ch = mp.channel(4)
for t = 1, 50 do
  mp.spawn(function()
    while true do
      mp.sleep(math.random() * 0.02)
      mp.timeout(math.random() * 0.01, mp.sleep, math.random() * 0.02)
      if t % 2 == 0 then ch:send(t) else mp.timeout(0.01, ch.recv, ch) end
    end
  end)
end
io.stdout:write("port ", port, "\n")
io.stdout:flush()
LUA

mkdir "$OUT/files"
"$MP" "$OUT/server.lua" "$OUT/files" > "$OUT/server.out" 2> "$OUT/server.err" &
srv=$!
for _ in $(seq 50); do
  grep -q '^port' "$OUT/server.out" 2>/dev/null && break
  sleep 0.1
done
port=$(awk '/^port/ {print $2}' "$OUT/server.out")
[ -n "$port" ] || { echo "the server did not start"; cat "$OUT/server.err"; exit 1; }

rss() { awk '/^VmRSS/ {print $2}' "/proc/$srv/status"; }
nfd() { ls "/proc/$srv/fd" | wc -l; }
# Fewest descriptors over a second: the file workload holds one or two
# for a moment now and then.
nfd_min() {
  local m=999999 n
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    n=$(nfd); [ "$n" -lt "$m" ] && m=$n; sleep 0.1
  done
  echo "$m"
}
sleep 2
base_fd=$(nfd_min) base_rss=$(rss)
echo "soak: ${DURATION} s, backend ${MOONPORT_BACKEND:-default}, port $port"
printf '%6s %10s %6s\n' time rss_kib fds
printf '%6s %10s %6s\n' idle "$base_rss" "$base_fd"

wrk -t1 -c32 -d"${DURATION}s" "http://127.0.0.1:$port/" > "$OUT/keep.txt" 2>&1 &
w1=$!
wrk -t1 -c8 -d"${DURATION}s" -H "Connection: close" \
  "http://127.0.0.1:$port/" > "$OUT/churn.txt" 2>&1 &
w2=$!
rss_first="" rss_last="" rss_min="" rss_max="" fd_max=0
for ((t = 5; t <= DURATION; t += 5)); do
  sleep 5
  kill -0 $srv 2>/dev/null || { echo "the server died"; cat "$OUT/server.err"; exit 1; }
  r=$(rss) f=$(nfd)
  printf '%5ss %10s %6s\n' "$t" "$r" "$f"
  [ "$f" -gt "$fd_max" ] && fd_max=$f
  if [ "$t" -ge "$WARMUP" ]; then
    [ -z "$rss_first" ] && rss_first=$r
    rss_last=$r
    { [ -z "$rss_min" ] || [ "$r" -lt "$rss_min" ]; } && rss_min=$r
    { [ -z "$rss_max" ] || [ "$r" -gt "$rss_max" ]; } && rss_max=$r
  fi
done
wait $w1 $w2
sleep 3 # connections wind down (read timeouts are 10 s, peers closed)
end_fd=$(nfd_min) end_rss=$(rss)
printf '%6s %10s %6s\n' after "$end_rss" "$end_fd"

reqs() { awk '/requests in/ {print $1}' "$1"; }
errs() { grep -E 'Socket errors|Non-2xx' "$1" | tr -s ' ' | sed 's/^ //'; }
echo "keep-alive: $(reqs "$OUT/keep.txt") requests $(errs "$OUT/keep.txt")"
echo "churn (Connection: close): $(reqs "$OUT/churn.txt") requests $(errs "$OUT/churn.txt")"
[ -s "$OUT/server.err" ] && { echo "server stderr:"; head -20 "$OUT/server.err"; }

growth=$((rss_last - rss_first))
allow=$((rss_first / 20))
[ "$allow" -lt 2048 ] && allow=2048
verdict=flat
if [ "$growth" -gt "$allow" ]; then
  verdict="NOT FLAT"
  echo "RSS grew $growth KiB from ${WARMUP}s to the end (allowed $allow KiB)"
fi
if [ "$end_fd" -ne "$base_fd" ]; then
  verdict="NOT FLAT"
  echo "descriptors: $base_fd before the load, $end_fd after it"
fi
if [ -s "$OUT/server.err" ]; then verdict="NOT FLAT"; fi
echo "RSS from ${WARMUP}s: first $rss_first KiB, last $rss_last KiB, min $rss_min, max $rss_max (growth $growth, allowed $allow); descriptors: idle $base_fd, peak $fd_max, after $end_fd"
echo "verdict: $verdict"
[ "$verdict" = flat ]
