#!/usr/bin/env bash
# The speculative decoding demo: builds isthmus (tests skipped), then decodes the same prompts with a
# Llama-architecture target on isthmus ops alone and speculatively with a draft made from it, greedy and
# sampled, and prints tokens/s of both, the speedup, the acceptance rate, tokens per target step, the
# per-kernel time split, and (greedy) whether both outputs are equal token for token.
#   bench/demo.sh                          tiny preset (seconds), draft skip:2, k = 4, batch 1
#   bench/demo.sh --preset small           TinyLlama-1.1B shape (~1.1 GB int8; about a minute)
#   bench/demo.sh --bar                    verification + sampling at V = 128K, k = 4, batch 8 vs a target step
#   bench/demo.sh --help                   every option
set -euo pipefail
cd "$(dirname "$0")/.."
jdk=""
for d in "${JAVA_HOME:-}" /usr/lib/jvm/*25*; do
  if [ -n "$d" ] && [ -x "$d/bin/java" ] && "$d/bin/java" -version 2>&1 | grep -q 'version "25'; then jdk=$d; break; fi
done
if [ -z "$jdk" ]; then echo "bench/demo.sh: needs a JDK 25 (JAVA_HOME or /usr/lib/jvm/*25*)" >&2; exit 1; fi
if [ "${ISTHMUS_DEMO_NO_BUILD:-}" != 1 ]; then
  mvn -B -q package -pl bench -am -DskipTests -Disthmus.ctest.skip=true
fi
exec "$jdk/bin/java" --enable-native-access=ALL-UNNAMED -cp bench/target/benchmarks.jar \
  dev.isthmus.bench.demo.Demo "$@"
