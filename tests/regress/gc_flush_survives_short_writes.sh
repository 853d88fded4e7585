#!/usr/bin/env bash
# A file collected with bytes still buffered writes them all even when the
# kernel takes them in several short writes (the __gc flush used to submit
# one write and drop whatever it did not take). Short writes come from the fault injection
# (tests/fault/run.sh): the shim on epoll, the backend's faults on io_uring.
set -u
build=$(dirname "$MOONPORT")
export MP_FAULT_SHIM=$build/tests/libmp_fault.so
if [ "${MOONPORT_BACKEND:-}" != io_uring ] && [ ! -f "$MP_FAULT_SHIM" ]; then
  echo "skipped: no fault shim in this build (sanitizers)"; exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bash "$MP_SOURCE_DIR/tests/fault/run.sh" 7 1 0 "$MOONPORT" - "$dir" <<'LUA'
local mp = require "moonport"
local dir = ...
mp.fs._nowait(false) -- reads are READ ops (not from the page cache)
local body = ("0123456789"):rep(6000)
for i = 1, 20 do
  local f = assert(mp.fs.open(dir .. "/f" .. i, "w"))
  f:write(body)
end
collectgarbage()
collectgarbage()
-- read back with READ ops, which the io_uring injector also faults
-- (mp.fs.readfile is one READFILE op: none)
local function slurp(p)
  local f <close> = assert(mp.fs.open(p))
  return assert(f:read("a"))
end
local bad = 0
for i = 1, 20 do
  local got
  for _ = 1, 200 do
    got = slurp(dir .. "/f" .. i)
    if got == body then break end
    mp.sleep(0.01)
  end
  if got ~= body then
    bad = bad + 1
    print("f" .. i .. ": " .. #got .. " of " .. #body .. " bytes")
  end
end
assert(bad == 0, bad .. " collected files lost buffered bytes")
print("ok")
LUA
