package dev.isthmus.bench;

import dev.isthmus.bench.kernels.GemmKernel;
import dev.isthmus.bench.kernels.Kernels;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * {@code y[M,N] = x[M,K] . W[N,K]^T} at LLM decode (M = 1, 8) and prefill (M = 32..512) shapes, per
 * implementation ({@link Impl}). Score: average time per GEMM; GOP/s = 2*M*N*K / time (the runner,
 * {@link BenchSuite}, converts). Every implementation is set up on the same deterministic inputs, run once
 * and checked against an f64 reference before it is timed.
 *
 * <p>Run it through {@link BenchSuite}, which skips the combinations this machine cannot run. Run directly
 * (java -cp bench/target/benchmarks.jar org.openjdk.jmh.Main GemmBenchmark -p impl=... -p shape=...), an
 * unsupported combination fails in {@code @Setup} with the reason.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 5, time = 1)
public class GemmBenchmark {
    /** The benchmark's threads: every implementation gets the same number. */
    public static final String THREADS_PROPERTY = "isthmus.bench.threads";
    /** A file the setup writes the kernel's description to (the runner passes one per run). */
    public static final String DESCRIBE_PROPERTY = "isthmus.bench.describe";

    /** Held so that the level set on it stays (java.util.logging keeps loggers weakly). */
    private static final java.util.logging.Logger ISTHMUS_LOG = java.util.logging.Logger.getLogger("dev.isthmus");

    /** The isthmus loader logs its path at INFO in every JVM: keep the runner's console for results. */
    static void quietIsthmusLog() {
        ISTHMUS_LOG.setLevel(java.util.logging.Level.WARNING);
    }

    @Param({"1x4096x4096", "8x4096x4096", "32x4096x4096", "128x4096x4096", "512x4096x4096", "1x11008x4096"})
    public String shape;

    @Param({"isthmus-avx512", "isthmus-avx2", "isthmus-ref", "isthmus-avx512-g32", "isthmus-avx2-g32", "isthmus-fused",
            "java-f32", "vector-int8", "jlama-q8q4", "onednn", "openblas-f32"})
    public String impl;

    private GemmKernel kernel;
    /** Copies of the kernel with their own weights, cycled so that weights stream from memory. */
    private GemmKernel[] copies;
    private int next;

    /** Weights of all copies together exceed this (8x a 32 MB L3), so decode shapes are not L3-resident. */
    public static final long ROTATE_BYTES = 256L << 20;

    /** Bytes of weights one kernel reads per GEMM, or 0 when rotating would not change what is measured. */
    static long weightBytes(Impl i, Shape s) {
        long nk = (long) s.n() * s.k();
        return switch (i) {
            case ISTHMUS_AVX512, ISTHMUS_AVX2, ISTHMUS_AVX512_G32, ISTHMUS_AVX2_G32, ISTHMUS_FUSED, VECTOR_INT8, ONEDNN -> nk;
            case JLAMA_Q8Q4 -> nk / 2;
            default -> 0; // ref, f32 baselines: compute-bound, or f32 weights already larger than L3
        };
    }

    /** Hands the setup's one-line description to the runner (the file it named), or prints it when run directly. */
    static void publish(String impl, String workload, String describe) {
        String file = System.getProperty(DESCRIBE_PROPERTY);
        try {
            if (file != null) Files.writeString(Path.of(file), describe);
            else System.out.println("# " + impl + " " + workload + ": " + describe);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static int threads() {
        return Integer.getInteger(THREADS_PROPERTY, Runtime.getRuntime().availableProcessors());
    }

    @Setup(Level.Trial)
    public void setup() {
        quietIsthmusLog();
        Shape s = Shape.parse(shape);
        Impl i = Impl.of(impl);
        String skip = Availability.skipReason(i, s);
        if (skip != null) throw new IllegalStateException(impl + " skipped for " + shape + ": " + skip);
        kernel = Kernels.createChecked(i, s, threads());
        long wb = weightBytes(i, s);
        int n = wb == 0 ? 1 : (int) Math.min(16, Math.max(1, (ROTATE_BYTES + wb - 1) / wb));
        copies = new GemmKernel[n];
        copies[0] = kernel;
        if (n > 1) {
            float[] x = Data.activations(s), w = Data.weights(s);
            for (int c = 1; c < n; c++) copies[c] = Kernels.create(i, s, x, w, threads());
        }
        String describe = kernel.describe() + (n > 1 ? String.format(java.util.Locale.ROOT,
                "; weights rotate over %d copies (%.0f MB) so they stream from memory", n, n * wb / 1048576.0) : "");
        publish(impl, shape, describe);
    }

    @Benchmark
    public void gemm() {
        GemmKernel k = copies[next];
        next = next + 1 == copies.length ? 0 : next + 1;
        k.run();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (copies != null) for (GemmKernel k : copies) if (k != null) k.close();
        copies = null;
        kernel = null;
    }
}
