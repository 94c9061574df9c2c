package dev.isthmus.sparse;

import static dev.isthmus.PropertySupport.count;
import static dev.isthmus.PropertySupport.nonZero;
import static dev.isthmus.PropertySupport.refused;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.PropertySupport;
import dev.isthmus.Tensor;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.util.Arrays;
import java.util.List;
import java.util.Random;

import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.AfterTry;

/**
 * Properties of {@link SparseMatrix}, {@link Sparse} and {@link Pruning}: dense to format to dense is exact for
 * every format; the CSR / BSR / 2:4 exchange arrays of a matrix rebuild it; Sparse.matmul agrees with the double
 * reference of {@link SparseMatmulTest} (its tolerance, {@code 2 nnz_row 2^-24 S + 2^-23 (S + |bias|)} for F32,
 * bit-exact for S8) on random shapes, sparsities and ISA variants; pruning removes exactly the stated count and
 * keeps the rest bit for bit; corrupted exchange arrays, bad tensors, closed and foreign tensors and closed
 * matrices are refused with the documented exception naming the argument.
 */
class SparsePropertyTest {
    @AfterContainer
    static void report() {
        PropertySupport.report(SparsePropertyTest.class);
    }

    @AfterTry
    void restoreIsa() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    @Provide
    Arbitrary<Integer> m() {
        return PropertySupport.dim(70);
    }

    @Provide
    Arbitrary<Integer> units() {
        return PropertySupport.dim(40);
    }

    static SparseTestSupport.Fmt fmt(int pick) {
        return SparseTestSupport.FORMATS.get(Math.floorMod(pick, SparseTestSupport.FORMATS.size()));
    }

    static Isa isa(int pick) {
        List<Isa> l = SparseTestSupport.isas();
        return l.get(Math.floorMod(pick, l.size()));
    }

    @Property
    void matmulAgreesWithTheReference(@ForAll("m") int m, @ForAll("units") int nu, @ForAll("units") int ku,
                                      @ForAll int fmtPick, @ForAll @IntRange(max = 5) int sp, @ForAll boolean s8,
                                      @ForAll boolean withBias, @ForAll boolean poisoned, @ForAll int isaPick,
                                      @ForAll long seed) {
        count(getClass());
        Isa isa = isa(isaPick);
        Isthmus.setIsaCap(isa);
        Random r = new Random(seed);
        SparseTestSupport.Fmt f = fmt(fmtPick);
        int n = nu * f.rowMultiple(), k = ku * f.colMultiple();
        float[] w = SparseTestSupport.randomSparse(r, n, k, f, SparseTestSupport.SPARSITIES[sp]);
        String what = f + " " + m + "x" + n + "x" + k + " s=" + SparseTestSupport.SPARSITIES[sp] + " " + isa;
        if (s8) SparseMatmulTest.checkS8(r, f, m, n, k, w, withBias, poisoned, isa, what);
        else SparseMatmulTest.checkF32(r, f, m, n, k, w, withBias, poisoned, isa, what);
    }

