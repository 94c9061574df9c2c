package dev.isthmus.bench;

import dev.isthmus.bench.kernels.AttentionKernel;
import dev.isthmus.bench.kernels.AttentionKernels;
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

import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * Attention over the paged KV cache at Llama-3-8B head shapes (32 query heads, 8 KV heads, head dim 128),
 * per {@link AttentionCase} and {@link AttentionImpl}: decode (q_len = 1) at contexts 512 to 32K with 1
 * or 8 sequences, per K/V storage type; prefill of a fresh 512-token sequence (causal). Score: average
 * time per attention call (K/V writes are not timed: the cache is built once per trial). The runner
 * ({@link AttentionSuite}) converts to GB/s of K/V read (decode) and GFLOP/s (prefill). Every
 * implementation runs once and is checked against an f64 reference before it is timed.
 *
 * <p>Run it through {@link BenchSuite} {@code --suite attention}, which skips what this machine cannot
 * run. Run directly (java -cp bench/target/benchmarks.jar org.openjdk.jmh.Main AttentionBenchmark -p
 * workload=... -p impl=...), an unsupported combination fails in {@code @Setup} with the reason.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 5, time = 1)
public class AttentionBenchmark {
    /** Decode K/V below this many bytes get more cache layers, read in turn (see IsthmusAttention). */
    public static final String ROTATE_PROPERTY = "isthmus.bench.attention.rotate";

    @Param({"decode-512-b1-f32", "decode-512-b1-f16", "decode-512-b1-bf16", "decode-512-b1-int8",
            "decode-512-b8-f32", "decode-512-b8-f16", "decode-512-b8-bf16", "decode-512-b8-int8",
            "decode-4096-b1-f32", "decode-4096-b1-f16", "decode-4096-b1-bf16", "decode-4096-b1-int8",
            "decode-4096-b8-f32", "decode-4096-b8-f16", "decode-4096-b8-bf16", "decode-4096-b8-int8",
            "decode-32768-b1-f32", "decode-32768-b1-f16", "decode-32768-b1-bf16", "decode-32768-b1-int8",
            "decode-32768-b8-f32", "decode-32768-b8-f16", "decode-32768-b8-bf16", "decode-32768-b8-int8",
            "prefill-512-b1-f32", "prefill-512-b1-f16", "prefill-512-b1-bf16", "prefill-512-b1-int8"})
    public String workload;

    @Param({"isthmus-avx512", "isthmus-avx2", "vector-f32"})
    public String impl;

    private AttentionKernel kernel;

    public static long rotateBytes() {
        return Long.getLong(ROTATE_PROPERTY, GemmBenchmark.ROTATE_BYTES);
    }

    @Setup(Level.Trial)
    public void setup() {
        GemmBenchmark.quietIsthmusLog();
        AttentionCase c = AttentionCase.parse(workload);
        AttentionImpl i = AttentionImpl.of(impl);
        String skip = Availability.skipReason(i, c);
        if (skip != null) throw new IllegalStateException(impl + " skipped for " + workload + ": " + skip);
        long t0 = System.nanoTime();
        kernel = AttentionKernels.createChecked(i, c, GemmBenchmark.threads(), rotateBytes());
        String describe = kernel.describe() + String.format(Locale.ROOT, "; set up and checked in %.1f s", (System.nanoTime() - t0) / 1e9);
        GemmBenchmark.publish(impl, workload, describe);
    }

    @Benchmark
    public void attention() {
        kernel.run();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (kernel != null) kernel.close();
        kernel = null;
    }
}
