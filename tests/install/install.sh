#!/usr/bin/env bash
# install.sh: installs the build tree into temporary prefixes (cmake
# --install --prefix, DESTDIR, and `make install` with PREFIX and DESTDIR)
# and uses what was installed as a user would: a host built with only
# `pkg-config --cflags --libs moonport` (and one against libmoonport.a with
# --static), lua5.4 requiring the installed module, the installed command.
# Neither the library nor the module may depend on readline (or on a
# shared liblua: the host brings its Lua); the library exports only the
# public API and carries a SONAME.
set -u
pass=0 fail=0
check() {
  if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"
  else fail=$((fail + 1)); echo "not ok - $1"; return 1; fi
}
MP=${MOONPORT:?}
SRC=${MP_SOURCE_DIR:?}
BUILD=$(cd "$(dirname "$MP")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
CC=$(cache CMAKE_C_COMPILER)
VERSION=$(sed -n 's/^#define MOONPORT_VERSION_[A-Z]* \([0-9]*\)$/\1/p' \
  "$SRC/bindings/moonport.h" | paste -sd.)
MAJOR=${VERSION%%.*}

# A sanitizer build installs instrumented libraries: the host is built
# with the same flags and lua5.4 gets the ASan runtime first.
san="" pre=""
if [ "$(cache MP_SANITIZE)" = ON ]; then
  san="-fsanitize=address,undefined"
  pre=$($CC -print-file-name=libasan.so)
fi

# Installs share the build tree's install_manifest.txt and moonport.pc:
# one at a time (each backend runs this test, maybe in parallel).
locked() { flock "$BUILD/install.lock" "$@"; }

P=$tmp/prefix
locked cmake --install "$BUILD" --prefix "$P" >"$tmp/log" 2>&1
st=$?
check "cmake --install --prefix" '[ $st -eq 0 ]' || cat "$tmp/log"
for f in bin/moonport lib/libmoonport.a include/moonport/moonport.h \
         include/moonport/mp.h lib/pkgconfig/moonport.pc \
         lib/lua/5.4/moonport.so share/man/man1/moonport.1 \
         "lib/libmoonport.so.$VERSION"; do
  check "installs $f" '[ -f "$P/$f" ]'
done
check "libmoonport.so -> .so.$MAJOR -> .so.$VERSION" \
  '[ "$(readlink "$P/lib/libmoonport.so")" = "libmoonport.so.$MAJOR" ] &&
   [ "$(readlink "$P/lib/libmoonport.so.$MAJOR")" = "libmoonport.so.$VERSION" ]'
check "SONAME libmoonport.so.$MAJOR" \
  'readelf -d "$P/lib/libmoonport.so" |
   grep -q "(SONAME).*\[libmoonport.so.$MAJOR\]"'

# The libraries a file needs (and it must exist: a negative check on a
# missing file must not pass).
needed() {
  [ -f "$1" ] && readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
}
for f in lib/libmoonport.so lib/lua/5.4/moonport.so; do
  check "$f does not need readline" \
    'needed "$P/$f" >"$tmp/needed" && ! grep -q readline "$tmp/needed"'
  check "$f does not need a shared liblua" \
    'needed "$P/$f" >"$tmp/needed" && ! grep -q liblua "$tmp/needed"'
done
if [ "$(cache READLINE_FOUND)" = 1 ]; then
  check "the command needs readline" \
    'needed "$P/bin/moonport" | grep -q readline'
fi
check "libmoonport.so exports only the public API" \
  'nm -D --defined-only "$P/lib/libmoonport.so" >"$tmp/syms" &&
   ! awk "{print \$3}" "$tmp/syms" |
     grep -v "^mp_\|^moonport_\|^luaopen_moonport$"'
check "the public headers compile alone (no internal header needed)" \
  'echo "#include <moonport.h>" | $CC -fsyntax-only -x c - \
     -I"$P/include/moonport" $(pkg-config --cflags lua5.4)'
# A host with only pkg-config.
export PKG_CONFIG_PATH=$P/lib/pkgconfig
check "moonport.pc names the prefix" \
  '[ "$(pkg-config --variable=prefix moonport)" = "$P" ]'
check "moonport.pc's version is the header's" \
  '[ "$(pkg-config --modversion moonport)" = "$VERSION" ]'
printf 'sixteen bytes!!\n' >"$tmp/data"
want="2 16 42"
$CC $san -o "$tmp/host" "$SRC/tests/install/host.c" \
  $(pkg-config --cflags --libs moonport) 2>"$tmp/log"
st=$?
check "a host builds with pkg-config --cflags --libs" '[ $st -eq 0 ]' ||
  cat "$tmp/log"
check "a C++ host links against the C API (extern \"C\")" \
  'printf "#include <moonport.h>\nint main() { return !moonport_version(); }\n" |
     g++ $san -x c++ - -o "$tmp/cxxhost" \
       $(pkg-config --cflags --libs moonport) &&
     LD_LIBRARY_PATH="$P/lib" "$tmp/cxxhost"'
check "the host needs libmoonport.so.$MAJOR" \
  'needed "$tmp/host" | grep -qx "libmoonport.so.$MAJOR"'
out=$(LD_LIBRARY_PATH=$P/lib timeout 20 "$tmp/host" "$VERSION" "$tmp/data" 2>&1)
echo "$out"
check "the host runs tasks through the shared library" \
  '[[ $out == *"ok - tasks ran: $want "* ]]'
# libmoonport.a alone (the linker takes the .so when both are there): a
# copy of the prefix without it, and pkg-config --static.
S=$tmp/static
cp -r "$P" "$S" && rm -f "$S"/lib/libmoonport.so*
sed -i "s|^prefix=.*|prefix=$S|" "$S/lib/pkgconfig/moonport.pc"
PKG_CONFIG_PATH=$S/lib/pkgconfig $CC $san -o "$tmp/host-static" \
  "$SRC/tests/install/host.c" \
  $(PKG_CONFIG_PATH=$S/lib/pkgconfig pkg-config --cflags --static --libs \
    moonport) 2>"$tmp/log"
st=$?
check "a host links libmoonport.a with pkg-config --static" '[ $st -eq 0 ]' ||
  cat "$tmp/log"
check "the static host does not need libmoonport.so" \
  'needed "$tmp/host-static" >"$tmp/needed" &&
   ! grep -q libmoonport "$tmp/needed"'
out=$(timeout 20 "$tmp/host-static" "$VERSION" "$tmp/data" 2>&1)
check "the static host runs tasks" '[[ $out == *"ok - tasks ran: $want "* ]]'

# A stock lua5.4 finds the installed module through LUA_CPATH (it looks in
# PREFIX/lib/lua/5.4 by default when PREFIX is /usr/local).
out=$(LD_PRELOAD=$pre LUA_CPATH="$P/lib/lua/5.4/?.so" timeout 20 lua5.4 -e '
  print(package.searchpath("moonport", package.cpath))
  local mp = require "moonport"
  print(mp.run(function()
    local t = mp.spawn(function(x) mp.sleep(0.01) return x * 2 end, 21)
    return select(2, t:join())
  end))' 2>&1)
check "lua5.4 requires the installed module and runs a task" \
  '[ "$out" = "$(printf "%s\n42" "$P/lib/lua/5.4/moonport.so")" ]' ||
  echo "$out"
out=$("$P/bin/moonport" -v 2>&1)
check "the installed command reports the version" \
  '[[ $out == "moonport $VERSION "* ]]'

# The man page documents every option the command's usage lists.
man=$(sed 's/\\-/-/g; s/^\.[A-Z]* //' "$P/share/man/man1/moonport.1")
missing=""
for o in $("$P/bin/moonport" --no-such-option 2>&1 |
           sed -n 's/^  \(-[^ ]*\).*/\1/p'); do
  grep -qx -- "$o\( .*\)\?" <<<"$man" || missing="$missing $o"
done
check "the man page has the usage's options${missing:+ (not:$missing)}" \
  '[ -z "$missing" ]'

# DESTDIR stages the files; the .pc file names the final prefix.
locked env DESTDIR="$tmp/stage" cmake --install "$BUILD" --prefix /opt/mp \
  >"$tmp/log" 2>&1
check "DESTDIR stages cmake --install" \
  '[ -f "$tmp/stage/opt/mp/lib/libmoonport.so.$VERSION" ] &&
   [ -f "$tmp/stage/opt/mp/lib/lua/5.4/moonport.so" ] &&
   grep -qx "prefix=/opt/mp" "$tmp/stage/opt/mp/lib/pkgconfig/moonport.pc"'

check "make install defaults to /usr/local" \
  'env -u MAKEFLAGS -u MAKELEVEL make -n -C "$SRC" install BUILD="$BUILD" |
   grep -q -- "--prefix \"/usr/local\""'

# make install: PREFIX and DESTDIR (the build is up to date: it only
# checks). Not from a build tree it did not configure (say, LuaRocks').
locked env -u MAKEFLAGS -u MAKELEVEL make -s -C "$SRC" install \
  BUILD="$BUILD" PREFIX=/usr/mp DESTDIR="$tmp/mk" >"$tmp/log" 2>&1
check "make install honours PREFIX and DESTDIR" \
  '[ -x "$tmp/mk/usr/mp/bin/moonport" ] &&
   [ -f "$tmp/mk/usr/mp/include/moonport/moonport.h" ] &&
   grep -qx "prefix=/usr/mp" "$tmp/mk/usr/mp/lib/pkgconfig/moonport.pc"' ||
  cat "$tmp/log"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
