# fs.writefile replaces a file the way users expect of an atomic replace:
# the mode (and, where permitted, the owner) of the file it replaces is
# kept; a symlink is written through (the link stays, its target gets the
# new contents); a file the caller may not write is not replaced (EACCES,
# as io.open(path, "w")); directories and FIFOs are refused, not replaced.
set -u
MP=${MOONPORT:?}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
chmod 0777 "$dir"
st=0
fail() { echo "FAIL $*"; st=1; }
# wf NAME DATA: writes $dir/NAME, prints "ok" or the error code and message
cat > "$dir/wf.lua" <<'LUA'
local ok, msg, code = require("moonport").fs.writefile(arg[1], arg[2])
print(ok and "ok" or code .. " " .. msg)
LUA
wf() { $as_user timeout 20 "$MP" "$dir/wf.lua" "$dir/$1" "$2"; }
as_user=""

umask 022
echo old > "$dir/m"; chmod 0640 "$dir/m"
[ "$(wf m new)" = ok ] ||
  fail "writefile m"
[ "$(stat -c %a "$dir/m")" = 640 ] || fail "mode: $(stat -c %a "$dir/m")"
[ "$(cat "$dir/m")" = new ] || fail "contents of m"

[ "$(wf fresh 'x')" = ok ] ||
  fail "writefile fresh"
[ "$(stat -c %a "$dir/fresh")" = 644 ] ||
  fail "new file mode: $(stat -c %a "$dir/fresh")"

echo old > "$dir/real"; ln -s real "$dir/link"
mkdir "$dir/sub"; ln -s ../link "$dir/sub/link2"
[ "$(wf sub/link2 new)" = ok ] ||
  fail "writefile through links"
[ -L "$dir/link" ] && [ -L "$dir/sub/link2" ] || fail "links replaced"
[ "$(cat "$dir/real")" = new ] || fail "link target not written"
ln -s nowhere "$dir/dangling"
[ "$(wf dangling 'n')" = ok ] ||
  fail "writefile dangling link"
[ -L "$dir/dangling" ] && [ "$(cat "$dir/nowhere")" = n ] ||
  fail "dangling link"
ln -s loop1 "$dir/loop2"; ln -s loop2 "$dir/loop1"
out=$(wf loop1 n)
case $out in ELOOP*) ;; *) false;; esac || fail "symlink loop: $out"

mkdir "$dir/d"
out=$(wf d n)
case $out in EISDIR*) ;; *) false;; esac || fail "directory: $out"
[ -d "$dir/d" ] || fail "directory replaced"
mkfifo "$dir/fifo"
out=$(wf fifo n)
case $out in EINVAL*) ;; *) false;; esac || fail "fifo: $out"
[ -p "$dir/fifo" ] || fail "fifo replaced"

# a read-only file is not replaced behind its owner's back
if [ "$(id -u)" = 0 ]; then
  as_user="setpriv --reuid=65534 --regid=65534 --clear-groups"
fi
echo old > "$dir/ro"; chmod 0444 "$dir/ro"
[ -n "$as_user" ] && chown 65534:65534 "$dir/ro"
out=$(wf ro new)
case $out in "EACCES $dir/ro: Permission denied") ;;
  *) fail "read-only file: $out";; esac
[ "$(cat "$dir/ro")" = old ] || fail "read-only file replaced"

# the owner of the replaced file stays when the writer may keep it (root)
if [ -n "$as_user" ]; then
  as_user=""
  echo old > "$dir/own"; chown 65534:65534 "$dir/own"; chmod 0604 "$dir/own"
  [ "$(wf own new)" = ok ] || fail "writefile own"
  [ "$(stat -c %u:%g:%a "$dir/own")" = 65534:65534:604 ] ||
    fail "owner: $(stat -c %u:%g:%a "$dir/own")"
fi
left=$(ls -A "$dir" | grep mp-tmp)
[ -z "$left" ] || fail "left behind: $left"
[ $st -eq 0 ] && echo ok
exit $st
