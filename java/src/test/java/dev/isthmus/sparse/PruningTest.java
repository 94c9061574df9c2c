package dev.isthmus.sparse;

import static dev.isthmus.sparse.SparseTestSupport.fails;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.DType;
import dev.isthmus.Tensor;

import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.api.Test;

/**
 * Pruning: the exact count removed for every structure, the lowest scores removed (magnitude and Wanda),
 * N:M in every group, whole blocks, reproducible tie-breaking by seed, the pruned matrix, the report's
 * numbers against a Java double reference, toSparse, and bad specs and inputs.
 */
class PruningTest {
    private static final double[] SPARSITIES = {0, 0.5, 0.7, 0.9, 0.99, 1.0};

    private static float[] scores(float[] w, float[] norms, int k) {
        float[] s = new float[w.length];
        for (int i = 0; i < w.length; i++) s[i] = norms == null ? Math.abs(w[i]) : Math.abs(w[i]) * norms[i % k];
        return s;
    }

    /** Asserts every kept score in [from, to) of the given indices is >= every removed one. */
    private static void lowestRemoved(float[] s, byte[] mask, int[] idx, String what) {
        float minKept = Float.POSITIVE_INFINITY, maxRemoved = Float.NEGATIVE_INFINITY;
        for (int i : idx) {
            if (mask[i] == 1) minKept = Math.min(minKept, s[i]);
            else maxRemoved = Math.max(maxRemoved, s[i]);
        }
        if (minKept < maxRemoved) fail(what + ": kept score " + minKept + " < removed score " + maxRemoved);
    }

    private static int[] range(int from, int to, int step) {
        int[] a = new int[(to - from + step - 1) / step];
        for (int i = 0; i < a.length; i++) a[i] = from + i * step;
        return a;
    }

    private static void checkPruned(float[] w, PruneResult r, String what) {
        byte[] m = r.mask().toByteArray();
        float[] p = r.pruned().toFloatArray();
        long removed = 0;
        for (int i = 0; i < w.length; i++) {
            assertTrue(m[i] == 0 || m[i] == 1, what + ": mask holds 0 or 1");
            if (m[i] == 0) {
                removed++;
                assertEquals(0, Float.floatToRawIntBits(p[i]), what + ": removed weights are +0.0");
            } else {
                assertEquals(Float.floatToRawIntBits(w[i]), Float.floatToRawIntBits(p[i]), what + ": kept weights unchanged");
            }
        }
        assertEquals(removed, r.report().removed(), what);
        assertEquals((double) removed / w.length, r.report().achievedSparsity(), 1e-15, what);
        assertEquals(w.length, r.report().total(), what);
        assertEquals(DType.I8, r.mask().dtype());
    }

    @Test
    void perRowAndGlobalRemoveExactlyTheLowestScores() {
        Random rnd = new Random(31);
        int n = 24, k = 77;
        for (boolean wanda : new boolean[] {false, true})
            for (double s : SPARSITIES) {
                float[] w = SparseTestSupport.randomFloats(rnd, n * k, 1f);
                float[] norms = wanda ? new float[k] : null;
                if (wanda) for (int c = 0; c < k; c++) norms[c] = (float) Math.abs(rnd.nextGaussian()) + (c % 7 == 0 ? 0 : 0.1f);
                float[] sc = scores(w, norms, k);
                Pruning base = wanda ? Pruning.magnitude(s).wanda(norms) : Pruning.magnitude(s);
                try (Tensor wt = Tensor.of(w, n, k); PruneResult row = base.prune(wt); PruneResult glob = base.global().prune(wt)) {
                    String what = (wanda ? "wanda" : "magnitude") + " s=" + s;
                    checkPruned(w, row, what + " per row");
                    checkPruned(w, glob, what + " global");
                    byte[] m = row.mask().toByteArray();
                    for (int r = 0; r < n; r++) {
                        int gone = 0;
                        for (int c = 0; c < k; c++) if (m[r * k + c] == 0) gone++;
                        assertEquals(Math.round(s * k), gone, what + " row " + r + " loses round(s * K)");
                        lowestRemoved(sc, m, range(r * k, (r + 1) * k, 1), what + " row " + r);
                    }
                    assertEquals(Math.round(s * n * k), glob.report().removed(), what + " global loses round(s * N * K)");
                    lowestRemoved(sc, glob.mask().toByteArray(), range(0, n * k, 1), what + " global");
                    assertEquals(s, row.report().targetSparsity());
                }
            }
    }

