#!/usr/bin/env bash
# prepare-java.sh: run HERE (a machine with JDK 25 and Maven), before a device session. The GPU machine has no
# Java and no Maven, so this puts everything the Java GPU tests (CudaDeviceTest, CudaJCudaInteropTest) need into
# ONE ignored folder, .device-java/, for the device tool's `carry` (64 MiB in all with the tree):
#
#   jre/                  a jlinked JDK 25 runtime (java.base, jdk.incubator.vector, java.logging, java.management,
#                         jdk.unsupported; no java.xml, so the launcher prints its tree and writes no XML report),
#                         libjvm.so's symbol table stripped (about 5 MB)
#   lib/                  junit-platform-console-standalone (the version of the poms' junit.version), isthmus and
#                         isthmus-bindings jars, jcuda, and a jcuda-natives jar cut down to libJCudaDriver and
#                         libJCudaRuntime (the 24 MB PTX compiler and NVRTC are left out: the tests do not use them)
#                         and isthmus-tests.jar (java/target/test-classes: a jar, so no file names with '$' travel)
#   BUILD-INFO            the commit and time it was made from
#
# NO libisthmus*.so: device-check.sh builds them on the device (its nvcc matches its driver) and
# cuda/test/java-gpu-tests.sh points the loaders at them (-Disthmus.library.path, -Disthmus.cuda.library.path;
# with both set, the jar-embedded copies are never looked at, and the isthmus-native jar is not carried).
#
# The jars: reused from bindings/target and java/target when they are newer than every source and pom under
# bindings/ and java/ (REBUILD=1 forces a build); otherwise built with
#   flock /tmp/isthmus-heavy.lock mvn -B -o -q package -DskipTests -Disthmus.ctest.skip=true -pl bindings,java
# (isthmus-native then comes from ~/.m2; if that fails, the same with -am, which also runs the CMake build).
# Prints the folder's size; fails above 55 MiB (MAX_MIB).
#
# JCuda 12.6.0's natives (checked with readelf -d): libJCudaDriver needs libcuda.so.1 (the driver, backward
# compatible, so a CUDA 13 driver serves it) plus libc/libstdc++/libdl/librt/libpthread; libJCudaRuntime has the
# CUDA runtime linked in statically (no libcudart.so.12). Only libJNvrtc needs libnvrtc.so.12; it is not carried.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DJ=$ROOT/.device-java
MAX_MIB=${MAX_MIB:-55}
M2=${M2_REPO:-$HOME/.m2/repository}
JDK=${JDK:-$(ls -d /usr/lib/jvm/temurin-25* 2>/dev/null | head -1)}
[ -x "$JDK/bin/jlink" ] || { echo "prepare-java: no JDK 25 with jlink (looked at /usr/lib/jvm/temurin-25*; set JDK=...)" >&2; exit 1; }
MODULES=java.base,jdk.incubator.vector,java.logging,java.management,jdk.unsupported

pom_prop() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$2" | head -1; }
JUNIT=$(pom_prop junit.version pom.xml)
case $JUNIT in
    5.*) PLATFORM=1.${JUNIT#5.} ;;   # JUnit 5.x.y runs on platform 1.x.y
    *) PLATFORM=$JUNIT ;;            # JUnit 6 and later: one version for all
esac
JCUDA=$(grep -A2 '<artifactId>jcuda</artifactId>' java/pom.xml | pom_prop version /dev/stdin)
[ -n "$JCUDA" ] || { echo "prepare-java: no jcuda version in java/pom.xml" >&2; exit 1; }
VERSION=$(pom_prop version java/pom.xml)   # the parent's version, first <version> in the file

# 1. the project's jars and test classes
JAR_BINDINGS=bindings/target/isthmus-bindings-$VERSION.jar
JAR_JAVA=java/target/isthmus-$VERSION.jar
stale() {
    [ "${REBUILD:-0}" = 1 ] && return 0
    [ -f "$JAR_BINDINGS" ] && [ -f "$JAR_JAVA" ] && [ -d java/target/test-classes/dev/isthmus ] || return 0
    local newer
    newer=$(find pom.xml bindings/pom.xml java/pom.xml bindings/src java/src -newer "$JAR_JAVA" -type f -print -quit)
    [ -z "$newer" ] && newer=$(find bindings/pom.xml bindings/src -newer "$JAR_BINDINGS" -type f -print -quit)
    [ -n "$newer" ] && { echo "prepare-java: $newer is newer than the jars"; return 0; }
    return 1
}
if stale; then
    echo "prepare-java: building bindings + java (mvn package -DskipTests, offline, under /tmp/isthmus-heavy.lock)"
    t=$(date +%s)
    MVN=(mvn -B -o -q package -DskipTests -Disthmus.ctest.skip=true)
    flock /tmp/isthmus-heavy.lock "${MVN[@]}" -pl bindings,java ||
        { echo "prepare-java: retrying with -am (builds native/ too)"; flock /tmp/isthmus-heavy.lock "${MVN[@]}" -pl bindings,java -am; }
    echo "prepare-java: built in $(($(date +%s) - t)) s"
