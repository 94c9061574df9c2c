#!/usr/bin/env bash
# Regenerates the committed jextract output for both C ABIs. Needs `jextract` (JDK 23+ flavour) on PATH;
# see README "Regenerating the bindings". The output is committed and never edited.
#   native/include/isthmus.h     -> dev.isthmus.bindings       (header class Isthmus)
#   cuda/include/isthmus_cuda.h  -> dev.isthmus.bindings.cuda  (header class IsthmusCuda)
# Only each header's own declarations are kept (isthmus_* / ISTHMUS_*, isthmus_cuda_* / ISTHMUS_CUDA_*), not
# <stdint.h>'s. The CUDA package is a sub-folder of the CPU one, so each run deletes only the .java files
# directly in its own package folder (never a sub-folder): regenerating one header leaves the other's output alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/src/main/java"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# generate <header> <package> <header class> <prefix regex>
generate() {
    local header=$1 pkg=$2 cls=$3 prefix=$4
    local dir="$out/${pkg//.//}"
    jextract --dump-includes "$tmp/all.txt" "$header" >/dev/null
    grep -E " ($prefix)_" "$tmp/all.txt" > "$tmp/includes.txt"
    # jextract writes into $out/<package>/; start from an empty package (its own files only)
    mkdir -p "$dir"
    find "$dir" -maxdepth 1 -type f -name '*.java' -delete
    jextract --output "$out" --target-package "$pkg" --header-class-name "$cls" \
        @"$tmp/includes.txt" "$header"
    echo "regenerated $(find "$dir" -maxdepth 1 -name '*.java' | wc -l) files under $dir"
}

generate "$root/native/include/isthmus.h" dev.isthmus.bindings Isthmus 'isthmus|ISTHMUS'
generate "$root/cuda/include/isthmus_cuda.h" dev.isthmus.bindings.cuda IsthmusCuda 'isthmus_cuda|ISTHMUS_CUDA'