    @Test
    void nmKeepsNInEveryGroup() {
        Random rnd = new Random(32);
        int[][] nms = {{2, 4}, {1, 4}, {3, 4}, {4, 8}, {2, 8}, {1, 2}, {7, 16}};
        for (int[] nm : nms)
            for (boolean wanda : new boolean[] {false, true}) {
                int n = 9, k = nm[1] * 5;
                float[] w = SparseTestSupport.randomFloats(rnd, n * k, 1f);
                float[] norms = wanda ? SparseTestSupport.randomFloats(rnd, k, 1f) : null;
                if (wanda) for (int c = 0; c < k; c++) norms[c] = Math.abs(norms[c]);
                Pruning p = Pruning.nm(nm[0], nm[1]);
                if (wanda) p = p.wanda(norms);
                try (Tensor wt = Tensor.of(w, n, k); PruneResult r = p.prune(wt)) {
                    String what = nm[0] + ":" + nm[1] + (wanda ? " wanda" : "");
                    checkPruned(w, r, what);
                    byte[] m = r.mask().toByteArray();
                    float[] sc = scores(w, norms, k);
                    for (int g = 0; g < n * k / nm[1]; g++) {
                        int kept = 0;
                        for (int j = 0; j < nm[1]; j++) kept += m[g * nm[1] + j];
                        assertEquals(nm[0], kept, what + " group " + g);
                        lowestRemoved(sc, m, range(g * nm[1], (g + 1) * nm[1], 1), what + " group " + g);
                    }
                    assertEquals(1.0 - (double) nm[0] / nm[1], r.report().achievedSparsity(), 1e-15, what);
                    assertEquals(1.0 - (double) nm[0] / nm[1], r.report().targetSparsity(), 1e-15, what);
                }
            }
    }

    @Test
    void blockPruningRemovesWholeBlocks() {
        Random rnd = new Random(33);
        for (BlockShape b : BlockShape.values())
            for (double s : SPARSITIES) {
                int n = 4 * 5, k = 8 * 6;
                float[] w = SparseTestSupport.randomFloats(rnd, n * k, 1f);
                try (Tensor wt = Tensor.of(w, n, k); PruneResult r = Pruning.block(b, s).prune(wt)) {
                    String what = "block " + b + " s=" + s;
                    checkPruned(w, r, what);
                    byte[] m = r.mask().toByteArray();
                    int blocks = (n / b.rows()) * (k / b.cols()), gone = 0;
                    double minKept = Double.POSITIVE_INFINITY, maxRemoved = 0;
                    for (int br = 0; br < n / b.rows(); br++)
                        for (int bc = 0; bc < k / b.cols(); bc++) {
                            int sum = 0;
                            double norm = 0;
                            for (int i = 0; i < b.rows(); i++)
                                for (int j = 0; j < b.cols(); j++) {
                                    int at = (br * b.rows() + i) * k + bc * b.cols() + j;
                                    sum += m[at];
                                    norm += (double) w[at] * w[at];
                                }
                            assertTrue(sum == 0 || sum == b.size(), what + ": block (" + br + ", " + bc + ") is whole");
                            if (sum == 0) {
                                gone++;
                                maxRemoved = Math.max(maxRemoved, norm);
                            } else {
                                minKept = Math.min(minKept, norm);
                            }
                        }
                    assertEquals(Math.round(s * blocks), gone, what + ": round(s * blocks) blocks go");
                    assertTrue(minKept >= maxRemoved * (1 - 1e-6), what + ": the weakest blocks go (" + minKept + " < " + maxRemoved + ")");
                    try (SparseMatrix bsr = r.toSparse(); Tensor back = bsr.toDense()) {
                        assertEquals(SparseFormat.BSR, bsr.format());
                        assertSame(b, bsr.blockShape());
                        assertEquals((long) (blocks - gone) * b.size(), bsr.nnz(), what + ": one stored block per kept block");
                        assertArrayEquals(r.pruned().toFloatArray(), back.toFloatArray(), what);
                    }
                }
            }
    }

