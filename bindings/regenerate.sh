#!/usr/bin/env bash
# Regenerates the committed jextract output for native/include/isthmus.h. Needs `jextract` (JDK 23+
# flavour) on PATH; see README "Regenerating the bindings". The output is committed and never edited.
# Only the header's own declarations are kept (isthmus_* / ISTHMUS_*), not <stdint.h>'s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/src/main/java"
pkg=dev.isthmus.bindings
header="$root/native/include/isthmus.h"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

jextract --dump-includes "$tmp/all.txt" "$header" >/dev/null
grep -E ' (isthmus|ISTHMUS)_' "$tmp/all.txt" > "$tmp/includes.txt"

rm -rf "$out/${pkg//.//}"
jextract --output "$out" --target-package "$pkg" --header-class-name Isthmus \
    @"$tmp/includes.txt" "$header"
echo "regenerated $(find "$out/${pkg//.//}" -name '*.java' | wc -l) files under $out/${pkg//.//}"
