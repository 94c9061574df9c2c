package dev.isthmus.sparse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.Tensor;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;
import dev.isthmus.sparse.SparseTestSupport.Fmt;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Sparse.matmul against a Java double reference on the dense matrix, for every format, dtype and ISA
 * variant this CPU runs, over M = 1, 3, 8, 17, 128, shapes with N and K of 1 (where the format allows),
 * odd and even, and sparsities 0 .. 1 (the empty matrix).
 *
 * <p>F32 W: isthmus.h bounds the sum by {@code 2 * nnz_row * 2^-24 * S} with {@code S = sum |w * x|}
 * (nnz_row = the values stored for the row); adding the bias is one more f32 rounding of a value below
 * {@code S + |bias|} in magnitude, so the test allows {@code 2 * nnz_row * 2^-24 * S + 2^-23 * (S + |bias|)
 * + 1e-30}. S8 W: the int32 output is exact, and y equals {@code Math.fma((float) acc, sx * sw, 0f) + bias}
 * bit for bit, with x quantized by {@code Quant.quantize(x, int8PerRow())}. Outputs are poisoned with NaN
 * and have a row stride with guard elements that must stay untouched.
 */
class SparseMatmulTest {
    private static final int[] MS = {1, 3, 8, 17, 128};

    @AfterEach
    void restore() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    /** (N, K) pairs per format, cycled through the cases: 1 where allowed, odd, even. */
    private static int[][] shapes(Fmt f) {
        return switch (f.toString()) {
            case "CSR" -> new int[][] {{1, 1}, {1, 7}, {5, 1}, {13, 29}, {64, 96}, {33, 130}, {7, 64}};
            case "BSR 1x4" -> new int[][] {{1, 4}, {7, 12}, {33, 68}, {64, 128}, {3, 4}};
            case "BSR 1x8" -> new int[][] {{1, 8}, {9, 24}, {33, 72}, {48, 128}, {5, 8}};
            case "BSR 4x4" -> new int[][] {{4, 4}, {12, 20}, {36, 68}, {64, 128}, {4, 132}};
            default -> new int[][] {{1, 4}, {7, 12}, {33, 68}, {64, 128}, {5, 20}, {3, 36}};
        };
    }

    @Test
    void everyFormatDtypeAndIsaAgainstDoubleReference() {
        int cases = 0;
        for (Isa isa : SparseTestSupport.isas()) {
            Isthmus.setIsaCap(isa);
            Random r = new Random(2026 + isa.ordinal());
            for (Fmt f : SparseTestSupport.FORMATS) {
                int[][] sh = shapes(f);
                int c = 0;
                for (double s : SparseTestSupport.SPARSITIES)
                    for (int m : MS) {
                        int[] nk = sh[c++ % sh.length];
                        boolean bias = c % 2 == 0;
                        String what = isa + " " + f + " M=" + m + " N=" + nk[0] + " K=" + nk[1] + " s=" + s;
                        float[] w = SparseTestSupport.randomSparse(r, nk[0], nk[1], f, s);
                        checkF32(r, f, m, nk[0], nk[1], w, bias, c % 3 == 0, isa, what);
                        checkS8(r, f, m, nk[0], nk[1], w, bias, c % 3 == 1, isa, what);
                        cases += 2;
                    }
            }
        }
        System.out.println("SparseMatmulTest: " + cases + " cases");
    }

    @Test
    void kOf4096AndNOf4096() {
        Random r = new Random(4096);
        for (Fmt f : SparseTestSupport.FORMATS) {
            float[] w = SparseTestSupport.randomSparse(r, 64, 4096, f, 0.9);
            for (int m : new int[] {1, 17}) { // decode (M = 1 has its own kernels) and a batch
                checkF32(r, f, m, 64, 4096, w, true, m == 1, Isthmus.isa(), f + " K=4096 M=" + m);
                checkS8(r, f, m, 64, 4096, w, true, m == 1, Isthmus.isa(), f + " K=4096 M=" + m);
            }
        }
        Fmt csr = SparseTestSupport.FORMATS.get(0);
        float[] w = SparseTestSupport.randomSparse(r, 4096, 96, csr, 0.7);
        checkF32(r, csr, 8, 4096, 96, w, true, true, Isthmus.isa(), "CSR N=4096");
        checkS8(r, csr, 8, 4096, 96, w, false, true, Isthmus.isa(), "CSR N=4096");
    }

