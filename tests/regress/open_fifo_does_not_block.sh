# fs.open of a FIFO never blocks (a pool thread or the loop) waiting for
# the other end, on every backend: "r" opens at once and its reads wait for
# data (cancel and timeout work); "w" with no reader fails at once with
# ENXIO; the pool stays usable and the process exits. Opened FIFOs are
# blocking again where the backend wants it (docs/files.md, "FIFOs and
# devices"; only a regular file opened for reading keeps O_NONBLOCK).
set -u
MP=${MOONPORT:?}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkfifo "$dir/f1" "$dir/f2"
for i in 1 2 3 4 5 6 7 8; do mkfifo "$dir/n$i"; done
echo regular > "$dir/reg"
cat > "$dir/t.lua" <<'LUA'
local mp = require "moonport"
local fs, dir = mp.fs, arg[1]
local fails = 0
local function expect(what, cond, ...)
  if not cond then fails = fails + 1 print("FAIL " .. what, ...) end
end
-- many opens with no partner at once: more than the pool has threads
local ts = {}
for i = 1, 8 do
  ts[i] = mp.spawn(function()
    local a = table.pack(mp.timeout(2, fs.open, dir .. "/n" .. i, "r"))
    if a[1] and a[2] then a[2]:close() end
    local b = table.pack(mp.timeout(2, fs.open, dir .. "/n" .. i, "w"))
    return a, b
  end)
end
for i = 1, 8 do
  local _, a, b = ts[i]:join()
  expect("open r " .. i, a[1] and a[2] ~= nil,
         table.unpack(a, 1, a.n))
  expect("open w " .. i, b[1] and b[2] == nil and b[4] == "ENXIO",
         table.unpack(b, 1, b.n))
end
-- the pool still serves regular files
expect("regular file", fs.readfile(dir .. "/reg") == "regular\n")
-- a FIFO opened "r" waits for data; a timeout cancels the wait
local ok, f1 = mp.timeout(2, fs.open, dir .. "/f1", "r")
expect("open f1", ok and f1, f1)
local t0 = mp.now()
local r = table.pack(mp.timeout(0.2, f1.read, f1, "a"))
expect("read times out", r[1] == false and r[2] == "timeout",
       table.unpack(r, 1, r.n))
expect("timeout in time", mp.now() - t0 < 1.5, mp.now() - t0)
-- a writer appears: the data arrives, then EOF when it closes
os.execute("(sleep 0.1; printf 'hello\\n' > '" .. dir .. "/f1') &")
local ok2, data = mp.timeout(5, f1.read, f1, "a")
expect("read from writer", ok2 and data == "hello\n", ok2, data)
f1:close()
-- a cancelled read of a FIFO, then the task ends
local f2 = assert(fs.open(dir .. "/f2", "r"))
local t = mp.spawn(f2.read, f2, "l")
mp.sleep(0.05)
t:cancel()
local jok, jerr = t:join()
expect("cancelled read", not jok and jerr == "cancelled", jok, jerr)
f2:close()
-- a FIFO opened "w" once a reader is there: writes are blocking-safe
local rd = assert(fs.open(dir .. "/f2", "r"))
local w = assert(fs.open(dir .. "/f2", "w"))
local big = string.rep("z", 300000) -- more than the pipe holds
local wt = mp.spawn(function() assert(w:write(big)) w:close() end)
local got = rd:read("a")
wt:join()
expect("big write through the FIFO", got == big, #got)
rd:close()
if fails > 0 then os.exit(1) end
print("ok")
LUA
timeout ${T:-20} $MP "$dir/t.lua" "$dir"
st=$?
[ $st -eq 124 ] && echo "FAIL hung"
exit $st
