package dev.isthmus.bench.kernels;

import dev.isthmus.Isa;
import dev.isthmus.Tensor;
import dev.isthmus.bench.Availability;
import dev.isthmus.bench.Data;
import dev.isthmus.bench.Machine;
import dev.isthmus.bench.Shape;
import dev.isthmus.bench.SparseCase;
import dev.isthmus.bench.SparseImpl;
import dev.isthmus.bench.ffi.OpenBlas;
import dev.isthmus.sparse.BlockShape;
import dev.isthmus.sparse.Pruning;
import dev.isthmus.sparse.PruneResult;

/** Inputs, kernels and the correctness check of the sparse suite. */
public final class SparseKernels {
    private SparseKernels() {}

    /** A kernel that knows how many bytes of weights one call reads (what rotation must exceed). */
    public interface Sized extends GemmKernel {
        long weightBytes();
    }

    /** x [M,K], the dense W [N,K] (baselines), and W pruned as the case says (sparse kernels; null for dense cases). */
    public record Inputs(float[] x, float[] w, float[] pruned) {}

    public static Inputs inputs(SparseCase c) {
        Shape s = c.shape();
        float[] x = Data.activations(s), w = Data.weights(s);
        if (c.dense()) return new Inputs(x, w, null);
        Pruning spec = switch (c.format()) {
            case "csr" -> Pruning.magnitude(c.sparsity() / 100.0).perRow();
            case "bsr1x4" -> Pruning.block(BlockShape.B1x4, c.sparsity() / 100.0);
            case "bsr1x8" -> Pruning.block(BlockShape.B1x8, c.sparsity() / 100.0);
            case "bsr4x4" -> Pruning.block(BlockShape.B4x4, c.sparsity() / 100.0);
            case "24" -> Pruning.nm(2, 4);
            default -> throw new IllegalArgumentException(c.format());
        };
        try (Tensor wt = Tensor.of(w, s.n(), s.k()); PruneResult r = spec.seed(1).prune(wt)) {
            return new Inputs(x, w, r.pruned().toFloatArray());
        }
    }

    /** Why this machine cannot run impl on c, or null. */
    public static String skipReason(SparseImpl i, SparseCase c) {
        String scope = i.scope(c);
        if (scope != null) return scope;
        return switch (i) {
            case ISTHMUS_AVX512 -> Availability.isthmusSupported() == null ? Availability.isthmusError()
                    : Availability.isthmusSupported() != Isa.AVX512 ? (Machine.hasAvx512Vnni()
                    ? "this libisthmus build has no AVX-512 variant" : "CPU has no AVX-512 F/BW/VL/VNNI") : null;
            case ISTHMUS_AVX2 -> Availability.isthmusSupported() == null ? Availability.isthmusError()
                    : Availability.isthmusSupported().compareTo(Isa.AVX2) < 0 ? "CPU has no AVX2 + FMA" : null;
            case OPENBLAS_SGEMM, OPENBLAS_SGEMV -> OpenBlas.get() == null ? OpenBlas.unavailableReason() : null;
            case ISTHMUS_GEMM_S8 -> Availability.isthmusSupported() == null ? Availability.isthmusError() : null;
        };
    }

    public static GemmKernel create(SparseImpl i, SparseCase c, Inputs in, int threads) {
        Shape s = c.shape();
        long nk = (long) s.n() * s.k();
        return switch (i) {
            case ISTHMUS_AVX512 -> new IsthmusSparse(c, in.x(), in.pruned(), Isa.AVX512, threads);
            case ISTHMUS_AVX2 -> new IsthmusSparse(c, in.x(), in.pruned(), Isa.AVX2, threads);
            case OPENBLAS_SGEMM -> sized(new OpenBlasGemm(s, in.x(), in.w(), threads), 4 * nk);
            case OPENBLAS_SGEMV -> sized(new OpenBlasGemm(s, in.x(), in.w(), threads, true), 4 * nk);
            case ISTHMUS_GEMM_S8 -> sized(new IsthmusGemm(s, in.x(), in.w(), Availability.isthmusSupported(), 0, false, threads), nk);
        };
    }

    /** Creates, runs once, and checks a sample of y against the f64 product of x and the weights the kernel holds. */
    public static GemmKernel createChecked(SparseImpl i, SparseCase c, Inputs in, int threads) {
        GemmKernel k = create(i, c, in, threads);
        try {
            k.run();
            check(i, c, k, in);
        } catch (RuntimeException | Error e) {
            k.close();
            throw e;
        }
        return k;
    }

    static void check(SparseImpl i, SparseCase c, GemmKernel k, Inputs in) {
        Shape s = c.shape();
        float[] w = c.dense() ? in.w() : in.pruned();
        int[] rows = {0, s.m() / 2, s.m() - 1};
        int cols = Math.min(32, s.n());
        double err = 0, ref = 0;
        for (int r : rows)
            for (int j = 0; j < cols; j++) {
                int col = cols == 1 ? 0 : (int) ((long) j * (s.n() - 1) / (cols - 1));
                double want = Data.reference(in.x(), w, s.k(), r, col), got = k.output(r, col);
                err += (got - want) * (got - want);
                ref += want * want;
            }
        double rel = Math.sqrt(err / Math.max(ref, Double.MIN_NORMAL));
        if (!(rel <= k.tolerance()))
            throw new IllegalStateException(String.format(java.util.Locale.ROOT,
                    "%s on %s gives wrong results: relative RMS error %.3g against the f64 reference (tolerance %.3g); %s",
                    i, c, rel, k.tolerance(), k.describe()));
    }

    private static Sized sized(GemmKernel k, long bytes) {
        return new Sized() {
            public long weightBytes() { return bytes; }
            public void run() { k.run(); }
            public float output(int i, int j) { return k.output(i, j); }
            public double tolerance() { return k.tolerance(); }
            public String describe() { return bytes + " B of weights per call; " + k.describe(); }
            public void close() { k.close(); }
        };
    }
}