    @Test
    void rowsWithOneNonzeroAndEmptyRows() {
        Random r = new Random(11);
        for (Isa isa : SparseTestSupport.isas()) {
            Isthmus.setIsaCap(isa);
            for (Fmt f : SparseTestSupport.FORMATS) {
                int n = 16, k = 40;
                float[] w = new float[n * k];
                for (int row = 0; row < n; row++)
                    if (row % 5 != 4) w[row * k + (row * 7) % k] = SparseTestSupport.nonzero(r); // one nonzero, or none
                for (int m : MS) {
                    checkF32(r, f, m, n, k, w, m % 2 == 1, false, isa, isa + " " + f + " one nonzero M=" + m);
                    checkS8(r, f, m, n, k, w, m % 2 == 0, false, isa, isa + " " + f + " one nonzero M=" + m);
                }
            }
        }
    }

    @Test
    void quantizedActivationsTakeTheSamePathAsF32() {
        Random r = new Random(5);
        int m = 9, n = 24, k = 48;
        for (Fmt f : SparseTestSupport.FORMATS) {
            float[] w = SparseTestSupport.randomSparse(r, n, k, f, 0.6);
            try (Tensor wt = Tensor.of(w, n, k); SparseMatrix ws = SparseMatrix.fromDenseInt8(wt, f.format(), f.block());
                 Tensor x = Tensor.of(SparseTestSupport.randomFloats(r, m * k, 1f), m, k);
                 Tensor bias = Tensor.of(SparseTestSupport.randomFloats(r, n, 1f), n);
                 QuantizedTensor xq = Quant.quantize(x, QuantScheme.int8PerRow());
                 Tensor y1 = Sparse.matmul(x, ws, bias); Tensor y2 = Sparse.matmul(xq, ws, bias)) {
                assertArrayEquals(y1.toFloatArray(), y2.toFloatArray(), f + ": f32 x is quantized as Quant.quantize does");
            }
        }
    }

    @Test
    void stridedActivationsAndOutputs() {
        Random r = new Random(6);
        int m = 7, n = 20, k = 40, ldx = k + 5, ldy = n + 2;
        for (Fmt f : SparseTestSupport.FORMATS) {
            float[] w = SparseTestSupport.randomSparse(r, n, k, f, 0.5);
            float[] big = SparseTestSupport.randomFloats(r, m * ldx, 1f);
            float[] packed = new float[m * k];
            for (int i = 0; i < m; i++) System.arraycopy(big, i * ldx, packed, i * k, k);
            try (Arena arena = Arena.ofConfined(); Tensor wt = Tensor.of(w, n, k);
                 SparseMatrix ws = SparseMatrix.fromDense(wt, f.format(), f.block()); SparseMatrix w8 = ws.quantizeInt8();
                 Tensor xBig = Tensor.of(big, m, ldx); Tensor x = Tensor.of(packed, m, k);
                 Tensor bias = Tensor.of(SparseTestSupport.randomFloats(r, n, 1f), n);
                 Tensor want = Sparse.matmul(x, ws, bias); Tensor want8 = Sparse.matmul(x, w8, bias)) {
                Tensor xs = Tensor.wrap(xBig.segment(), DType.F32, new long[] {m, k}, new long[] {ldx, 1});
                for (SparseMatrix mat : new SparseMatrix[] {ws, w8}) {
                    MemorySegment seg = arena.allocate((long) m * ldy * 4, 64);
                    Tensor y = Tensor.wrap(seg, DType.F32, new long[] {m, n}, new long[] {ldy, 1});
                    Sparse.matmul(xs, mat, bias, y);
                    float[] a = y.toFloatArray(), b = (mat == ws ? want : want8).toFloatArray();
                    for (int i = 0; i < a.length; i++) {
                        double tol = mat == ws ? 1e-5 * (1 + Math.abs(b[i])) : 0;
                        assertEquals(b[i], a[i], tol, f + " " + mat.dtype() + " strided y[" + i + "]");
                    }
                }
                Tensor row = xs.rows(3, 4); // one row of the strided view
                try (Tensor y1 = Sparse.matmul(row, w8, bias)) {
                    float[] b = want8.toFloatArray();
                    assertArrayEquals(java.util.Arrays.copyOfRange(b, 3 * n, 4 * n), y1.toFloatArray(), f + " one strided row");
                }
            }
        }
    }