    @Property
    void formatsRoundTripAndRebuildFromTheirArrays(@ForAll("units") int nu, @ForAll("units") int ku, @ForAll int fmtPick,
                                                   @ForAll @IntRange(max = 5) int sp, @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        SparseTestSupport.Fmt f = fmt(fmtPick);
        int n = nu * f.rowMultiple(), k = ku * f.colMultiple();
        float[] w = SparseTestSupport.randomSparse(r, n, k, f, SparseTestSupport.SPARSITIES[sp]);
        try (Tensor wt = Tensor.of(w, n, k);
             SparseMatrix a = SparseMatrix.fromDense(wt, f.format(), f.block());
             Tensor back = a.toDense();
             SparseMatrix q = SparseMatrix.fromDenseInt8(wt, f.format(), f.block());
             SparseMatrix q2 = a.quantizeInt8();
             QuantizedTensor wq = Quant.quantize(wt, QuantScheme.int8PerRow());
             Tensor wd = Quant.dequantize(wq);
             Tensor qd = q.toDense();
             Tensor q2d = q2.toDense()) {
            assertArrayEquals(w, back.toFloatArray(), "dense -> " + f + " -> dense");
            assertEquals(n, a.n());
            assertEquals(k, a.k());
            assertEquals(f.format(), a.format());
            assertEquals(DType.F32, a.dtype());
            assertEquals(DType.I8, q.dtype());
            assertEquals(f.block(), a.blockShape());
            long nz = Arrays.stream(toDouble(w)).filter(v -> v != 0).count();
            assertTrue(a.nnz() >= nz, a + " stores " + a.nnz() + " < " + nz + " nonzeros");
            assertEquals((double) a.nnz() / ((double) n * k), a.density(), 1e-12);
            assertTrue(a.exchangeBytes() > 0 && a.packedBytes() > 0 && a.isAlive());
            // S8: the dequantized per-row quantization at the stored positions (zeros elsewhere)
            float[] want = wd.toFloatArray(), got = qd.toFloatArray();
            for (int i = 0; i < w.length; i++) if (w[i] == 0) want[i] = 0;
            for (int i = 0; i < w.length; i++) if (w[i] == 0 && got[i] != 0) want[i] = Float.NaN;
            assertArrayEquals(want, got, "fromDenseInt8 -> dense");
            assertArrayEquals(got, q2d.toFloatArray(), "quantizeInt8() differs from fromDenseInt8");
            // rebuild from the exchange arrays
            try (SparseMatrix b = switch (f.format()) {
                case CSR -> SparseMatrix.csr(n, k, a.rowPtr(), a.colIdx(), a.values());
                case BSR -> SparseMatrix.bsr(n, k, f.block(), a.rowPtr(), a.colIdx(), a.values());
                case TWO_FOUR -> SparseMatrix.twoFour(n, k, a.values(), a.meta());
            }; Tensor bd = b.toDense()) {
                assertArrayEquals(w, bd.toFloatArray(), f + " from its arrays");
            }
            try (SparseMatrix b = switch (f.format()) {
                case CSR -> SparseMatrix.csr(n, k, q.rowPtr(), q.colIdx(), q.int8Values(), q.rowScales());
                case BSR -> SparseMatrix.bsr(n, k, f.block(), q.rowPtr(), q.colIdx(), q.int8Values(), q.rowScales());
                case TWO_FOUR -> SparseMatrix.twoFour(n, k, q.int8Values(), q.meta(), q.rowScales());
            }; Tensor bd = b.toDense()) {
                assertArrayEquals(got, bd.toFloatArray(), f + " S8 from its arrays");
            }
        }
    }

    private static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    @Property
    void corruptCsrArraysAreRefused(@ForAll("units") int n, @ForAll("units") int k, @ForAll @IntRange(max = 6) int how,
                                    @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        float[] w = SparseTestSupport.randomSparse(r, n, k, fmt(0), 0.5);
        long[] rowPtr;
        int[] colIdx;
        float[] values;
        try (Tensor wt = Tensor.of(w, n, k); SparseMatrix a = SparseMatrix.fromDense(wt, SparseFormat.CSR)) {
            rowPtr = a.rowPtr();
            colIdx = a.colIdx();
            values = a.values();
        }
        int nnz = values.length;
        String arg;
        switch (how) {
            case 0 -> {
                rowPtr = Arrays.copyOf(rowPtr, rowPtr.length + (r.nextBoolean() ? 1 : -1));
                arg = "rowPtr";
            }
            case 1 -> {
                rowPtr[0] = 1 + r.nextInt(3);
                arg = "rowPtr";
            }
            case 2 -> {
                if (nnz == 0) return;
                colIdx[r.nextInt(nnz)] = r.nextBoolean() ? k + r.nextInt(5) : -1 - r.nextInt(5);
                arg = "colIdx";
            }
            case 3 -> {
                // a row with two entries swapped (unsorted) or repeated
                int row = -1;
                for (int i = 0; i < n; i++) if (rowPtr[i + 1] - rowPtr[i] >= 2) row = i;
                if (row < 0) return;
                int at = (int) rowPtr[row];
                if (r.nextBoolean()) {
                    int t = colIdx[at];
                    colIdx[at] = colIdx[at + 1];
                    colIdx[at + 1] = t;
                } else {
                    colIdx[at + 1] = colIdx[at];
                }
                arg = "colIdx";
            }
            case 4 -> {
                values = Arrays.copyOf(values, nnz + 1 + r.nextInt(3));
                arg = "values";
            }
            case 5 -> {
                if (n < 2) return;
                int i = 1 + r.nextInt(n - 1);
                rowPtr[i] = rowPtr[i + 1] + 1; // decreasing
                arg = "rowPtr";
            }
            default -> {
                if (nnz == 0) return;
                values[r.nextInt(nnz)] = r.nextBoolean() ? Float.NaN : Float.POSITIVE_INFINITY;
                // documented: NaN is kept (CSR); only the int8 path refuses non-finite scales
                long[] rp = rowPtr;
                int[] ci = colIdx;
                float[] v = values;
                byte[] q = new byte[nnz];
                float[] scales = nonZero(r, n, 1);
                scales[r.nextInt(n)] = Float.NaN;
                refused(IllegalArgumentException.class, "rowScales", () -> SparseMatrix.csr(n, k, rp, ci, q, scales).close());
                try (SparseMatrix ok = SparseMatrix.csr(n, k, rp, ci, v)) {
                    assertEquals(nnz, ok.nnz());
                }
                return;
            }
        }
        long[] rp = rowPtr;
        int[] ci = colIdx;
        float[] v = values;
        refused(IllegalArgumentException.class, arg, () -> SparseMatrix.csr(n, k, rp, ci, v).close());
        refused(IllegalArgumentException.class, "rowPtr", () -> SparseMatrix.csr(n, k, null, ci, v).close());
        refused(IllegalArgumentException.class, "colIdx", () -> SparseMatrix.csr(n, k, rp.clone(), null, v).close());
        refused(IllegalArgumentException.class, "n", () -> SparseMatrix.csr(-n, k, rp, ci, v).close());
        refused(IllegalArgumentException.class, "k", () -> SparseMatrix.csr(n, 0, rp, ci, v).close());
    }

