#!/usr/bin/env bash
# luarocks.sh: `luarocks --lua-version 5.4 make --tree T` builds the
# rockspec at the repository root (from a copy of the sources, as LuaRocks
# builds in place) without the network, and the module in T loads in a
# stock lua5.4 and runs a task on each backend. The rockspec's version is
# the one in bindings/moonport.h.
set -u
pass=0 fail=0
check() {
  if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"
  else fail=$((fail + 1)); echo "not ok - $1"; return 1; fi
}
SRC=${MP_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
VERSION=$(sed -n 's/^#define MOONPORT_VERSION_[A-Z]* \([0-9]*\)$/\1/p' \
  "$SRC/bindings/moonport.h" | paste -sd.)

specs=$(cd "$SRC" && ls moonport-*.rockspec)
check "one rockspec, moonport-$VERSION-1.rockspec" \
  '[ "$specs" = "moonport-$VERSION-1.rockspec" ]'
check "its version field is the header's" \
  'grep -qx "version = \"$VERSION-1\"" "$SRC/$specs"'

mkdir "$tmp/src"
(cd "$SRC" && cp -r CMakeLists.txt LICENSE README.md bindings cmd runtime lua \
   scripts docs $specs "$tmp/src/")
# No network: a download attempt fails at once through a dead proxy; the
# user configuration and cache live in the temporary HOME.
(cd "$tmp/src" && HOME=$tmp/home http_proxy=http://127.0.0.1:9 \
   https_proxy=http://127.0.0.1:9 CMAKE_BUILD_PARALLEL_LEVEL=2 \
   timeout 300 luarocks --lua-version 5.4 make --tree "$tmp/tree" $specs) \
  >"$tmp/log" 2>&1
st=$?
check "luarocks make --tree builds and installs the rock" '[ $st -eq 0 ]' ||
  tail -30 "$tmp/log"
mod=$tmp/tree/lib/lua/5.4/moonport.so
check "the module is in the tree's lib/lua/5.4" '[ -f "$mod" ]'
check "the module does not need readline" \
  '! readelf -d "$mod" | grep NEEDED | grep -q readline'

TAB=$'\t'
# The default backend (io_uring where the kernel allows it), then epoll.
for b in "" epoll; do
  out=$(cd "$tmp" && MOONPORT_BACKEND=$b \
        LUA_CPATH="$tmp/tree/lib/lua/5.4/?.so" timeout 20 lua5.4 -e '
    local mp = require "moonport"
    print(mp.backend(), mp.run(function()
      local t = mp.spawn(function(x) mp.sleep(0.01) return x * 2 end, 21)
      return select(2, t:join())
    end))' 2>&1)
  check "the rock's module runs a task on ${b:-the default backend}" \
    '[ "${out#*$TAB}" = 42 ] && [ "${out%%$TAB*}" = "${b:-${out%%$TAB*}}" ]' ||
    echo "$out"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