    @Test
    void tiesFollowTheSeed() {
        int n = 16, k = 64;
        float[] w = new float[n * k];
        Arrays.fill(w, 0.5f); // every score equal: the seed alone decides
        Pruning[] specs = {Pruning.magnitude(0.5), Pruning.magnitude(0.5).global(), Pruning.nm(2, 4),
            Pruning.block(BlockShape.B1x4, 0.5), Pruning.block(BlockShape.B4x4, 0.5)};
        try (Tensor wt = Tensor.of(w, n, k)) {
            for (Pruning p : specs) {
                byte[] a, b, c;
                try (PruneResult r1 = p.seed(1).prune(wt); PruneResult r2 = p.seed(1).prune(wt);
                     PruneResult r3 = p.seed(2).prune(wt)) {
                    a = r1.mask().toByteArray();
                    b = r2.mask().toByteArray();
                    c = r3.mask().toByteArray();
                    assertEquals(r1.report().removed(), r3.report().removed(), p + ": the count does not depend on the seed");
                }
                assertArrayEquals(a, b, p + ": the same seed gives the same mask");
                assertFalse(Arrays.equals(a, c), p + ": another seed breaks ties differently");
            }
            // ties among the candidates only: the untied weights decide the rest
            float[] mixed = w.clone();
            for (int i = 0; i < mixed.length; i += 4) mixed[i] = 2f;
            try (Tensor mt = Tensor.of(mixed, n, k); PruneResult r = Pruning.magnitude(0.5).seed(99).prune(mt)) {
                byte[] m = r.mask().toByteArray();
                for (int i = 0; i < m.length; i += 4) assertEquals(1, m[i], "the larger weights are kept");
            }
        }
    }

    @Test
    void wandaFromCalibrationActivations() {
        Random rnd = new Random(34);
        int s = 19, n = 8, k = 40;
        float[] x = SparseTestSupport.randomFloats(rnd, s * k, 1f);
        float[] w = SparseTestSupport.randomFloats(rnd, n * k, 1f);
        float[] norms = new float[k];
        for (int c = 0; c < k; c++) {
            double acc = 0;
            for (int r = 0; r < s; r++) acc += (double) x[r * k + c] * x[r * k + c];
            norms[c] = (float) Math.sqrt(acc);
        }
        try (Tensor xt = Tensor.of(x, s, k); Tensor wt = Tensor.of(w, n, k)) {
            Pruning p = Pruning.magnitude(0.6).wanda(xt);
            assertArrayEquals(norms, p.activationNorms(), "column L2 norms");
            try (PruneResult a = p.prune(wt); PruneResult b = Pruning.magnitude(0.6).wanda(norms).prune(wt);
                 PruneResult c = Pruning.magnitude(0.6).prune(wt)) {
                assertArrayEquals(a.mask().toByteArray(), b.mask().toByteArray());
                assertFalse(Arrays.equals(a.mask().toByteArray(), c.mask().toByteArray()), "Wanda scores differ from magnitude");
            }
            assertEquals(null, p.magnitude().activationNorms());
        }
    }

    @Test
    void reportAgainstADoubleReference() {
        Random rnd = new Random(35);
        int s = 23, n = 32, k = 96;
        float[] x = SparseTestSupport.randomFloats(rnd, s * k, 1f);
        float[] w = SparseTestSupport.randomFloats(rnd, n * k, 0.5f);
        Pruning[] specs = {Pruning.magnitude(0.5), Pruning.magnitude(0.9).global(), Pruning.nm(2, 4),
            Pruning.block(BlockShape.B4x4, 0.75), Pruning.magnitude(0.7).wanda(new float[k]).magnitude(), Pruning.magnitude(0),
            Pruning.magnitude(1)};
        try (Tensor xt = Tensor.of(x, s, k); Tensor wt = Tensor.of(w, n, k)) {
            for (Pruning p : specs)
                try (PruneResult r = p.prune(wt, xt); PruneResult r0 = p.prune(wt)) {
                    byte[] m = r.mask().toByteArray();
                    double all = 0, gone = 0;
                    for (int i = 0; i < w.length; i++) {
                        all += (double) w[i] * w[i];
                        if (m[i] == 0) gone += (double) w[i] * w[i];
                    }
                    double ny = 0, ne = 0, max = 0;
                    for (int i = 0; i < s; i++)
                        for (int j = 0; j < n; j++) {
                            double y = 0, e = 0;
                            for (int c = 0; c < k; c++) {
                                double prod = (double) x[i * k + c] * w[j * k + c];
                                y += prod;
                                if (m[j * k + c] == 0) e += prod;
                            }
                            ny += y * y;
                            ne += e * e;
                            max = Math.max(max, Math.abs(e));
                        }
                    PruneReport rep = r.report();
                    String what = p + ": " + rep;
                    assertEquals(Math.sqrt(gone / all), rep.relativeFrobeniusError(), 1e-12, what);
                    assertEquals(Math.sqrt(ne / ny), rep.relativeOutputError(), 1e-4 * Math.sqrt(ne / ny) + 1e-12, what);
                    assertEquals(max, rep.maxAbsOutputError(), 1e-4 * max + 1e-12, what);
                    assertEquals(s, rep.sampleRows());
                    assertTrue(rep.hasOutputError());
                    assertFalse(r0.report().hasOutputError());
                    assertTrue(Double.isNaN(r0.report().relativeOutputError()));
                    assertEquals(rep.relativeFrobeniusError(), r0.report().relativeFrobeniusError());
                    assertArrayEquals(m, r0.mask().toByteArray(), p + ": the sample does not change the mask");
                    assertTrue(rep.toString().contains("output error"), rep.toString());
                }
        }
    }

