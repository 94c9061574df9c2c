package dev.isthmus.sparse;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.Isa;
import dev.isthmus.Isthmus;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.function.Executable;

/** Shared inputs for the sparse tests: formats, seeded random sparse matrices, ISA variants. */
final class SparseTestSupport {
    private SparseTestSupport() {}

    /** A format with its block shape (null unless BSR). */
    record Fmt(SparseFormat format, BlockShape block) {
        int rowMultiple() {
            return block == null ? 1 : block.rows();
        }

        int colMultiple() {
            return format == SparseFormat.TWO_FOUR ? 4 : block == null ? 1 : block.cols();
        }

        @Override
        public String toString() {
            return format == SparseFormat.BSR ? "BSR " + block : format.toString();
        }
    }

    static final List<Fmt> FORMATS = List.of(new Fmt(SparseFormat.CSR, null), new Fmt(SparseFormat.BSR, BlockShape.B1x4),
            new Fmt(SparseFormat.BSR, BlockShape.B1x8), new Fmt(SparseFormat.BSR, BlockShape.B4x4),
            new Fmt(SparseFormat.TWO_FOUR, null));

    static final double[] SPARSITIES = {0, 0.5, 0.7, 0.9, 0.99, 1.0};

    /** The ISA variants this build and CPU support (tests force each through the cap). */
    static List<Isa> isas() {
        List<Isa> out = new ArrayList<>();
        for (Isa i : Isa.values()) if (i.compareTo(Isthmus.supportedIsa()) <= 0) out.add(i);
        return out;
    }

    static float[] randomFloats(Random r, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * scale);
        return a;
    }

    /** A nonzero Gaussian value. */
    static float nonzero(Random r) {
        float v;
        do v = (float) r.nextGaussian(); while (v == 0f);
        return v;
    }

    /**
     * A dense W[n, k] whose zeros fit the format: CSR each element nonzero with probability 1 - s; BSR each
     * block kept with probability 1 - s, then its elements nonzero with probability 0.8; 2:4 each group keeps
     * two random positions, each nonzero with probability min(1, 2 (1 - s)). s = 1 gives all zeros.
     */
    static float[] randomSparse(Random r, int n, int k, Fmt f, double s) {
        float[] d = new float[n * k];
        switch (f.format()) {
            case CSR -> {
                for (int i = 0; i < d.length; i++) if (r.nextDouble() >= s) d[i] = nonzero(r);
            }
            case BSR -> {
                int br = f.block().rows(), bc = f.block().cols();
                for (int b = 0; b < n / br; b++)
                    for (int j = 0; j < k / bc; j++)
                        if (r.nextDouble() >= s)
                            for (int rr = 0; rr < br; rr++)
                                for (int c = 0; c < bc; c++)
                                    if (r.nextDouble() < 0.8) d[(b * br + rr) * k + j * bc + c] = nonzero(r);
            }
            case TWO_FOUR -> {
                double keep = Math.min(1, 2 * (1 - s));
                for (int row = 0; row < n; row++)
                    for (int g = 0; g < k / 4; g++) {
                        int a = r.nextInt(4), b;
                        do b = r.nextInt(4); while (b == a);
                        if (r.nextDouble() < keep) d[row * k + 4 * g + a] = nonzero(r);
                        if (r.nextDouble() < keep) d[row * k + 4 * g + b] = nonzero(r);
                    }
            }
        }
        return d;
    }

    /** Values stored for each row of W (the nnz_row of isthmus.h's bound). */
    static long[] storedPerRow(SparseMatrix w) {
        long[] out = new long[(int) w.n()];
        switch (w.format()) {
            case CSR -> {
                long[] rp = w.rowPtr();
                for (int r = 0; r < out.length; r++) out[r] = rp[r + 1] - rp[r];
            }
            case BSR -> {
                long[] rp = w.rowPtr();
                BlockShape b = w.blockShape();
                for (int r = 0; r < out.length; r++) out[r] = (rp[r / b.rows() + 1] - rp[r / b.rows()]) * b.cols();
            }
            case TWO_FOUR -> java.util.Arrays.fill(out, w.k() / 2);
        }
        return out;
    }

    static <T extends Throwable> T fails(Class<T> type, String mention, Executable call) {
        T e = org.junit.jupiter.api.Assertions.assertThrows(type, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(mention),
                "message should mention '" + mention + "': " + e.getMessage());
        return e;
    }
}