    @Property
    void pruningRemovesTheStatedCount(@ForAll("units") int n, @ForAll("units") int ku, @ForAll @IntRange(max = 3) int how,
                                      @ForAll @IntRange(max = 100) int pct, @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        double s = pct / 100.0;
        int k = ku * 4;
        Pruning p = switch (how) {
            case 0 -> Pruning.magnitude(s);
            case 1 -> Pruning.magnitude(s).global();
            case 2 -> Pruning.nm(2, 4);
            default -> {
                float[] norms = nonZero(r, k, 1);
                for (int i = 0; i < k; i++) norms[i] = Math.abs(norms[i]);
                yield Pruning.magnitude(s).wanda(norms).seed(seed);
            }
        };
        float[] w = nonZero(r, n * k, 1);
        try (Tensor wt = Tensor.of(w, n, k); PruneResult res = p.prune(wt)) {
            float[] pruned = res.pruned().toFloatArray();
            long removed = 0;
            for (int i = 0; i < w.length; i++) {
                if (pruned[i] == 0) removed++;
                else assertEquals(w[i], pruned[i], 0f, "kept weights are kept bit for bit");
            }
            long want = switch (how) {
                case 1 -> Math.round(s * n * k);
                case 2 -> (long) n * k / 2;
                default -> n * Math.round(s * k);
            };
            assertEquals(want, removed, p + " on [" + n + ", " + k + "]");
            assertEquals(want, res.report().removed());
            if (how == 2) {
                try (SparseMatrix ts = res.toSparse(SparseFormat.TWO_FOUR); Tensor d = ts.toDense()) {
                    assertArrayEquals(pruned, d.toFloatArray());
                }
            }
        }
    }

    // ------------------------------------------------------------------ refusals

