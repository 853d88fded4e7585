#!/usr/bin/env bash
# A script's error is printed once, as lua.c prints it: "prog: message",
# then the traceback from the point of error down to "[C]: in ?", with no
# frames of moonport's own (compared line by line with lua5.4's output).
set -u
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail=0
cat > raise.lua <<'LUA'
local function inner() error("kaboom") end
local function outer() inner() end
outer()
LUA
cat > table.lua <<'LUA'
error({})
LUA
cat > tostr.lua <<'LUA'
error(setmetatable({}, { __tostring = function() return "custom" end }))
LUA
cat > tostr_raises.lua <<'LUA'
error(setmetatable({}, { __tostring = function() error("in tostring") end }))
LUA
for s in raise table tostr tostr_raises; do
  "$LUA54" $s.lua 2>lua.err; lst=$?
  "$MOONPORT" $s.lua 2>mp.err; mst=$?
  sed 's/^[^:]*lua5.4: /PROG: /' lua.err > want
  sed "s|^$MOONPORT: |PROG: |" mp.err > got
  if [ $mst -ne $lst ] || ! cmp -s want got; then
    fail=1; echo "FAIL $s (status $mst, lua $lst):"; diff want got
  fi
done
# -e chunks and LUA_INIT too
"$MOONPORT" -e 'error("e")' 2>mp.err
"$LUA54" -e 'error("e")' 2>lua.err
sed 's/^[^:]*lua5.4: /PROG: /' lua.err > want
sed "s|^$MOONPORT: |PROG: |" mp.err > got
cmp -s want got || { fail=1; echo "FAIL -e:"; diff want got; }
exit $fail
