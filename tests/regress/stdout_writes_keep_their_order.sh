#!/usr/bin/env bash
# Writes to mp.stdout and mp.stderr reach the stream in the order they
# were made, even while an earlier write from another task is still
# going out: a later write used to be tried at once (or go into C's
# buffer) past the write in flight, and on epoll the rest of a short write
# was resubmitted behind later writers, so "B" landed inside "a...a".
# Writers cancelled or timed out while waiting their turn drop out.
set -u
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/w.lua" <<'LUA'
local mp = require "moonport"
local s = mp[arg[1]]
mp.spawn(function() assert(s:write(string.rep("a", 1 << 20))) end)
mp.spawn(function() mp.sleep(0.05); assert(s:write("B")) end)
mp.spawn(function() mp.sleep(0.1); assert(s:write("C", "D")) end)
-- writers given up while they wait their turn write nothing and hold up
-- nobody
local x = mp.spawn(function() mp.sleep(0.06); s:write("X") end)
mp.spawn(function() mp.sleep(0.08); x:cancel() end)
mp.spawn(function()
  mp.sleep(0.06)
  assert(not mp.timeout(0.03, function() s:write("Y") end))
end)
LUA
fail=0
for stream in stdout stderr; do
  # the reader starts late: the pipe is full while the later writes come
  if [ $stream = stdout ]; then
    "$MOONPORT" "$dir/w.lua" $stream | { sleep 0.4; cat; } >"$dir/out"
  else
    "$MOONPORT" "$dir/w.lua" $stream 2>&1 >/dev/null |
      { sleep 0.4; cat; } >"$dir/out"
  fi
  got=$(tr -s a <"$dir/out")
  size=$(wc -c <"$dir/out")
  if [ "$got" != aBCD ] || [ "$size" != $(((1 << 20) + 3)) ]; then
    echo "$stream: got $size bytes, squeezed: $(printf %q "$got" | head -c 80)"
    fail=1
  fi
done
# closing the file ends the writes waiting their turn (a FIFO nobody reads)
mkfifo "$dir/fifo"
sleep 5 <"$dir/fifo" &
holder=$!
cat > "$dir/c.lua" <<'LUA'
local mp = require "moonport"
local f = assert(mp.fs.open(arg[1], "w"))
local a = mp.spawn(function() return f:write(string.rep("a", 1 << 20)) end)
local b = mp.spawn(function() mp.sleep(0.02); return f:write("B") end)
mp.sleep(0.1)
f:close()
local ra, rb = { a:join() }, { b:join() }
assert(ra[1] and ra[2] == nil, "the write in flight fails")
assert(rb[1] and rb[2] == nil and rb[3], "the waiting write fails")
print("closed: " .. rb[3])
LUA
if ! timeout 20 "$MOONPORT" "$dir/c.lua" "$dir/fifo" >"$dir/c.out" 2>&1; then
  echo "close with writes waiting:"; cat "$dir/c.out"; fail=1
fi
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
[ $fail = 0 ] && echo ok
exit $fail
