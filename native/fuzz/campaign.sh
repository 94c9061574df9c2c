#!/usr/bin/env bash
# A bounded libFuzzer campaign over the fuzz targets (native/fuzz/README.md).
#
#   native/fuzz/campaign.sh [-t SECONDS] [-o OUTDIR] [-s SEED] [-m] [TARGET...]
#
# Builds the targets with clang + libFuzzer + ASan + UBSan in OUTDIR/build (default target/fuzz), then
# fuzzes each TARGET (default: all) for SECONDS (default 60), starting from the committed corpus
# (corpus/TARGET, read-only) and writing what it finds to OUTDIR/work/TARGET. Prints and writes
# OUTDIR/summary.md: executions, coverage, corpus size and crashes per target. With -m, new inputs that
# add coverage are merged into the committed corpus (libFuzzer -merge=1), for committing.
# -s fixes libFuzzer's seed (CI does, so that its short campaign is reproducible; default: random).
# Exits 1 when a target crashed (the input is in OUTDIR/crashes/, replay it with fuzz_replay_TARGET).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
native=$(cd "$here/.." && pwd)
seconds=60 out="$native/../target/fuzz" merge=0 seed=0
while getopts "t:o:s:m" opt; do
  case $opt in
    t) seconds=$OPTARG ;;
    o) out=$OPTARG ;;
    s) seed=$OPTARG ;;
    m) merge=1 ;;
    *) echo "usage: $0 [-t SECONDS] [-o OUTDIR] [-m] [TARGET...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
mkdir -p "$out"
out=$(cd "$out" && pwd)

cc=${CC:-}
if [ -z "$cc" ]; then
  for c in clang clang-19 clang-16 clang-15 clang-14; do command -v $c >/dev/null && { cc=$c; break; }; done
fi
if [ -z "$cc" ]; then
  echo "error: no clang found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

all=$(sed -n 's/^set(ISTHMUS_FUZZ_TARGETS \(.*\))$/\1/p' "$here/CMakeLists.txt")
targets=${*:-$all}

echo "== building fuzz targets with $cc in $out/build"
cmake -S "$native" -B "$out/build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DISTHMUS_FUZZ=ON -DISTHMUS_SANITIZE=ON -DISTHMUS_TESTS=OFF -DISTHMUS_BENCH=OFF >/dev/null
cmake --build "$out/build" --parallel "$(nproc)" --target $(for t in $targets; do echo fuzz_$t; done) >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
summary="$out/summary.md"
{
  echo "| target | seconds | executions | exec/s | coverage (edges) | features | corpus | crashes |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
} >"$summary"
failed=0 total=0
for t in $targets; do
  work="$out/work/$t" crashes="$out/crashes"
  mkdir -p "$work" "$crashes" "$here/corpus/$t"
  log="$out/$t.log"
  echo "== fuzz_$t for ${seconds}s"
  set +e
  "$out/build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=4096 -seed="$seed" \
    -print_final_stats=1 -artifact_prefix="$crashes/$t-" "$work" "$here/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ncorp=$(ls "$work" "$here/corpus/$t" | grep -vc ':$' || true)
  ncrash=$(ls "$crashes" | grep -c "^$t-" || true)
  if [ $rc -ne 0 ]; then
    failed=1
    echo "fuzz_$t FAILED (exit $rc); last lines of $log:" >&2
    tail -40 "$log" >&2
  fi
  total=$((total + ${execs:-0}))
  echo "| $t | $seconds | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $ncorp | $ncrash |" >>"$summary"
  if [ $merge -eq 1 ] && [ $rc -eq 0 ]; then
    "$out/build/fuzz/fuzz_$t" -merge=1 -max_len=4096 "$here/corpus/$t" "$work" >>"$log" 2>&1
  fi
done
echo "| total | | $total | | | | | |" >>"$summary"
cat "$summary"
exit $failed