    @Test
    void prunedMatricesMultiplyLikeTheirDenseForm() {
        Random rnd = new Random(36);
        int m = 5, n = 16, k = 64;
        float[] w = SparseTestSupport.randomFloats(rnd, n * k, 1f);
        try (Tensor wt = Tensor.of(w, n, k); Tensor x = Tensor.of(SparseTestSupport.randomFloats(rnd, m * k, 1f), m, k)) {
            Object[][] cases = {{Pruning.nm(2, 4), SparseFormat.TWO_FOUR}, {Pruning.nm(1, 4), SparseFormat.TWO_FOUR},
                {Pruning.nm(2, 8), SparseFormat.CSR}, {Pruning.magnitude(0.8), SparseFormat.CSR},
                {Pruning.block(BlockShape.B1x8, 0.5), SparseFormat.BSR}};
            for (Object[] c : cases) {
                Pruning p = (Pruning) c[0];
                try (PruneResult r = p.prune(wt); SparseMatrix s = r.toSparse(); SparseMatrix s8 = r.toSparseInt8(s.format());
                     Tensor back = s.toDense(); Tensor y = Sparse.matmul(x, s); Tensor y8 = Sparse.matmul(x, s8)) {
                    assertEquals(c[1], s.format(), p + " toSparse()");
                    assertEquals(DType.I8, s8.dtype());
                    assertArrayEquals(r.pruned().toFloatArray(), back.toFloatArray(), p + ": exact round trip");
                    try (SparseMatrix csr = r.toSparse(SparseFormat.CSR); Tensor yc = Sparse.matmul(x, csr)) {
                        float[] a = y.toFloatArray(), b = yc.toFloatArray();
                        for (int i = 0; i < a.length; i++)
                            assertEquals(b[i], a[i], 1e-4 * (1 + Math.abs(b[i])), p + " y[" + i + "]");
                    }
                }
            }
            try (PruneResult r = Pruning.magnitude(0.5).prune(wt)) {
                fails(IllegalArgumentException.class, "BSR needs a block shape", () -> r.toSparse(SparseFormat.BSR));
                try (SparseMatrix b = r.toSparse(SparseFormat.BSR, BlockShape.B1x4)) {
                    assertEquals(BlockShape.B1x4, b.blockShape());
                }
                try (PruneResult dense = Pruning.magnitude(0.1).prune(wt)) {
                    fails(IllegalArgumentException.class, "nonzeros: 2:4 keeps at most 2 of every 4",
                            () -> dense.toSparse(SparseFormat.TWO_FOUR));
                }
            }
        }
    }

    @Test
    void stridedAndTinyMatrices() {
        Random rnd = new Random(37);
        int n = 6, k = 16, ld = 21;
        float[] big = SparseTestSupport.randomFloats(rnd, n * ld, 1f);
        float[] packed = new float[n * k];
        for (int i = 0; i < n; i++) System.arraycopy(big, i * ld, packed, i * k, k);
        try (Tensor b = Tensor.of(big, n, ld); Tensor c = Tensor.of(packed, n, k)) {
            Tensor view = Tensor.wrap(b.segment(), DType.F32, new long[] {n, k}, new long[] {ld, 1});
            for (Pruning p : new Pruning[] {Pruning.magnitude(0.5), Pruning.nm(2, 4), Pruning.block(BlockShape.B1x8, 0.5)})
                try (PruneResult a = p.prune(view); PruneResult e = p.prune(c)) {
                    assertArrayEquals(e.mask().toByteArray(), a.mask().toByteArray(), p + " on a strided view");
                    assertArrayEquals(e.pruned().toFloatArray(), a.pruned().toFloatArray(), p + " on a strided view");
                }
        }
        try (Tensor one = Tensor.of(new float[] {-3f}, 1, 1); PruneResult keep = Pruning.magnitude(0.4).prune(one);
             PruneResult drop = Pruning.magnitude(0.6).global().prune(one)) {
            assertArrayEquals(new byte[] {1}, keep.mask().toByteArray(), "round(0.4 * 1) = 0 removed");
            assertArrayEquals(new byte[] {0}, drop.mask().toByteArray(), "round(0.6 * 1) = 1 removed");
            assertEquals(1.0, drop.report().relativeFrobeniusError());
        }
        try (Tensor zeros = Tensor.of(new float[32], 2, 16); PruneResult r = Pruning.magnitude(0.5).prune(zeros, zeros)) {
            assertEquals(0.0, r.report().relativeFrobeniusError(), "an all-zero W has no error");
            assertEquals(0.0, r.report().relativeOutputError());
            assertEquals(0.5, r.report().achievedSparsity());
        }
    }

