# A task's error object whose __tostring raises, or returns something that
# is not a string, is reported on stderr like any unjoined failure; the
# report must not raise in the scheduler and kill the process.
set -u
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/t.lua" <<'LUA'
local mp = require "moonport"
local raises = setmetatable({}, { __tostring = function() error("boom") end })
local number = setmetatable({}, { __tostring = function() return 1 end })
local a = mp.spawn(function() error(raises) end)
local b = mp.spawn(function() error(number) end)
mp.sleep(0.01)
local oka, ea = a:join()
local okb, eb = b:join()
assert(not oka and rawequal(ea, raises), "join a")
assert(not okb and rawequal(eb, number), "join b")
local c = mp.spawn(function() error(raises) end) -- never joined
mp.sleep(0.01)
print("alive")
LUA
"$MOONPORT" "$dir/t.lua" >"$dir/out" 2>"$dir/err"
rc=$?
fail=0
grep -qx alive "$dir/out" || { echo "FAIL: the script did not run to its end"; fail=1; }
[ "$rc" = 1 ] || { echo "FAIL: exit status $rc, want 1 (one task never joined)"; fail=1; }
n=$(grep -c '^moonport: error in task: (error object is a table value' "$dir/err")
[ "$n" = 3 ] || { echo "FAIL: $n reports of a table error object, want 3"; fail=1; }
grep -q 'boom' "$dir/err" && { echo "FAIL: the __tostring error escaped"; fail=1; }
[ $fail = 0 ] || { echo "--- stdout"; cat "$dir/out"; echo "--- stderr"; cat "$dir/err"; exit 1; }
echo ok