    @Test
    void int8ExtremesAreExact() {
        // the AVX2 idiom maddubs(abs(a), sign(b, a)) must not saturate: +-127 weights against -128 activations
        for (Isa isa : SparseTestSupport.isas()) {
            Isthmus.setIsaCap(isa);
            for (Fmt f : SparseTestSupport.FORMATS) {
                int n = 8, m = 4, k = 64;
                float[] w = new float[n * k];
                for (int i = 0; i < w.length; i++) w[i] = (i % 4 < 2) ? ((i / 4) % 2 == 0 ? 1f : -1f) : 0f;
                byte[] xq = new byte[m * k];
                for (int i = 0; i < xq.length; i++) xq[i] = (byte) (i % 3 == 0 ? -128 : i % 3 == 1 ? 127 : -127);
                try (Tensor wt = Tensor.of(w, n, k); SparseMatrix ws = SparseMatrix.fromDenseInt8(wt, f.format(), f.block());
                     Tensor x = Tensor.of(xq, m, k); Tensor c = Sparse.matmulInt32(x, ws)) {
                    byte[] q = dense8(ws);
                    int[] got = c.toIntArray();
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            long acc = 0;
                            for (int kk = 0; kk < k; kk++) acc += (long) xq[i * k + kk] * q[j * k + kk];
                            assertEquals(acc, got[i * n + j], isa + " " + f + " c[" + i + "," + j + "]");
                        }
                }
            }
        }
    }

    // ------------------------------------------------------------------ checks

    /** An F32 [m, n] output with row stride n + 3, NaN everywhere (the 3 guard columns must stay NaN). */
    private static Tensor poisoned(Arena arena, int m, int n) {
        long ld = n + 3;
        MemorySegment seg = arena.allocate(ld * m * 4, 64);
        for (long i = 0; i < ld * m; i++) seg.setAtIndex(ValueLayout.JAVA_FLOAT, i, Float.NaN);
        return Tensor.wrap(seg, DType.F32, new long[] {m, n}, new long[] {ld, 1});
    }

    private static void checkGuards(Tensor y, int m, int n, String what) {
        long ld = y.stride(0);
        long len = y.segment().byteSize() / 4;
        for (int i = 0; i < m; i++)
            for (long g = n; g < ld && i * ld + g < len; g++)
                if (!Float.isNaN(y.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i * ld + g)))
                    fail(what + ": the kernel wrote past row " + i + " (guard column " + g + ")");
    }

    static void checkF32(Random r, Fmt f, int m, int n, int k, float[] w, boolean withBias, boolean intoPoisoned,
                                 Isa isa, String what) {
        float[] xs = SparseTestSupport.randomFloats(r, m * k, 1f);
        float[] b = withBias ? SparseTestSupport.randomFloats(r, n, 1f) : null;
        try (Arena arena = Arena.ofConfined(); Tensor wt = Tensor.of(w, n, k);
             SparseMatrix ws = SparseMatrix.fromDense(wt, f.format(), f.block()); Tensor x = Tensor.of(xs, m, k);
             Tensor bias = b == null ? null : Tensor.of(b, n)) {
            assertEquals(isa, ws.isa(), what + ": packed for the active ISA");
            Tensor y;
            if (intoPoisoned) {
                y = poisoned(arena, m, n);
                Sparse.matmul(x, ws, bias, y);
                checkGuards(y, m, n, what);
            } else {
                y = Sparse.matmul(x, ws, bias);
            }
            float[] got = y.toFloatArray();
            long[] stored = SparseTestSupport.storedPerRow(ws);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double ref = 0, s = 0;
                    for (int kk = 0; kk < k; kk++) {
                        double p = (double) w[j * k + kk] * xs[i * k + kk];
                        ref += p;
                        s += Math.abs(p);
                    }
                    double bj = b == null ? 0 : b[j];
                    double tol = 2 * stored[j] * 0x1.0p-24 * s + 0x1.0p-23 * (s + Math.abs(bj)) + 1e-30;
                    double g = got[i * n + j];
                    if (!(Math.abs(g - (ref + bj)) <= tol))
                        fail(what + " F32: y[" + i + "," + j + "] = " + g + ", want " + (ref + bj) + " +- " + tol);
                }
            if (!intoPoisoned) y.close();
        }
    }

    /** The dense int8 matrix of an S8 SparseMatrix, from its exchange arrays. */
    private static byte[] dense8(SparseMatrix ws) {
        try (Tensor d = ws.toDense()) {
            float[] dd = d.toFloatArray();
            float[] sc = ws.rowScales();
            byte[] q = new byte[dd.length];
            int k = (int) ws.k();
            for (int i = 0; i < q.length; i++) q[i] = sc[i / k] == 0 ? 0 : (byte) Math.round(dd[i] / sc[i / k]);
            return q;
        }
    }

    static void checkS8(Random r, Fmt f, int m, int n, int k, float[] w, boolean withBias, boolean intoPoisoned,
                                Isa isa, String what) {
        float[] xs = SparseTestSupport.randomFloats(r, m * k, 2f);
        float[] b = withBias ? SparseTestSupport.randomFloats(r, n, 1f) : null;
        try (Arena arena = Arena.ofConfined(); Tensor wt = Tensor.of(w, n, k);
             QuantizedTensor wq = Quant.quantize(wt, QuantScheme.int8PerRow());
             SparseMatrix ws = SparseMatrix.fromDenseInt8(wt, f.format(), f.block()); Tensor x = Tensor.of(xs, m, k);
             QuantizedTensor xq = Quant.quantize(x, QuantScheme.int8PerRow());
             Tensor bias = b == null ? null : Tensor.of(b, n); Tensor c = Sparse.matmulInt32(xq.values(), ws)) {
            assertEquals(isa, ws.isa(), what + ": packed for the active ISA");
            Tensor y;
            if (intoPoisoned) {
                y = poisoned(arena, m, n);
                Sparse.matmul(x, ws, bias, y);
                checkGuards(y, m, n, what);
            } else {
                y = Sparse.matmul(x, ws, bias);
            }
            byte[] qw = wq.values().toByteArray(), qx = xq.values().toByteArray();
            float[] sw = wq.scales().toFloatArray(), sx = xq.scales().toFloatArray();
            int[] acc = c.toIntArray();
            float[] got = y.toFloatArray();
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    long a = 0;
                    for (int kk = 0; kk < k; kk++) a += (long) qx[i * k + kk] * qw[j * k + kk];
                    if (acc[i * n + j] != a) fail(what + " S8: c[" + i + "," + j + "] = " + acc[i * n + j] + ", want " + a);
                    float want = Math.fma((float) a, sx[i] * sw[j], 0f);
                    if (b != null) want += b[j];
                    if (Float.compare(got[i * n + j], want) != 0)
                        fail(what + " S8: y[" + i + "," + j + "] = " + got[i * n + j] + ", want exactly " + want);
                }
            if (!intoPoisoned) y.close();
        }
    }
}
