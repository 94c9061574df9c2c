package dev.isthmus.bench.kernels;

import com.github.tjake.jlama.tensor.operations.cnative.NativeSimd;
import dev.isthmus.bench.Data;
import dev.isthmus.bench.Shape;
import dev.isthmus.bench.ffi.JlamaNative;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The Java baselines against each other on small shapes (tails in M, N and K included): the Vector API
 * int8 kernel must equal the plain f32 loop run on the dequantized values, and Jlama's q8 x q4 kernel
 * must compute what our reading of its layout says.
 */
class KernelAgreementTest {

    private static float[] dequant(Data.Int8 q) {
        float[] d = new float[q.rows() * q.cols()];
        for (int r = 0; r < q.rows(); r++)
            for (int c = 0; c < q.cols(); c++) d[r * q.cols() + c] = q.dequant(r, c);
        return d;
    }

    private static void assertClose(float[] want, GemmKernel got, Shape s, double rel) {
        double scale = 0;
        for (float v : want) scale = Math.max(scale, Math.abs(v));
        for (int i = 0; i < s.m(); i++)
            for (int j = 0; j < s.n(); j++)
                assertEquals(want[i * s.n() + j], got.output(i, j), rel * scale, "y[" + i + "," + j + "] of " + s);
    }

    @ParameterizedTest
    @CsvSource({"1,8,64", "5,37,200", "8,64,512", "4,33,4096"})
    void vectorInt8EqualsF32LoopOnDequantizedValues(int m, int n, int k) {
        Shape s = new Shape(m, n, k);
        Data.Int8 aq = Data.quantizePerRow(Data.activations(s), m, k);
        Data.Int8 wq = Data.quantizePerRow(Data.weights(s), n, k);
        float[] want = new float[m * n];
        JavaF32Gemm.gemm(dequant(aq), dequant(wq), want, m, n, k, 0, n);
        try (VectorInt8Gemm v = new VectorInt8Gemm(s, aq, wq, 2)) {
            v.run();
            assertClose(want, v, s, 1e-5);
        }
    }

    @Test
    void javaF32KernelMatchesReference() {
        Shape s = new Shape(3, 17, 100);
        float[] x = Data.activations(s), w = Data.weights(s);
        try (JavaF32Gemm g = new JavaF32Gemm(s, x, w, 2)) {
            g.run();
            for (int i = 0; i < s.m(); i++)
                for (int j = 0; j < s.n(); j++)
                    assertEquals(Data.reference(x, w, s.k(), i, j), g.output(i, j), 1e-4);
        }
    }

    @ParameterizedTest
    @CsvSource({"1,7,256", "6,13,512", "8,64,256", "12,4099,256"})
    void jlamaQ8Q4ComputesOurLayout(int m, int n, int k) {
        assumeTrue(JlamaNative.load(), () -> "libjlama unavailable: " + JlamaNative.unavailableReason());
        Shape s = new Shape(m, n, k);
        Data.Int8 aq = Data.quantizeInt8(Data.activations(s), m, k, 32);
        Data.Q4 wq = Data.quantizeQ4(Data.weights(s), n, k);
        float[] want = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double sum = 0;
                for (int t = 0; t < k; t++) sum += (double) aq.dequant(i, t) * wq.dequant(j, t);
                want[i * n + j] = (float) sum;
            }
        try (JlamaQ8Q4Gemm g = new JlamaQ8Q4Gemm(s, aq, wq, 2, false)) {
            g.run();
            assertClose(want, g, s, 1e-5);
        }
    }

    /**
     * Why JlamaQ8Q4Gemm splits columns in multiples of 5: called on M = 6 rows and 13 columns at once,
     * jlama-native 0.8.4 never writes y[5, 10..12] (its tile recursion drops the corner after 5 x 5 tiles).
     */
    @Test
    void jlamaNativeDropsTheCornerTileOnItsOwn() {
        assumeTrue(JlamaNative.load(), () -> "libjlama unavailable: " + JlamaNative.unavailableReason());
        int m = 6, n = 13, k = 256;
        Shape s = new Shape(m, n, k);
        Data.Int8 aq = Data.quantizeInt8(Data.activations(s), m, k, 32);
        Data.Q4 wq = Data.quantizeQ4(Data.weights(s), n, k);
        try (Arena arena = Arena.ofConfined()) {
            var af = arena.allocateFrom(ValueLayout.JAVA_FLOAT, aq.scales());
            var a = arena.allocateFrom(ValueLayout.JAVA_BYTE, aq.q());
            var bf = arena.allocateFrom(ValueLayout.JAVA_FLOAT, wq.scales());
            var b = arena.allocateFrom(ValueLayout.JAVA_BYTE, wq.packed());
            var r = arena.allocate((long) m * n * Float.BYTES);
            r.fill((byte) 0x7f); // 3.39e38f everywhere: unwritten elements keep it
            NativeSimd.gemm_q8_q4(0, af, a, 0, bf, b, 0, r, 0, m, 0, n, k,
                    k, k / 32, k / 2, k / 32, n);
            float unwritten = Float.intBitsToFloat(0x7f7f7f7f);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    boolean corner = i >= 5 && j >= 10;
                    float v = r.getAtIndex(ValueLayout.JAVA_FLOAT, (long) i * n + j);
                    assertEquals(corner, v == unwritten, "y[" + i + "," + j + "] = " + v);
                }
        }
    }
}
