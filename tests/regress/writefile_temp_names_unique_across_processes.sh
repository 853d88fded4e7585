# Two processes with the same random seed (and the same per-process call
# sequence) writing the same path at the same time must both succeed:
# temporary names must not come from the script's math.random.
set -u
MP=${MOONPORT:?}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/w.lua" <<'LUA'
local mp = require "moonport"
local path, who = ...
local data = string.rep(who, 200000)
local bad = 0
for i = 1, 150 do
  math.randomseed(42)
  local ok, err, code = mp.fs.writefile(path, data)
  if not ok then
    bad = bad + 1
    if bad <= 3 then print("FAIL " .. who .. " #" .. i, err, code) end
  end
end
os.exit(bad == 0 and 0 or 1)
LUA
timeout 60 "$MP" "$dir/w.lua" "$dir/target" a & a=$!
timeout 60 "$MP" "$dir/w.lua" "$dir/target" b & b=$!
timeout 60 "$MP" "$dir/w.lua" "$dir/target" c
st=$?
wait $a || st=1
wait $b || st=1
left=$(ls -A "$dir" | grep -v -e '^w.lua$' -e '^target$')
if [ -n "$left" ]; then echo "FAIL left behind: $left"; st=1; fi
data=$(head -c 3 "$dir/target")
case $data in aaa|bbb|ccc) ;; *) echo "FAIL contents: $data"; st=1;; esac
[ $st -eq 0 ] && echo ok
exit $st
