package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantError;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.util.Random;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Native quantization is bit-identical to the Java reference for every variant; other schemes work too. */
class QuantTest {
    @AfterEach
    void restore() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    @Test
    void nativeMatchesJavaReferenceBitForBit() {
        long seed = 42;
        for (Isa isa : TestSupport.isas()) {
            Isthmus.setIsaCap(isa);
            Random r = new Random(seed);
            for (int cols : new int[] {1, 7, 31, 32, 33, 100, 257, 1000}) {
                for (QuantScheme s : TestSupport.NATIVE_SCHEMES) {
                    int rows = 1 + r.nextInt(4);
                    float[] data = TestSupport.randomFloats(r, rows * cols, 1 + r.nextInt(100));
                    if (rows > 1) java.util.Arrays.fill(data, cols, 2 * cols, 0f); // an all-zero row
                    try (Tensor x = Tensor.of(data, rows, cols);
                         QuantizedTensor q = Quant.quantize(x, s);
                         QuantizedTensor ref = Quant.quantizeReference(x, s)) {
                        String what = isa + " " + s + " " + rows + "x" + cols + " seed " + seed;
                        assertArrayEquals(ref.values().toByteArray(), q.values().toByteArray(), what);
                        assertArrayEquals(ref.scales().toFloatArray(), q.scales().toFloatArray(), what);
                        try (Tensor d = Quant.dequantize(q); Tensor dr = Quant.dequantizeReference(ref)) {
                            assertArrayEquals(dr.toFloatArray(), d.toFloatArray(), what);
                        }
                        for (byte b : q.values().toByteArray()) assertTrue(b != -128, "-128 produced: " + what);
                    }
                }
            }
        }
    }

    @Test
    void roundTripErrorIsWithinHalfAStep() {
        Random r = new Random(7);
        float[] data = TestSupport.randomFloats(r, 8 * 300, 3f);
        try (Tensor x = Tensor.of(data, 8, 300);
             QuantizedTensor q = Quant.quantize(x, QuantScheme.int8PerGroup(32));
             Tensor d = Quant.dequantize(q)) {
            float[] s = q.scales().toFloatArray();
            float[] back = d.toFloatArray();
            int perRow = (300 + 31) / 32;
            for (int i = 0; i < data.length; i++) {
                float step = s[(i / 300) * perRow + (i % 300) / 32];
                assertTrue(Math.abs(back[i] - data[i]) <= 0.5f * step * 1.0001f, "element " + i);
            }
            QuantError e = Quant.error(x, q);
            assertTrue(e.sqnrDb() > 35 && e.sqnrDb() < 60, "int8 per-group SQNR on Gaussian data: " + e);
        }
    }

    @Test
    void researchSchemesRunThroughTheReference() {
        Random r = new Random(3);
        float[] data = TestSupport.randomFloats(r, 4 * 128, 1f);
        try (Tensor x = Tensor.of(data, 4, 128)) {
            double last = Double.POSITIVE_INFINITY;
            for (int bits : new int[] {8, 6, 4, 3}) {
                QuantScheme s = QuantScheme.int8PerGroup(64).withBits(bits).asymmetric();
                assertTrue(!s.isNative());
                try (QuantizedTensor q = Quant.quantize(x, s)) {
                    assertEquals(4 * 2, q.zeroPoints().elementCount());
                    QuantError e = Quant.error(x, q);
                    assertTrue(e.sqnrDb() < last, "fewer bits, more error: " + bits + " " + e);
                    last = e.sqnrDb();
                    for (byte b : q.values().toByteArray()) assertTrue((b & 0xFF) <= (1 << bits) - 1);
                }
            }
            QuantScheme clipped = QuantScheme.int8PerRow().withClip(0.5f).withRounding(QuantScheme.Rounding.HALF_AWAY_FROM_ZERO);
            try (QuantizedTensor q = Quant.quantize(x, clipped)) {
                assertEquals(clipped, q.scheme());
                assertTrue(Quant.error(x, q).maxAbsError() > 0);
            }
        }
    }

    @Test
    void tiesRoundHalfToEven() {
        float[] x = {127f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f};
        for (Isa isa : TestSupport.isas()) {
            Isthmus.setIsaCap(isa);
            try (Tensor t = Tensor.of(x, 1, 8); QuantizedTensor q = Quant.quantize(t, QuantScheme.int8PerTensor())) {
                assertArrayEquals(new byte[] {127, 0, 2, 2, 0, -2, -2, 126}, q.values().toByteArray(), isa.toString());
            }
        }
    }

    @Test
    void nonFiniteInputIsRefusedWithItsPosition() {
        float[] x = new float[2 * 40];
        java.util.Arrays.fill(x, 1f);
        x[40 + 33] = Float.NaN;
        for (Isa isa : TestSupport.isas()) {
            Isthmus.setIsaCap(isa);
            try (Tensor t = Tensor.of(x, 2, 40)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> Quant.quantize(t, QuantScheme.int8PerRow()));
                assertTrue(e.getMessage().contains("[1, 33]"), e.getMessage());
                assertThrows(IllegalArgumentException.class, () -> Quant.quantize(t, QuantScheme.int8PerRow().withBits(4)));
            }
        }
    }

    @Test
    void badSchemesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> QuantScheme.int8PerGroup(0));
        assertThrows(IllegalArgumentException.class, () -> QuantScheme.int8PerRow().withBits(9));
        assertThrows(IllegalArgumentException.class, () -> QuantScheme.int8PerRow().withClip(0f));
        assertTrue(!QuantScheme.int8PerGroup(48).isNative());
        assertTrue(QuantScheme.int8PerGroup(32).isNative());
    }
}
