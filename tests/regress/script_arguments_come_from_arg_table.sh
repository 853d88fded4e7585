#!/usr/bin/env bash
# The script's arguments are taken from the global arg table after
# LUA_INIT and -e ran (lua.c's pushargs), and arg has the command and its
# options at negative indices (testes/main.lua).
set -u
out=$(echo 'print(...)' | "$MOONPORT" -e 'arg[1] = 100' - x)
[ "$out" = 100 ] || { echo "FAIL: -e changed arg[1]: got '$out'"; exit 1; }
out=$(echo 'print(#arg, arg[0], arg[-1], arg[-2], arg[-3] == nil)' |
      "$MOONPORT" -e '' - a b)
[ "$out" = "$(printf '2\t-\t\t-e\tfalse')" ] ||
  { echo "FAIL: negative indices: got '$out'"; exit 1; }
out=$(echo 'print(...)' | LUA_INIT='arg = 1' "$MOONPORT" - 2>&1)
echo "$out" | grep -q "'arg' is not a table" ||
  { echo "FAIL: arg not a table: got '$out'"; exit 1; }
exit 0
