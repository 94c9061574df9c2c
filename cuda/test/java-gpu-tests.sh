#!/usr/bin/env bash
# java-gpu-tests.sh LIBDIR: the Java GPU tests (CudaDeviceTest, CudaJCudaInteropTest) with the runtime and jars
# that cuda/test/prepare-java.sh put in .device-java/ (DEVICE_JAVA=... for another folder), against the
# libisthmus.so and libisthmus_cuda.so in LIBDIR (device-check.sh passes its build folder). Class path, so
# --enable-native-access=ALL-UNNAMED. Prints the JUnit console tree (ASCII) and its summary; exit status 0 when
# nothing failed, 1 on a failure, 2 when no test was found (a wrong class path). -Disthmus.test.requireGpu=true:
# on the GPU machine a test skipped for want of a GPU means a broken setup, so CudaTestSupport fails it instead
# (not with JAVA_WITHOUT_GPU=1, which tries the carried setup where there is no GPU: then every test skips).
# With both -D paths set the loaders never look for jar-embedded libraries.
set -uo pipefail
cd "$(dirname "$0")/../.."
DJ=${DEVICE_JAVA:-.device-java}
LIBDIR=${1:?usage: cuda/test/java-gpu-tests.sh LIBDIR (the folder with libisthmus.so and libisthmus_cuda.so)}
[ -f "$DJ/jre/bin/java" ] && [ ! -x "$DJ/jre/bin/java" ] && chmod u+x "$DJ/jre/bin/"* "$DJ/jre/lib/jspawnhelper" "$DJ/jre/lib/jexec"
[ -x "$DJ/jre/bin/java" ] || { echo "java-gpu-tests: no $DJ/jre/bin/java: run cuda/test/prepare-java.sh first"; exit 2; }
for f in libisthmus.so libisthmus_cuda.so; do
    [ -f "$LIBDIR/$f" ] || { echo "java-gpu-tests: no $LIBDIR/$f"; exit 2; }
done
LIBDIR=$(cd "$LIBDIR" && pwd)
echo "java-gpu-tests: $(head -1 "$DJ/BUILD-INFO" 2>/dev/null) (tree: $(git rev-parse HEAD 2>/dev/null || echo '?'))"
CP=$DJ/lib/isthmus-tests.jar:$DJ/lib/isthmus.jar:$DJ/lib/isthmus-bindings.jar:$DJ/lib/jcuda.jar:$DJ/lib/jcuda-natives-linux-x86_64.jar
TMP=$(mktemp -d)   # JCuda extracts its natives into java.io.tmpdir
trap 'rm -rf "$TMP"' EXIT
REQUIRE=true
[ "${JAVA_WITHOUT_GPU:-0}" = 1 ] && REQUIRE=false   # trying the carried setup on a machine without a GPU: skips
"$DJ/jre/bin/java" --enable-native-access=ALL-UNNAMED -Xss8m -Djava.io.tmpdir="$TMP" \
    -Disthmus.test.requireGpu=$REQUIRE -Disthmus.library.path="$LIBDIR/libisthmus.so" -Disthmus.cuda.library.path="$LIBDIR/libisthmus_cuda.so" \
    -jar "$DJ/lib/junit-platform-console-standalone.jar" execute --class-path "$CP" \
    --select-class dev.isthmus.CudaDeviceTest --select-class dev.isthmus.CudaJCudaInteropTest \
    --details=tree --details-theme=ascii --disable-banner --disable-ansi-colors --fail-if-no-tests
