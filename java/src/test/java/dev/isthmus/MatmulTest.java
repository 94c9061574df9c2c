package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.util.Random;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * matmul against a Java double-precision reference on the quantized values, for every ISA variant.
 * Tolerance (the same as the C tests): |y - ref| <= (groups + 3) * 2^-23 * S with
 * S = sum_g |acc_g * sa * sw| + |bias|: three f32 roundings per group term (int32 to f32, the scale
 * product, the fma) each within 2^-24 of a partial sum bounded by S, plus the bias, with a factor 2 of
 * margin. int32 results are exact. All variants must agree bit for bit.
 */
class MatmulTest {
    @AfterEach
    void restore() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    private static float scaleAt(float[] s, QuantScheme sc, long row, long g, long perRow) {
        return switch (sc.granularity()) {
            case PER_TENSOR -> s[0];
            case PER_ROW -> s[(int) row];
            case PER_GROUP -> s[(int) (row * perRow + g)];
        };
    }

    /** Checks y = a . w^T against doubles; returns y. */
    static float[] check(QuantizedTensor a, QuantizedTensor w, float[] bias, Tensor y, String what) {
        int m = (int) a.rows(), n = (int) w.rows(), k = (int) a.cols();
        byte[] av = a.values().toByteArray(), wv = w.values().toByteArray();
        float[] as = a.scales().toFloatArray(), ws = w.scales().toFloatArray();
        int glen = w.scheme().granularity() == QuantScheme.Granularity.PER_GROUP ? w.scheme().group() : k;
        int groups = (k + glen - 1) / glen;
        float[] out = y.toFloatArray();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double ref = 0, bound = 0;
                for (int g = 0; g < groups; g++) {
                    long acc = 0;
                    for (int kk = g * glen; kk < Math.min(k, (g + 1) * glen); kk++) acc += (long) av[i * k + kk] * wv[j * k + kk];
                    double s = (double) scaleAt(as, a.scheme(), i, g, groups) * scaleAt(ws, w.scheme(), j, g, groups);
                    ref += acc * s;
                    bound += Math.abs(acc * s);
                }
                if (bias != null) {
                    ref += bias[j];
                    bound += Math.abs(bias[j]);
                }
                double tol = (groups + 3) * 0x1.0p-23 * bound + 1e-30;
                double got = out[i * n + j];
                if (!(Math.abs(got - ref) <= tol))
                    fail(what + ": y[" + i + "," + j + "] = " + got + ", want " + ref + " +- " + tol);
            }
        return out;
    }

    @Test
    void quantizedActivationsAgainstDoubleReference() {
        Random r = new Random(2026);
        int cases = 0;
        for (int mi = 0; mi < TestSupport.SIZES.length; mi++) {
            int m = TestSupport.SIZES[mi], n = TestSupport.SIZES[(mi * 7 + 3) % TestSupport.SIZES.length];
            int k = TestSupport.SIZES[(mi * 5 + 1) % TestSupport.SIZES.length] * (1 + mi % 3);
            QuantScheme ws = TestSupport.NATIVE_SCHEMES[mi % TestSupport.NATIVE_SCHEMES.length];
            QuantScheme as = ws.granularity() == QuantScheme.Granularity.PER_GROUP && mi % 2 == 0 ? ws
                    : (mi % 3 == 0 ? QuantScheme.int8PerTensor() : QuantScheme.int8PerRow());
            float[] bias = mi % 2 == 0 ? TestSupport.randomFloats(r, n, 1f) : null;
            try (Tensor x = Tensor.of(TestSupport.randomFloats(r, m * k, 2f), m, k);
                 Tensor w = Tensor.of(TestSupport.randomFloats(r, n * k, 0.1f), n, k);
                 QuantizedTensor aq = Quant.quantize(x, as);
                 QuantizedTensor wq = Quant.quantize(w, ws);
                 Tensor b = bias == null ? null : Tensor.of(bias, n)) {
                float[] first = null;
                int[] firstInt = null;
                for (Isa isa : TestSupport.isas()) {
                    Isthmus.setIsaCap(isa);
                    String what = isa + " M=" + m + " N=" + n + " K=" + k + " w " + ws + " a " + as;
                    try (PackedWeights pw = PackedWeights.pack(wq); Tensor y = Tensor.allocate(DType.F32, m, n)) {
                        assertEquals(isa, pw.isa());
                        Ops.matmul(aq, pw, b, y);
                        float[] got = check(aq, wq, bias, y, what);
                        if (first == null) first = got;
                        else assertArrayEquals(first, got, what + ": variants must agree bit for bit");
                        try (Tensor c = Ops.matmulInt32(aq.values(), pw)) {
                            int[] ci = c.toIntArray();
                            if (firstInt == null) firstInt = ci;
                            else assertArrayEquals(firstInt, ci, what);
                        }
                    }
                    cases++;
                }
            }
        }
        assertTrue(cases >= TestSupport.SIZES.length);
    }

    @Test
    void int32IsExact() {
        Random r = new Random(5);
        for (int[] shape : new int[][] {{1, 1, 1}, {3, 17, 33}, {65, 31, 129}, {2, 5, 16411}}) {
            int m = shape[0], n = shape[1], k = shape[2];
            byte[] a = TestSupport.randomInt8(r, m * k, true);
            byte[] w = TestSupport.randomInt8(r, n * k, false);
            long[] want = new long[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    for (int kk = 0; kk < k; kk++) want[i * n + j] += (long) a[i * k + kk] * w[j * k + kk];
            for (Isa isa : TestSupport.isas()) {
                Isthmus.setIsaCap(isa);
                try (Tensor at = Tensor.of(a, m, k); Tensor wt = Tensor.of(w, n, k);
                     Tensor ws = Tensor.of(new float[] {1f}, 1);
                     QuantizedTensor wq = new QuantizedTensor(wt, ws, QuantScheme.int8PerTensor());
                     PackedWeights pw = PackedWeights.pack(wq); Tensor c = Ops.matmulInt32(at, pw)) {
                    int[] got = c.toIntArray();
                    for (int i = 0; i < got.length; i++)
                        assertEquals(want[i], got[i], isa + " " + m + "x" + n + "x" + k + " at " + i);
                }
            }
        }
    }

    @Test
    void fusedF32EqualsQuantizeThenMatmul() {
        Random r = new Random(11);
        for (QuantScheme ws : TestSupport.NATIVE_SCHEMES) {
            int m = 1 + r.nextInt(20), n = 1 + r.nextInt(70), k = 1 + r.nextInt(700);
            QuantScheme as = ws.granularity() == QuantScheme.Granularity.PER_GROUP ? QuantScheme.int8PerGroup(ws.group())
                    : QuantScheme.int8PerRow();
            for (Isa isa : TestSupport.isas()) {
                Isthmus.setIsaCap(isa);
                try (Tensor x = Tensor.of(TestSupport.randomFloats(r, m * k, 1f), m, k);
                     Tensor w = Tensor.of(TestSupport.randomFloats(r, n * k, 1f), n, k);
                     Tensor b = Tensor.of(TestSupport.randomFloats(r, n, 1f), n);
                     PackedWeights pw = PackedWeights.quantize(w, ws);
                     QuantizedTensor aq = Quant.quantize(x, as);
                     Tensor y1 = Tensor.allocate(DType.F32, m, n); Tensor y2 = Tensor.allocate(DType.F32, m, n)) {
                    Ops.matmul(aq, pw, b, y1);
                    Ops.matmul(x, pw, b, y2);
                    assertArrayEquals(y1.toFloatArray(), y2.toFloatArray(), isa + " " + ws + " " + m + "x" + n + "x" + k);
                }
            }
        }
    }

    @Test
    void stridedViewsAndCallerArenas() {
        Random r = new Random(9);
        int m = 6, n = 20, k = 50, ld = 64;
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            Tensor big = Tensor.allocate(arena, DType.F32, m, ld);
            float[] vals = TestSupport.randomFloats(r, m * ld, 1f);
            for (int i = 0; i < m; i++) for (int j = 0; j < ld; j++) big.set(vals[i * ld + j], i, j);
            Tensor x = Tensor.wrap(big.segment(), DType.F32, new long[] {m, k}, new long[] {ld, 1});
            float[] dense = new float[m * k];
            for (int i = 0; i < m; i++) System.arraycopy(vals, i * ld, dense, i * k, k);
            try (Tensor xd = Tensor.of(dense, m, k); Tensor w = Tensor.of(TestSupport.randomFloats(r, n * k, 1f), n, k);
                 PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
                 Tensor y1 = Ops.matmul(x, pw); Tensor y2 = Ops.matmul(xd, pw)) {
                assertArrayEquals(y2.toFloatArray(), y1.toFloatArray());
                Tensor out = Tensor.allocate(arena, DType.F32, m + 2, n);
                Ops.matmul(x, pw, null, out.rows(2, m + 2));
                assertArrayEquals(y2.toFloatArray(), out.rows(2, m + 2).toFloatArray());
            }
        }
    }
}