    @Property
    void badTensorsAreRefused(@ForAll("m") int m, @ForAll("units") int n, @ForAll("units") int k, @ForAll int pick,
                              @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        float[] w = SparseTestSupport.randomSparse(r, n, k, fmt(0), 0.5);
        boolean[] no = {false, false, false};
        try (Tensor wt = Tensor.of(w, n, k);
             SparseMatrix ws = SparseMatrix.fromDense(wt, SparseFormat.CSR);
             SparseMatrix w8 = SparseMatrix.fromDenseInt8(wt, SparseFormat.CSR);
             Tensor x = Tensor.of(nonZero(r, m * k, 1), m, k);
             Tensor bias = Tensor.of(nonZero(r, n, 1), n);
             Tensor out = Tensor.allocate(DType.F32, m, n);
             Tensor c = Tensor.allocate(DType.I32, m, n);
             QuantizedTensor xq = Quant.quantize(x, QuantScheme.int8PerRow())) {
            PropertySupport.refusesBadTensors(new String[] {"x", "bias", "out"}, new Tensor[] {x, bias, out},
                    new boolean[] {false, true, false}, true, pick, t -> Sparse.matmul(t[0], ws, t[1], t[2]));
            PropertySupport.refusesBadTensors(new String[] {"x", "bias"}, new Tensor[] {x, bias},
                    new boolean[] {false, true}, false, pick, t -> Sparse.matmul(t[0], ws, t[1]).close());
            PropertySupport.refusesBadTensors(new String[] {"x"}, new Tensor[] {x}, no, false, pick,
                    t -> Sparse.matmul(t[0], ws).close());
            PropertySupport.refusesBadTensors(new String[] {"bias", "out"}, new Tensor[] {bias, out},
                    new boolean[] {true, false}, true, pick, t -> Sparse.matmul(xq, w8, t[0], t[1]));
            PropertySupport.refusesBadTensors(new String[] {"xq", "out"}, new Tensor[] {xq.values(), c}, no, true, pick,
                    t -> Sparse.matmulInt32(t[0], w8, t[1]));
            PropertySupport.refusesBadTensors(new String[] {"xq"}, new Tensor[] {xq.values()}, no, false, pick,
                    t -> Sparse.matmulInt32(t[0], w8).close());
            PropertySupport.refusesBadTensors(new String[] {"bias"}, new Tensor[] {bias}, new boolean[] {true}, true, pick,
                    t -> Sparse.matmul(xq, w8, t[0]).close());
            PropertySupport.refusesBadTensors(new String[] {"w"}, new Tensor[] {wt}, no, false, pick,
                    t -> SparseMatrix.fromDense(t[0], SparseFormat.CSR).close());
            PropertySupport.refusesBadTensors(new String[] {"w"}, new Tensor[] {wt}, no, false, pick,
                    t -> SparseMatrix.fromDenseInt8(t[0], SparseFormat.CSR).close());
            PropertySupport.refusesBadTensors(new String[] {"w"}, new Tensor[] {wt}, no, false, pick,
                    t -> Pruning.magnitude(0.5).prune(t[0]).close());
            PropertySupport.refusesBadTensors(new String[] {"w", "sample"}, new Tensor[] {wt, x}, new boolean[] {false, true}, false, pick,
                    t -> Pruning.magnitude(0.5).prune(t[0], t[1]).close());
            PropertySupport.refusesBadTensors(new String[] {"calibrationActivations"}, new Tensor[] {x}, no, false, pick,
                    t -> Pruning.magnitude(0.5).wanda(t[0]));
            refused(IllegalArgumentException.class, "w", () -> Sparse.matmul(x, null, bias, out));
            refused(IllegalArgumentException.class, "w", () -> Sparse.matmul(x, (SparseMatrix) null).close());
            refused(IllegalArgumentException.class, "format", () -> SparseMatrix.fromDense(wt, null).close());
            double bad = new double[] {-0.01, 1.01, Double.NaN, Double.POSITIVE_INFINITY}[Math.floorMod(pick, 4)];
            refused(IllegalArgumentException.class, "sparsity", () -> Pruning.magnitude(bad));
            refused(IllegalArgumentException.class, "sparsity", () -> Pruning.block(BlockShape.B4x4, bad));
            int nn = Math.floorMod(pick, 20) - 2, mm = Math.floorMod(pick / 20, 20);
            if (nn < 1 || nn >= mm || mm > 16) refused(IllegalArgumentException.class, "nm", () -> Pruning.nm(nn, mm));
            refused(IllegalArgumentException.class, "shape", () -> Pruning.block(null, 0.5));
            // closed matrices
            SparseMatrix gone = SparseMatrix.fromDense(wt, SparseFormat.CSR);
            gone.close();
            gone.close(); // idempotent
            assertFalse(gone.isAlive());
            refused(IllegalStateException.class, "w", () -> Sparse.matmul(x, gone).close());
            refused(IllegalStateException.class, "w", () -> Sparse.matmul(x, gone, null, out));
            refused(IllegalStateException.class, "SparseMatrix", gone::toDense);
            refused(IllegalStateException.class, "SparseMatrix", gone::quantizeInt8);
            refused(IllegalStateException.class, "int8", w8::quantizeInt8);
        }
    }
}