else
    echo "prepare-java: reusing $JAR_BINDINGS, $JAR_JAVA and java/target/test-classes (newer than every source; REBUILD=1 rebuilds)"
fi
for c in dev/isthmus/CudaDeviceTest.class dev/isthmus/CudaJCudaInteropTest.class dev/isthmus/CudaTestSupport.class; do
    [ -f "java/target/test-classes/$c" ] || { echo "prepare-java: java/target/test-classes/$c missing" >&2; exit 1; }
done

# 2. the console launcher: ~/.m2, else Maven Central through the dependency plugin
CONSOLE_GAV=org.junit.platform:junit-platform-console-standalone:$PLATFORM
CONSOLE=$M2/org/junit/platform/junit-platform-console-standalone/$PLATFORM/junit-platform-console-standalone-$PLATFORM.jar
if [ ! -f "$CONSOLE" ]; then
    echo "prepare-java: fetching $CONSOLE_GAV"
    mvn -B -q dependency:get -Dartifact="$CONSOLE_GAV" -Dtransitive=false >/dev/null ||
        { echo "prepare-java: cannot get $CONSOLE_GAV (offline? put it in $M2)" >&2; exit 1; }
fi
JCUDA_JAR=$M2/org/jcuda/jcuda/$JCUDA/jcuda-$JCUDA.jar
JCUDA_NATIVES=$M2/org/jcuda/jcuda-natives/$JCUDA/jcuda-natives-$JCUDA-linux-x86_64.jar
for f in "$JCUDA_JAR" "$JCUDA_NATIVES"; do
    [ -f "$f" ] || { echo "prepare-java: $f missing (run mvn -B test-compile -pl java once online)" >&2; exit 1; }
done

# 3. the folder, from scratch
rm -rf "$DJ"
mkdir -p "$DJ/lib"
echo "prepare-java: jlink $MODULES"
"$JDK/bin/jlink" --add-modules "$MODULES" --strip-debug --no-header-files --no-man-pages --compress zip-9 \
    --output "$DJ/jre" 2>&1 | grep -v 'Using incubator modules' || true
if command -v strip >/dev/null; then
    chmod u+w "$DJ/jre/lib/server/libjvm.so"
    strip --strip-unneeded "$DJ/jre/lib/server/libjvm.so"   # .symtab only: the dynamic symbols stay
fi
"$DJ/jre/bin/java" -version 2>&1 | head -1
cp "$CONSOLE" "$DJ/lib/junit-platform-console-standalone.jar"
cp "$JAR_BINDINGS" "$DJ/lib/isthmus-bindings.jar"
cp "$JAR_JAVA" "$DJ/lib/isthmus.jar"
cp "$JCUDA_JAR" "$DJ/lib/jcuda.jar"
"$JDK/bin/jar" --create --file "$DJ/lib/isthmus-tests.jar" -C java/target/test-classes dev
# jlink links the legal/ files of each module to java.base's: plain copies, so nothing but plain files travels
find "$DJ" -type l | while read -r l; do cp --remove-destination "$(readlink -f "$l")" "$l"; done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && unzip -q "$JCUDA_NATIVES" "lib/libJCudaDriver-*" "lib/libJCudaRuntime-*" &&
    "$JDK/bin/jar" --create --file "$DJ/lib/jcuda-natives-linux-x86_64.jar" lib)
{
    echo "commit $(git rev-parse HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- bindings java 2>/dev/null || echo ' (+ uncommitted changes under bindings/ or java/)')"
    echo "made $(date -u +%FT%TZ) on $(hostname) by cuda/test/prepare-java.sh"
    echo "jdk $("$DJ/jre/bin/java" -version 2>&1 | head -1); modules $MODULES"
    echo "junit $JUNIT (console standalone $PLATFORM), jcuda $JCUDA (natives: libJCudaDriver, libJCudaRuntime)"
} >"$DJ/BUILD-INFO"

# 4. checks: no isthmus native library anywhere in it, and the size
if find "$DJ" -name 'libisthmus*' | grep -q . ||
    for j in "$DJ"/lib/*.jar; do unzip -l "$j"; done | grep -q 'libisthmus'; then
    echo "prepare-java: a libisthmus*.so ended up in $DJ (it must come from the device's build)" >&2
    exit 1
fi
bytes=$(du -sb "$DJ" | cut -f1)
odd=$(find "$DJ" ! -type f ! -type d -o -type f ! -regex '[A-Za-z0-9._/+-]*' | head -3)
[ -z "$odd" ] || { echo "prepare-java: not plain files with plain names (may not travel): $odd" >&2; exit 1; }
du -sh "$DJ"/jre "$DJ"/lib/* | sed 's:^:  :'
echo "prepare-java: $DJ is $((bytes / 1024 / 1024)) MiB ($bytes bytes; limit $MAX_MIB MiB)"
if [ "$bytes" -gt $((MAX_MIB * 1024 * 1024)) ]; then
    echo "prepare-java: too big for the device tool's carry (64 MiB with the tree)" >&2
    exit 1
fi
echo "prepare-java: done. On the device: run(command=\"OUT=\$OUT cuda/test/device-check.sh\", carry=[\".device-java\"], timeout_s=540)"
