#!/usr/bin/env bash
# os.exit(code, true) closes the script's to-be-closed variables before the
# state, as lua does for its main chunk (which moonport runs as a task).
set -u
out=$("$MOONPORT" -e '
  local function closer(s)
    return setmetatable({}, { __close = function() print(s) end })
  end
  local x <close> = closer("closed x")
  do
    local y <close> = closer("closed y")
    os.exit(true, true)
  end')
st=$?
want=$(printf 'closed y\nclosed x')
[ $st -eq 0 ] && [ "$out" = "$want" ] ||
  { echo "FAIL: status $st, output '$out'"; exit 1; }
"$MOONPORT" -e 'local z <close> = setmetatable({}, {
                 __close = function() end })
                os.exit(false, true)'
[ $? -eq 1 ] || { echo "FAIL: os.exit(false, true) status"; exit 1; }
exit 0
