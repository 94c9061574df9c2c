#!/usr/bin/env bash
# device-check.sh: everything the GPU machine is for, in one call (DEVICE.md). From the repository root:
#
#   cuda/test/device-check.sh            (OUT=dir for the result files, at most 8; BUILD_DIR=... for the build;
#                                         JAVA_WITHOUT_GPU=1 runs the Java step even without a GPU, to try .device-java/)
#
# Needs nvcc, cmake, python3 (+ PyTorch for the baseline), compute-sanitizer and cuobjdump; no Java, no Maven (the
# Java GPU tests run only when .device-java/ was made by cuda/test/prepare-java.sh and carried along).
# Budget, under 8 minutes in all: each step has its own timeout, and they add up to 475 s (a step that fails is
# reported and the rest go on, except that without a GPU it stops after test_cuda, which says why):
#   configure 25 s, build 140 s (CPU + CUDA libraries and the two CUDA test programs), test_cuda 75 s,
#   java_gpu_tests 50 s (only with .device-java/: CudaDeviceTest + CudaJCudaInteropTest on the carried JDK 25),
#   compute-sanitizer memcheck on test_cuda --small 45 s, SASS check 15 s, CPU ctest (only on an AVX-512 VNNI CPU
#   and only when under 200 s were used so far) 30 s, bench_cuda 50 s, torch_baseline.py 40 s, table 5 s.
#   (Before the Java step: configure 30, build 150, test_cuda 80, memcheck 50, ctest 35, bench 55, torch 45.)
# Files under $OUT (8, the most that come back): summary.txt (the final table), build.log, test.log (test_cuda,
# the Java tests' console tree, CPU ctest), sanitizer.log, sass.txt, bench.log, bench_cuda.json, torch_baseline.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/isthmus-device-check}
BUILD_DIR=${BUILD_DIR:-/tmp/isthmus-device-build}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
T0=$(date +%s)
say() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(($(date +%s) - T0)); }
step() { # step NAME TIMEOUT LOG CMD...: runs CMD under a timeout, appends to LOG, records the result
    local name=$1 limit=$2 log=$3
    shift 3
    local t=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    local what=ok
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && what="TIMEOUT after ${limit}s"
    [ $rc -ne 0 ] && [ "$what" = ok ] && what="FAILED (rc $rc)"
    [ $rc -eq 77 ] && what="SKIPPED (rc 77)"
    say "$(printf '%-22s %-22s %4ss  (log: %s)' "$name" "$what" $(($(date +%s) - t)) "$(basename "$log")")"
    return $rc
}

say "== isthmus device check, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
{
    echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
    echo "nvcc: $(nvcc --version 2>&1 | tail -1)"
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) cores)"
    echo "CPU AVX-512: $(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
} | tee -a "$SUMMARY"

JOBS=$(nproc)
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
step configure 25 "$OUT/build.log" cmake -S native -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DISTHMUS_CUDA=ON -DISTHMUS_BENCH=OFF || { say "configure failed: see build.log"; tail -20 "$OUT/build.log"; exit 1; }
step build 140 "$OUT/build.log" cmake --build "$BUILD_DIR" --parallel "$JOBS" \
    --target isthmus isthmus_cuda test_cuda bench_cuda isthmus_tests || { say "build failed: see build.log"; tail -30 "$OUT/build.log"; exit 1; }
grep -E "ptxas (warning|error)|warning:" "$OUT/build.log" | sort | uniq -c | head -20 | tee -a "$SUMMARY"

# The Java GPU tests, on the JDK 25 runtime and jars that cuda/test/prepare-java.sh made (no Java on this machine).
# Their console tree goes into test.log; the table gets the counts.
java_step() {
    if [ -f .device-java/jre/bin/java ]; then
        echo "== java_gpu_tests (cuda/test/java-gpu-tests.sh $BUILD_DIR)" >>"$OUT/test.log"
        step java_gpu_tests 50 "$OUT/test.log" cuda/test/java-gpu-tests.sh "$BUILD_DIR"
        jt=$(sed -n '/== java_gpu_tests/,$p' "$OUT/test.log")
        count() { echo "$jt" | sed -n "s/^\[ *\([0-9]*\) tests $1 *\]$/\1/p" | tail -1; }
        pass=$(count successful) fail=$(count failed) aborted=$(count aborted) disabled=$(count skipped)
        say "$(printf '%-22s pass %s, fail %s, skip %s (aborted %s + disabled %s)' java_tests "${pass:-?}" "${fail:-?}" \
            $((${aborted:-0} + ${disabled:-0})) "${aborted:-?}" "${disabled:-?}")"
        [ "${aborted:-0}" -gt 0 ] && say "  why skipped: $(echo "$jt" | grep -m1 -oE 'Assumption failed: .*')"
        echo "$jt" | grep -m1 '^java-gpu-tests: ' | sed 's/^/  /' | tee -a "$SUMMARY"
    else
        say "java_gpu_tests: skipped (no .device-java/: run cuda/test/prepare-java.sh before the session, carry .device-java)"
    fi
}

step test_cuda 75 "$OUT/test.log" "$BUILD_DIR/cuda/test_cuda"
rc=$?
tail -5 "$OUT/test.log" | tee -a "$SUMMARY"
if [ $rc -eq 77 ]; then
    say "no usable GPU here (test_cuda: $(grep SKIPPED "$OUT/test.log" | head -1)); stopping after the host checks"
    [ "${JAVA_WITHOUT_GPU:-0}" = 1 ] && java_step   # tries the carried Java setup: every test must skip, saying why
    exit 77