    @Test
    void badSpecsAndInputs() {
        fails(IllegalArgumentException.class, "sparsity = 1.5, must be in [0, 1]", () -> Pruning.magnitude(1.5));
        fails(IllegalArgumentException.class, "sparsity = -0.1", () -> Pruning.magnitude(-0.1));
        fails(IllegalArgumentException.class, "sparsity = NaN", () -> Pruning.block(BlockShape.B1x4, Double.NaN));
        fails(IllegalArgumentException.class, "nm(4, 4): needs 1 <= n < m <= 16", () -> Pruning.nm(4, 4));
        fails(IllegalArgumentException.class, "nm(0, 4)", () -> Pruning.nm(0, 4));
        fails(IllegalArgumentException.class, "nm(2, 32)", () -> Pruning.nm(2, 32));
        fails(IllegalArgumentException.class, "shape is null", () -> Pruning.block(null, 0.5));
        fails(IllegalStateException.class, "global() applies to magnitude(sparsity) pruning, not to Pruning.nm(2, 4)",
                () -> Pruning.nm(2, 4).global());
        fails(IllegalStateException.class, "perRow()", () -> Pruning.block(BlockShape.B4x4, 0.5).perRow());
        fails(IllegalArgumentException.class, "activationNorms[1] = -1.0: must be finite and >= 0",
                () -> Pruning.magnitude(0.5).wanda(new float[] {1, -1}));
        fails(IllegalArgumentException.class, "activationNorms[0] = NaN", () -> Pruning.magnitude(0.5).wanda(new float[] {Float.NaN}));
        fails(IllegalArgumentException.class, "activationNorms is null", () -> Pruning.magnitude(0.5).wanda((float[]) null));
        try (Tensor w = Tensor.of(new float[6 * 10], 6, 10); Tensor s9 = Tensor.of(new float[2 * 9], 2, 9);
             Tensor nanW = Tensor.of(new float[] {0, 1, 2, 3, 4, Float.NaN, 6, 7}, 2, 4);
             Tensor infX = Tensor.of(new float[] {0, Float.POSITIVE_INFINITY}, 1, 2); Tensor i8 = Tensor.of(new byte[8], 2, 4)) {
            fails(IllegalArgumentException.class, "w F32[6, 10]: 2:4 pruning needs K % 4 == 0, got K = 10", () -> Pruning.nm(2, 4).prune(w));
            fails(IllegalArgumentException.class, "w F32[6, 10]: 4x4 block pruning needs N % 4 == 0 and K % 4 == 0",
                    () -> Pruning.block(BlockShape.B4x4, 0.5).prune(w));
            fails(IllegalArgumentException.class, "activationNorms has 3 entries but w F32[6, 10] has K = 10 columns",
                    () -> Pruning.magnitude(0.5).wanda(new float[3]).prune(w));
            fails(IllegalArgumentException.class, "sample F32[2, 9] has K = 9 but w is F32[6, 10]", () -> Pruning.magnitude(0.5).prune(w, s9));
            fails(IllegalArgumentException.class, "w F32[2, 4] [1, 1] = NaN: not finite", () -> Pruning.magnitude(0.5).prune(nanW));
            fails(IllegalArgumentException.class, "calibrationActivations F32[1, 2] [0, 1] = Infinity: not finite",
                    () -> Pruning.magnitude(0.5).wanda(infX));
            fails(IllegalArgumentException.class, "w must be F32", () -> Pruning.magnitude(0.5).prune(i8));
            fails(IllegalArgumentException.class, "w is null", () -> Pruning.magnitude(0.5).prune(null));
        }
        assertEquals("Pruning.magnitude(0.9).global().seed(3)", Pruning.magnitude(0.9).global().seed(3).toString());
        assertEquals("Pruning.block(4x4, 0.75)", Pruning.block(BlockShape.B4x4, 0.75).toString());
    }
}
