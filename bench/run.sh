#!/usr/bin/env bash
# The benchmark demo: builds isthmus (tests skipped), then runs the INT8 GEMM suite against its
# baselines and writes bench/results/<date>-<cpu>.{md,json,png}. Options go to the runner
# (dev.isthmus.bench.BenchSuite): --quick, --shapes 1x4096x4096,..., --impls isthmus-avx512,...,
# --threads N, --out DIR, --list.
#   bench/run.sh --suite attention [--quick]: attention over the paged KV cache instead (decode GB/s
# against the read bandwidth, prefill GFLOP/s against the Vector API), written to
# bench/results/<date>-<cpu>-attention.{md,json,png}; --cases decode-4096-b8-f16,... picks cases.
#   bench/run.sh --suite sparse [--quick]: sparse matmul (CSR, BSR, 2:4; f32 and int8) against dense
# OpenBLAS sgemm/sgemv and the project's dense INT8 GEMM, written to
# bench/results/<date>-<cpu>-sparse.{md,json}; --cases f32-csr-90-m1,... picks cases.
#   bench/run.sh --demo [options]: the speculative decoding demo instead (bench/demo.sh; --demo --help).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--demo" ]; then shift; exec bench/demo.sh "$@"; fi
jdk=""
for d in "${JAVA_HOME:-}" /usr/lib/jvm/*25*; do
  if [ -n "$d" ] && [ -x "$d/bin/java" ] && "$d/bin/java" -version 2>&1 | grep -q 'version "25'; then jdk=$d; break; fi
done
if [ -z "$jdk" ]; then echo "bench/run.sh: needs a JDK 25 (JAVA_HOME or /usr/lib/jvm/*25*)" >&2; exit 1; fi
mvn -B -q install -DskipTests
exec "$jdk/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector \
  --sun-misc-unsafe-memory-access=allow \
  -Disthmus.bench.lib=native/target/cmake/bench/libisthmus_bench.so \
  -jar bench/target/benchmarks.jar "$@"