fi

java_step

if command -v compute-sanitizer >/dev/null; then
    step memcheck 45 "$OUT/sanitizer.log" compute-sanitizer --tool memcheck --error-exitcode 3 \
        "$BUILD_DIR/cuda/test_cuda" --small
    grep -E "ERROR SUMMARY" "$OUT/sanitizer.log" | tail -1 | tee -a "$SUMMARY"
else
    say "memcheck: compute-sanitizer not found"
fi

{
    so="$BUILD_DIR/libisthmus_cuda.so"
    timeout 5 cuobjdump --list-elf "$so"
    timeout 5 cuobjdump --list-ptx "$so"
    timeout 10 cuobjdump --dump-sass "$so" >"$BUILD_DIR/sass.txt"
    echo "SASS lines: $(wc -l <"$BUILD_DIR/sass.txt")"
    echo "IMMA (mma.sync int8): $(grep -c IMMA "$BUILD_DIR/sass.txt")"
    echo "HGMMA / IGMMA (wgmma): $(grep -cE 'HGMMA|IGMMA' "$BUILD_DIR/sass.txt")"
    echo "IDP4A (skinny dp4a): $(grep -c IDP4A "$BUILD_DIR/sass.txt")"
    echo "local memory (spills) STL: $(grep -c 'STL' "$BUILD_DIR/sass.txt")"
    for f in $(grep -oE 'Function : [A-Za-z0-9_]+' "$BUILD_DIR/sass.txt" | awk '{print $3}' | sort -u); do
        echo "  $f"
    done | head -60
} >"$OUT/sass.txt" 2>&1
say "$(printf '%-22s %s' sass "$(grep -E '^(IMMA|HGMMA|IDP4A)' "$OUT/sass.txt" | tr '\n' ';')")"

if grep -q avx512_vnni /proc/cpuinfo && [ "$(elapsed)" -lt 200 ]; then
    (cd "$BUILD_DIR" && step cpu_ctest 30 "$OUT/test.log" ctest -R '^native_' --output-on-failure -E hygiene)
else
    say "cpu_ctest: skipped ($(grep -q avx512_vnni /proc/cpuinfo && echo "time: $(elapsed)s used" || echo 'no AVX-512 VNNI on this CPU'))"
fi

step bench_cuda 50 "$OUT/bench.log" "$BUILD_DIR/cuda/bench_cuda" --json "$OUT/bench_cuda.json" --iters 30
step torch_baseline 40 "$OUT/bench.log" python3 cuda/test/torch_baseline.py --json "$OUT/torch_baseline.json" --iters 30

timeout 5 python3 - "$OUT/bench_cuda.json" "$OUT/torch_baseline.json" <<'EOF' 2>&1 | tee -a "$SUMMARY"
import json, sys
try:
    b = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"no bench_cuda results: {e}"); sys.exit(0)
try:
    t = json.load(open(sys.argv[2]))["results"]
except Exception as e:
    print(f"no torch results: {e}"); t = []
copy = b["copy_gbs"]
print(f"\n{b['device']} (sm_{b['sm']}, driver {b['driver']}): D2D copy {copy:.0f} GB/s (read + write)")
print(f"{'shape':16s} {'isthmus kernel':40s} {'ms':>9s} {'TOPS':>7s} {'GB/s W':>7s} {'%copy':>6s} | {'torch':26s} {'ms':>9s} | {'ratio':>6s}  bar")
for shape in ["8192x8192x8192", "512x14336x4096", "1x14336x4096", "8x14336x4096", "16x14336x4096"]:
    mine = [r for r in b["results"] if r["shape"] == shape]
    if not mine:
        continue
    theirs = [r for r in t if r["shape"] == shape]
    tbest = min(theirs, key=lambda r: r["median_ms"]) if theirs else None
    auto = next((r for r in mine if r["kernel"] == "AUTO" and r["y"] == "s32"), mine[0])
    for r in mine:
        tl = f"{tbest['op']} M={tbest['m']}" if tbest else "-"
        tm = f"{tbest['median_ms']:9.4f}" if tbest else "-"
        ratio = tbest["median_ms"] / r["median_ms"] if tbest else float("nan")
        bar = ""
        if r is auto:
            if shape == "8192x8192x8192":
                bar = f"{'PASS' if ratio >= 0.9 else 'FAIL'} (>= 0.9x torch._int_mm)"
            elif shape == "512x14336x4096":
                bar = f"{'PASS' if ratio >= 1.0 else 'FAIL'} (>= 1.0x torch._int_mm)"
            else:
                ok = r["pct_copy"] >= 80 and ratio > 1.0
                bar = f"{'PASS' if ok else 'FAIL'} (>= 80% copy and faster than torch)"
        name = f"{r['kernel']} {r['variant']} {r['y']}"
        print(f"{shape:16s} {name[:40]:40s} {r['median_ms']:9.4f} {r['tops']:7.1f} {r['weight_gbs']:7.1f} {r['pct_copy']:6.1f} | "
              f"{tl:26s} {tm:>9s} | {ratio:6.2f}  {bar}")
print("ratio = torch median / isthmus median (> 1: isthmus faster); decode rows compare with torch's best of "
      "_int_mm at M = 17 / 32 and bf16 matmul at the same M")
EOF
say "total $(elapsed) s"
