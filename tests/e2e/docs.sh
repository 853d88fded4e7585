#!/usr/bin/env bash
# docs.sh: every ```lua example in the documentation runs as shown, under
# the moonport command, in an empty directory: it must exit 0 with nothing
# on stderr, and print what its "--> value" comments say (in order). An
# example preceded by "<!-- doc-test: serves -->" is a server: it must
# still be running after a second, with nothing on stderr.
set -u
MP=${MOONPORT:?}
SRC=${MP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
DOCS="README.md docs/files.md docs/net.md docs/proc.md docs/workers.md"
# mp.http's page when the build has it (MP_WITH_HTTP)
"$MP" -e 'os.exit(require("moonport").http and 0 or 1)' 2>/dev/null &&
  DOCS="$DOCS docs/http.md"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

# Splits each file into ex-N.lua (and ex-N.serves for servers) in $tmp.
n=0
for doc in $DOCS; do
  n=$(awk -v dir="$tmp" -v doc="$doc" -v n="$n" '
    /^<!-- doc-test: serves -->/ { serves = 1 }
    /^```lua/ { n++; f = dir "/ex-" n ".lua"; inside = 1
                print doc > (dir "/ex-" n ".doc")
                if (serves) print "" > (dir "/ex-" n ".serves")
                serves = 0; next }
    /^```/ { if (inside) close(f); inside = 0; next }
    inside { print > f }
    END { print n }' "$SRC/$doc")
done
[ "$n" -gt 0 ] || { echo "not ok - no examples found"; exit 1; }

for i in $(seq 1 "$n"); do
  ex="$tmp/ex-$i.lua" name="example $i of $(cat "$tmp/ex-$i.doc")"
  mkdir "$tmp/run-$i"
  if [ -e "$tmp/ex-$i.serves" ]; then
    (cd "$tmp/run-$i" && exec "$MP" "$ex") >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    sleep 1
    if kill -0 $pid 2>/dev/null && [ ! -s "$tmp/err" ]; then ok=1; else ok=0; fi
    kill $pid 2>/dev/null; wait $pid 2>/dev/null
  else
    (cd "$tmp/run-$i" && timeout 30 "$MP" "$ex") >"$tmp/out" 2>"$tmp/err"
    st=$?
    ok=0
    if [ $st -eq 0 ] && [ ! -s "$tmp/err" ]; then
      # each "--> v" comment, whitespace-normalised, in order in stdout
      ok=1
      tr -s ' \t' ' ' <"$tmp/out" >"$tmp/norm"
      start=1
      while IFS= read -r want; do
        line=$(tail -n +"$start" "$tmp/norm" | grep -nxF -- "$want" |
               head -1 | cut -d: -f1)
        if [ -z "$line" ]; then ok=0; echo "    missing: $want"; break; fi
        start=$((start + line))
      done < <(sed -n 's/.*--> *//p' "$ex" | tr -s ' \t' ' ')
    fi
  fi
  if [ $ok -eq 1 ]; then pass=$((pass + 1)); echo "ok - $name"
  else
    fail=$((fail + 1)); echo "not ok - $name"; cat "$ex" "$tmp/out" "$tmp/err"
  fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
