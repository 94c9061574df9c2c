package dev.isthmus.bench.kernels;

import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.bench.Data;
import dev.isthmus.bench.Impl;
import dev.isthmus.bench.Machine;
import dev.isthmus.bench.Shape;

import java.util.Locale;

/** Builds the kernel of an implementation for a shape, and checks its result against the f64 reference. */
public final class Kernels {
    private Kernels() {}

    /** Sets up {@code impl} for {@code s} on deterministic inputs, runs it once and checks a sample of y. */
    public static GemmKernel createChecked(Impl impl, Shape s, int threads) {
        float[] x = Data.activations(s), w = Data.weights(s);
        GemmKernel kernel = create(impl, s, x, w, threads);
        try {
            kernel.run();
            check(impl, kernel, s, x, w);
        } catch (RuntimeException | Error e) {
            kernel.close();
            throw e;
        }
        return kernel;
    }

    public static GemmKernel create(Impl impl, Shape s, float[] x, float[] w, int threads) {
        int m = s.m(), n = s.n(), k = s.k();
        return switch (impl) {
            case ISTHMUS_AVX512 -> new IsthmusGemm(s, x, w, Isa.AVX512, 0, false, threads);
            case ISTHMUS_AVX2 -> new IsthmusGemm(s, x, w, Isa.AVX2, 0, false, threads);
            case ISTHMUS_REF -> new IsthmusGemm(s, x, w, Isa.REF, 0, false, threads);
            case ISTHMUS_AVX512_G32 -> new IsthmusGemm(s, x, w, Isa.AVX512, 32, false, threads);
            case ISTHMUS_AVX2_G32 -> new IsthmusGemm(s, x, w, Isa.AVX2, 32, false, threads);
            case ISTHMUS_FUSED -> new IsthmusGemm(s, x, w, Isthmus.supportedIsa(), 0, true, threads);
            case JAVA_F32 -> new JavaF32Gemm(s, x, w, threads);
            case VECTOR_INT8 -> new VectorInt8Gemm(s, Data.quantizePerRow(x, m, k), Data.quantizePerRow(w, n, k), threads);
            case JLAMA_Q8Q4 -> new JlamaQ8Q4Gemm(s, Data.quantizeInt8(x, m, k, 32), Data.quantizeQ4(w, n, k), threads,
                    Machine.has("avx512f"));
            case ONEDNN -> new OneDnnGemm(s, threads);
            case OPENBLAS_F32 -> new OpenBlasGemm(s, x, w, threads);
        };
    }

    /**
     * Relative RMS error of a sample of y (first, middle and last rows, 24 columns spread over N) against
     * the f64 product of the f32 inputs; fails above the kernel's tolerance (a layout or indexing bug
     * gives errors near 1, quantization 1e-2 for int8, 1e-1 for 4 bits). Kernels with no readable output
     * are not checked.
     */
    public static double check(Impl impl, GemmKernel kernel, Shape s, float[] x, float[] w) {
        if (Double.isNaN(kernel.tolerance())) return Double.NaN;
        int[] rows = {0, s.m() / 2, s.m() - 1};
        int cols = Math.min(24, s.n());
        double err = 0, ref = 0;
        for (int i : rows)
            for (int c = 0; c < cols; c++) {
                int j = cols == 1 ? 0 : (int) ((long) c * (s.n() - 1) / (cols - 1));
                double want = Data.reference(x, w, s.k(), i, j);
                double got = kernel.output(i, j);
                err += (got - want) * (got - want);
                ref += want * want;
            }
        double rel = Math.sqrt(err / Math.max(ref, Double.MIN_NORMAL));
        if (!(rel <= kernel.tolerance()))
            throw new IllegalStateException(String.format(Locale.ROOT,
                    "%s %s gives wrong results: relative RMS error %.3g against the f64 reference (tolerance %.3g); %s",
                    impl, s, rel, kernel.tolerance(), kernel.describe()));
        return rel;
    }
}
