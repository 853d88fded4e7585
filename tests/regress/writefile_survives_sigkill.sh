# fs.writefile killed with SIGKILL at random points leaves the target with
# its old or its new contents, never a torn file; the temporary a killed
# writer leaves is removed by the next writefile to that path, while a
# live writer's temporary (and a user's file that merely looks like one)
# is left alone. Bounded to a few seconds.
set -u
MP=${MOONPORT:?}
dir=$(mktemp -d)
holder=""
trap '[ -n "$holder" ] && kill $holder 2>/dev/null; rm -rf "$dir"' EXIT
st=0
fail() { echo "FAIL $*"; st=1; }

# version v: a header naming v, then a filler whose size depends on v
cat > "$dir/lib.lua" <<'LUA'
local M = {}
function M.content(v)
  local n = 20000 + (v * 7919) % 400000
  return ("v=%d;"):format(v) .. string.char(97 + v % 26):rep(n)
end
function M.valid(s)
  local v = s and tonumber(s:match("^v=(%d+);"))
  return v ~= nil and s == M.content(v)
end
return M
LUA
# writer: replaces target with version 1, 2, 3, ... until killed
cat > "$dir/writer.lua" <<'LUA'
package.path = arg[2] .. "/?.lua;" .. package.path
local lib, fs = require "lib", require("moonport").fs
for v = tonumber(arg[3]), math.huge do
  assert(fs.writefile(arg[1], lib.content(v)))
  if v == tonumber(arg[3]) then io.open(arg[2] .. "/started", "w"):close() end
end
LUA
# check: the target is a whole version; then one writefile, after which no
# stale temporary may remain
cat > "$dir/check.lua" <<'LUA'
package.path = arg[2] .. "/?.lua;" .. package.path
local lib, fs = require "lib", require("moonport").fs
local path = arg[1]
if not lib.valid(fs.readfile(path)) then print("torn") os.exit(1) end
local before = 0
for _, n in ipairs(fs.dir(arg[2])) do
  if n:find("^target%.mp%-tmp%-") then before = before + 1 end
end
assert(fs.writefile(path, lib.content(0)))
for _, n in ipairs(fs.dir(arg[2])) do
  if n:find("^target%.mp%-tmp%-%d+%-%x+$") and n ~= arg[3] then
    print("stale " .. n) os.exit(1)
  end
end
print(before)
LUA
t="$dir/target"
LUA_PATH="$dir/?.lua;;" timeout 20 "$MP" -e \
  "assert(require('moonport').fs.writefile('$t', require('lib').content(0)))"

# 4 s of kills; up to 15 s while none has left a temporary yet. Each kill
# comes 10-99 ms after the writer's first writefile (a writer under ASan
# on a loaded machine took longer than that to start: 31 kills, all
# before it wrote anything)
end=$(( $(date +%s) + 4 )) hard=$(( $(date +%s) + 15 )) rounds=0 stale=0
while [ "$(date +%s)" -lt $end ] ||
      { [ $stale -eq 0 ] && [ "$(date +%s)" -lt $hard ]; }; do
  rounds=$((rounds + 1))
  rm -f "$dir/started"
  "$MP" "$dir/writer.lua" "$t" "$dir" $((rounds * 1000)) & w=$!
  for _ in $(seq 1000); do # at most 10 s
    [ -e "$dir/started" ] || ! kill -0 $w 2>/dev/null && break
    sleep 0.01
  done
  sleep "0.0$(( RANDOM % 9 + 1 ))$(( RANDOM % 10 ))"
  kill -KILL $w 2>/dev/null
  wait $w 2>/dev/null
  out=$(timeout 20 "$MP" "$dir/check.lua" "$t" "$dir")
  case $out in
    [0-9]*) stale=$((stale + out)) ;;
    *) fail "round $rounds: $out"; break ;;
  esac
done
echo "$rounds kills, $stale stale temporaries removed"
[ $stale -gt 0 ] || fail "no kill left a temporary: the test proved nothing"

# a live writer's temporary stays; once its holder is gone, it goes
live="$t.mp-tmp-$$-0123456789abcdef"
decoy="$t.mp-tmp-notours"
echo live > "$live"; echo mine > "$decoy"
( exec 9<"$live"; flock 9; exec sleep 30 ) & holder=$! # holds the lock
sleep 0.2
out=$(timeout 20 "$MP" "$dir/check.lua" "$t" "$dir" "${live##*/}")
[ -e "$live" ] || fail "a live temporary was removed ($out)"
kill $holder; wait $holder 2>/dev/null; holder=""
out=$(timeout 20 "$MP" "$dir/check.lua" "$t" "$dir")
[ -e "$live" ] && fail "the temporary of a dead holder stayed ($out)"
[ "$(cat "$decoy")" = mine ] || fail "a user's file was removed"
[ $st -eq 0 ] && echo ok
exit $st
