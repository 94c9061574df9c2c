package dev.isthmus.bench;

import dev.isthmus.bench.kernels.GemmKernel;
import dev.isthmus.bench.kernels.SparseKernels;
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
 * {@code y[M,N] = x[M,K] . W[N,K]^T} with W pruned ({@link SparseCase}: format, sparsity, f32 or int8) through
 * isthmus's sparse kernels, and the dense baselines on the unpruned W (OpenBLAS sgemm/sgemv for f32, the project's
 * INT8 GEMM for int8). Every kernel is checked against the f64 product of its (pruned) inputs before it is timed.
 * Weights rotate over copies whose total exceeds {@value #ROTATE_MIB} MiB, so no kernel reads them from L3.
 * Run it through {@link SparseSuite} ({@code --suite sparse}).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 5, time = 1)
public class SparseBenchmark {
    static final int ROTATE_MIB = 256;
    static final int MAX_COPIES = 48;

    @Param({"f32-dense-0-m1", "f32-dense-0-m8", "f32-dense-0-m128", "s8-dense-0-m1", "s8-dense-0-m8", "s8-dense-0-m128",
            "f32-csr-70-m1", "f32-csr-90-m1", "f32-csr-70-m8", "f32-csr-90-m8", "f32-csr-70-m128", "f32-csr-90-m128",
            "s8-csr-70-m1", "s8-csr-90-m1", "s8-csr-90-m8", "s8-csr-90-m128",
            "f32-bsr1x4-90-m1", "f32-bsr1x8-90-m1", "f32-bsr4x4-90-m1", "f32-bsr4x4-90-m128",
            "s8-bsr1x4-90-m1", "s8-bsr4x4-90-m1", "s8-bsr4x4-90-m128",
            "f32-24-50-m1", "f32-24-50-m8", "f32-24-50-m128", "s8-24-50-m1", "s8-24-50-m8", "s8-24-50-m128"})
    public String workload;

    @Param({"isthmus-avx512", "isthmus-avx2", "openblas-sgemm", "openblas-sgemv", "isthmus-gemm-s8"})
    public String impl;

    private GemmKernel[] copies;
    private int next;

    @Setup(Level.Trial)
    public void setup() {
        GemmBenchmark.quietIsthmusLog();
        SparseCase c = SparseCase.parse(workload);
        SparseImpl i = SparseImpl.of(impl);
        String skip = SparseKernels.skipReason(i, c);
        if (skip != null) throw new IllegalStateException(impl + " skipped for " + workload + ": " + skip);
        SparseKernels.Inputs in = SparseKernels.inputs(c);
        GemmKernel first = SparseKernels.createChecked(i, c, in, GemmBenchmark.threads());
        long bytes = first instanceof SparseKernels.Sized z ? z.weightBytes() : 0;
        int n = bytes == 0 ? 1 : (int) Math.min(MAX_COPIES, Math.max(1, ((long) ROTATE_MIB << 20) / bytes + 1));
        copies = new GemmKernel[n];
        copies[0] = first;
        for (int j = 1; j < n; j++) copies[j] = SparseKernels.create(i, c, in, GemmBenchmark.threads());
        String describe = first.describe() + (n > 1 ? String.format(Locale.ROOT,
                "; weights rotate over %d copies (%.0f MB) so they stream from memory", n, n * bytes / 1048576.0) : "");
        GemmBenchmark.publish(impl, workload, describe);
    }

    @Benchmark
    public void matmul() {
        GemmKernel k = copies[next];
        next = next + 1 == copies.length ? 0 : next + 1;
        k.run();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (copies != null) for (GemmKernel k : copies) if (k != null) k.close();
        copies = null;
    }
}
