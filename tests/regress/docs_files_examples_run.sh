# Every ```lua example in docs/files.md runs as shown, on a fresh machine
# (no /var/log/syslog on Debian 12), both under the moonport command and
# from a stock lua5.4 with require "moonport"; a comment "--> x" after a
# print says what it prints, in order.
set -u
MP=${MOONPORT:?}
LUA=${LUA54:-lua5.4}
doc=${MP_SOURCE_DIR:?}/docs/files.md
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pre=""
if ldd "$(dirname "$MP")/lib/moonport.so" 2>/dev/null | grep -q libasan; then
  pre=$(gcc -print-file-name=libasan.so)
fi
# split the examples into ex1.lua, ex2.lua, ...
awk -v d="$dir" '/^```lua$/ { n++; on = 1; next }
  /^```$/ { on = 0 } on { print > (d "/ex" n ".lua") }' "$doc"
st=0 n=0
for ex in "$dir"/ex*.lua; do
  n=$((n + 1))
  sed -n 's/.*--> \(.*\)$/\1/p' "$ex" > "$ex.want"
  for how in moonport lua5.4; do
    if [ $how = moonport ]; then
      out=$(cd "$dir" && timeout 20 "$MP" "$ex" 2>&1)
    else
      out=$(cd "$dir" && LD_PRELOAD=$pre \
            LUA_CPATH="$(dirname "$MP")/lib/?.so;;" timeout 20 "$LUA" "$ex" 2>&1)
    fi
    rc=$?
    if [ $rc -ne 0 ]; then
      echo "FAIL ${ex##*/} under $how (exit $rc):"; echo "$out"; st=1
    elif [ -s "$ex.want" ] && [ "$out" != "$(cat "$ex.want")" ]; then
      echo "FAIL ${ex##*/} under $how prints:"; echo "$out"
      echo "expected:"; cat "$ex.want"; st=1
    fi
  done
done
[ $n -gt 0 ] || { echo "FAIL no example found"; st=1; }
[ $st -eq 0 ] && echo "ok ($n examples)"
exit $st
