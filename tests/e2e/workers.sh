#!/usr/bin/env bash
# workers.sh: moonport --workers N (docs/workers.md): every worker runs
# with its index, shared channels cross threads, a failed worker is
# restarted (bounded), SIGTERM and SIGINT stop every worker cleanly, and
# reuseport listeners spread connections over the workers (counted).
set -u
MP=${MOONPORT:?set MOONPORT to the moonport binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

check() { # name, condition (as a command)
  if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"
  else fail=$((fail + 1)); echo "not ok - $1"; sed 's/^/  # /' "$tmp/out"; fi
}

# Waits up to 10 s for the process to end (then kills it); its status
# in $st.
finish() {
  timeout 30 tail --pid="$1" -f /dev/null || kill -KILL "$1"
  wait "$1"; st=$?
}

# 1. Every worker runs, with its own index; the count.
cat > "$tmp/index.lua" <<'LUA'
local mp = require "moonport"
local i, n = mp.worker()
print("worker " .. i .. " of " .. n, select("#", ...), ...)
LUA
"$MP" --workers 3 "$tmp/index.lua" a b >"$tmp/out" 2>&1; st=$?
check "three workers, indexes 1..3, the script's arguments in each" \
  '[ $st -eq 0 ] && [ "$(sort "$tmp/out")" = "$(printf "worker 1 of 3\t2\ta\tb\nworker 2 of 3\t2\ta\tb\nworker 3 of 3\t2\ta\tb")" ]'
"$MP" --workers=2 "$tmp/index.lua" >"$tmp/out" 2>&1; st=$?
check "--workers=2" '[ $st -eq 0 ] && [ $(grep -c " of 2" "$tmp/out") -eq 2 ]'
n=$(nproc)
"$MP" --workers "$tmp/index.lua" >"$tmp/out" 2>&1; st=$?
check "--workers alone: one per CPU ($n)" \
  '[ $st -eq 0 ] && [ $(grep -c " of $n	" "$tmp/out") -eq $n ]'
"$MP" --workers=0 "$tmp/index.lua" >"$tmp/out" 2>&1; st=$?
check "--workers=0 is refused" \
  '[ $st -eq 1 ] && grep -q "a count from 1 to" "$tmp/out"'
"$MP" --workers 2 -e 'print(1)' >"$tmp/out" 2>&1 </dev/null; st=$?
check "--workers without a script file is refused" \
  '[ $st -eq 1 ] && grep -q "needs a script file" "$tmp/out"'

# 2. Shared channels between the threads: the values mp.work copies.
cat > "$tmp/chan.lua" <<'LUA'
local mp = require "moonport"
local i, n = mp.worker()
local ch = mp.shared_channel("results", 2) -- small: senders wait
if i == 1 then
  local sum, seen = 0, 0
  for _ = 1, (n - 1) * 50 do
    local v = ch:recv()
    sum = sum + v.k
    seen = seen + 1
  end
  print("sum", sum, "seen", seen)
else
  for k = 1, 50 do assert(ch:send({ k = k, from = i, pad = ("x"):rep(k) })) end
end
LUA
"$MP" --workers 4 "$tmp/chan.lua" >"$tmp/out" 2>&1; st=$?
check "shared channel: 150 values from three workers to the first" \
  '[ $st -eq 0 ] && grep -q "^sum	3825	seen	150$" "$tmp/out"'

# The example, on three workers.
"$MP" --workers 3 "${MP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/examples/http_workers.lua" >"$tmp/out" 2>&1; st=$?
check "examples/http_workers.lua on three workers" \
  '[ $st -eq 0 ] && [ $(grep -c "^worker [123] served" "$tmp/out") -eq 3 ] &&
   grep -q "^ok$" "$tmp/out"'

# 3. A failed worker is reported and restarted; restarts are bounded.
cat > "$tmp/crash.lua" <<'LUA'
local mp = require "moonport"
local i = mp.worker()
local path = os.getenv("RUNS") .. "/w" .. i
local f = io.open(path, "a") f:write("x") f:close()
f = io.open(path) local runs = #f:read("a") f:close()
if i == 2 and runs < 3 then error("worker 2 crashes, run " .. runs) end
print("worker " .. i .. " done on run " .. runs)
LUA
mkdir "$tmp/runs"
RUNS=$tmp/runs "$MP" --workers 2 "$tmp/crash.lua" >"$tmp/out" 2>&1; st=$?
check "a crashing worker is restarted until it succeeds" \
  '[ $st -eq 0 ] && grep -q "^worker 2 done on run 3$" "$tmp/out" &&
   grep -q "^worker 1 done on run 1$" "$tmp/out" &&
   [ $(grep -c "worker 2 failed: restarting it" "$tmp/out") -eq 2 ] &&
   grep -q "worker 2 crashes, run 1" "$tmp/out"'
cat > "$tmp/always.lua" <<'LUA'
local mp = require "moonport"
if mp.worker() == 2 then error("always") end
print("worker 1 ok")
LUA
"$MP" --workers 2 "$tmp/always.lua" >"$tmp/out" 2>&1; st=$?
check "restarts are bounded: exit 1 after the last one" \
  '[ $st -eq 1 ] && grep -q "^worker 1 ok$" "$tmp/out" &&
   [ $(grep -c "restarting it" "$tmp/out") -eq 5 ] &&
   grep -q "worker 2 failed 6 times in 60 s: not restarted" "$tmp/out"'
MOONPORT_WORKER_RESTARTS=0 "$MP" --workers 2 "$tmp/always.lua" \
  >"$tmp/out" 2>&1; st=$?
check "MOONPORT_WORKER_RESTARTS=0: a failed worker stays down" \
  '[ $st -eq 1 ] && grep -q "^worker 1 ok$" "$tmp/out" &&
   ! grep -q "restarting it" "$tmp/out" &&
   grep -q "worker 2 failed: not restarted" "$tmp/out"'
# The bound is a rate: failures further apart than the window never add
# up (each run sleeps past the 1 s window before failing, so the spacing
# only grows on a loaded machine). A total of 1 would stop it at run 2.
cat > "$tmp/spaced.lua" <<'LUA'
local mp = require "moonport"
local path = os.getenv("RUNS") .. "/s" .. mp.worker()
local f = io.open(path, "a") f:write("x") f:close()
f = io.open(path) local runs = #f:read("a") f:close()
if runs < 4 then mp.sleep(1.1) error("fails, run " .. runs) end
print("done on run " .. runs)
LUA
RUNS=$tmp/runs MOONPORT_WORKER_RESTARTS=1/1 "$MP" --workers 1 \
  "$tmp/spaced.lua" >"$tmp/out" 2>&1; st=$?
check "restarts are a rate: failures spaced past the window go on" \
  '[ $st -eq 0 ] && grep -q "^done on run 4$" "$tmp/out" &&
   [ $(grep -c "restarting it (1 of 1 in 1 s)" "$tmp/out") -eq 3 ]'
MOONPORT_WORKER_RESTARTS=5/x "$MP" --workers 1 "$tmp/always.lua" \
  >"$tmp/out" 2>&1; st=$?
check "a malformed MOONPORT_WORKER_RESTARTS is refused" \
  '[ $st -eq 1 ] && grep -q "MOONPORT_WORKER_RESTARTS: .5/x.: expected" \
   "$tmp/out" && ! grep -q "worker 1 ok" "$tmp/out"'
cat > "$tmp/unjoined.lua" <<'LUA'
local mp = require "moonport"
local i = mp.worker()
local path = os.getenv("RUNS") .. "/u" .. i
local f = io.open(path, "a") f:write("x") f:close()
f = io.open(path) local runs = #f:read("a") f:close()
if runs == 1 then mp.spawn(function() error("task fails") end) end
print("run " .. runs)
LUA
RUNS=$tmp/runs "$MP" --workers 1 "$tmp/unjoined.lua" >"$tmp/out" 2>&1; st=$?
check "a task failure nobody joined fails the worker too" \
  '[ $st -eq 0 ] && grep -q "^run 2$" "$tmp/out" &&
   grep -q "error in task: .*task fails" "$tmp/out"'

# 4. A server on every worker: reuseport spreads connections (counted);
# SIGTERM and SIGINT stop every worker, closing what they hold.
cat > "$tmp/server.lua" <<'LUA'
local mp = require "moonport"
local i, n = mp.worker()
local ports = mp.shared_channel("port", n)
local srv, port
if i == 1 then -- port 0: the first picks one, the others share it
  srv = assert(mp.net.listen("127.0.0.1", 0, { reuseport = true }))
  port = select(2, srv:sockname())
  for _ = 2, n do ports:send(port) end
else
  port = ports:recv()
  srv = assert(mp.net.listen("127.0.0.1", port, { reuseport = true }))
end
local served = 0
mp.spawn(function()
  while true do
    local c = assert(srv:accept())
    served = served + 1
    c:write(i, "\n")
    c:close()
  end
end)
-- a task blocked on a shared channel is stopped too
mp.spawn(function() mp.shared_channel("never"):recv() end)
local guard <close> = setmetatable({}, { __close = function()
  io.stdout:write(("worker %d closed, served %d\n"):format(i, served))
end })
io.stdout:write("listening ", i, " ", port, "\n") io.stdout:flush()
mp.sleep(math.huge)
LUA
for sig in TERM INT; do
  "$MP" --workers 2 "$tmp/server.lua" >"$tmp/out" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    [ $(grep -c "^listening" "$tmp/out") -eq 2 ] && break
    sleep 0.05
  done
  port=$(sed -n 's/^listening 1 \([0-9]*\)$/\1/p' "$tmp/out")
  if [ $sig = TERM ]; then
    : >"$tmp/who"
    for _ in $(seq 200); do
      exec 3<>"/dev/tcp/127.0.0.1/$port" && head -1 <&3 >>"$tmp/who"
      exec 3<&-
    done
    w1=$(grep -c '^1$' "$tmp/who") w2=$(grep -c '^2$' "$tmp/who")
    echo "# connections: worker 1 $w1, worker 2 $w2"
    check "reuseport: 200 connections, served by both workers" \
      '[ $((w1 + w2)) -eq 200 ] && [ $w1 -gt 0 ] && [ $w2 -gt 0 ]'
  fi
  kill -$sig $pid
  finish $pid
  check "SIG$sig: every worker stops, closing its variables; exit 0" \
    '[ $st -eq 0 ] && grep -q "^worker 1 closed" "$tmp/out" &&
     grep -q "^worker 2 closed" "$tmp/out" && ! grep -q "error" "$tmp/out"'
  [ $sig = TERM ] && check "each worker served the connections it answered" \
    'grep -q "^worker 1 closed, served $w1$" "$tmp/out" &&
     grep -q "^worker 2 closed, served $w2$" "$tmp/out"'
done

# 5. A second signal ends the process at once (a worker spinning in Lua
# code cannot be cancelled).
cat > "$tmp/spin.lua" <<'LUA'
io.stdout:write("spinning\n") io.stdout:flush()
while true do end
LUA
"$MP" --workers 2 "$tmp/spin.lua" >"$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ $(grep -c "^spinning" "$tmp/out") -eq 2 ] && break
  sleep 0.05
done
kill -TERM $pid
sleep 0.2
kill -TERM $pid
finish $pid
check "a second SIGTERM ends spinning workers (status 143)" '[ $st -eq 143 ]'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
