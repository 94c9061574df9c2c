package dev.isthmus.quant;

import static dev.isthmus.PropertySupport.count;
import static dev.isthmus.PropertySupport.nonZero;
import static dev.isthmus.PropertySupport.refused;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.PropertySupport;
import dev.isthmus.Tensor;

import java.lang.foreign.Arena;
import java.util.Random;

import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.AfterTry;

/**
 * Properties of {@link Quant}, {@link QuantScheme}, {@link QuantizedTensor} and {@link PackedWeights}: the native
 * quantize / dequantize give the bits of the Java reference ({@link Quant#quantizeReference}, the oracle) on
 * random strided inputs and every ISA variant; any scheme's round trip is within its step (half a step for
 * symmetric unclipped schemes, a step with a rounded zero point, plus the clipped range); bad parameters, inputs
 * and closed or foreign tensors are refused with the documented exception naming the argument.
 */
class QuantPropertyTest {
    static final QuantScheme[] NATIVE = {
        QuantScheme.int8PerRow(), QuantScheme.int8PerTensor(), QuantScheme.int8PerGroup(32),
        QuantScheme.int8PerGroup(64), QuantScheme.int8PerGroup(128), QuantScheme.int8PerGroup(256),
    };

    @AfterContainer
    static void report() {
        PropertySupport.report(QuantPropertyTest.class);
    }

    @AfterTry
    void restoreIsa() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    @Provide
    Arbitrary<Integer> rows() {
        return PropertySupport.dim(129);
    }

    @Provide
    Arbitrary<Integer> cols() {
        return PropertySupport.dim(1100);
    }

    static QuantScheme any(Random r) {
        QuantScheme s = switch (r.nextInt(3)) {
            case 0 -> QuantScheme.int8PerTensor();
            case 1 -> QuantScheme.int8PerRow();
            default -> QuantScheme.int8PerGroup(1 + r.nextInt(100));
        };
        s = s.withBits(2 + r.nextInt(7));
        if (r.nextBoolean()) s = s.asymmetric();
        if (r.nextBoolean()) s = s.withRounding(QuantScheme.Rounding.HALF_AWAY_FROM_ZERO);
        if (r.nextInt(4) == 0) s = s.withClip(0.5f + r.nextFloat() / 2);
        return s;
    }

    @Property
    void nativeQuantizationIsTheReferenceBitForBit(@ForAll("rows") int rows, @ForAll("cols") int cols,
                                                   @ForAll @IntRange(max = 5) int pick, @ForAll @IntRange(max = 9) int pad,
                                                   @ForAll @IntRange(max = 2) int isa, @ForAll long seed) {
        count(getClass());
        Isa cap = Isa.values()[isa];
        Isthmus.setIsaCap(cap);
        Random r = new Random(seed);
        QuantScheme scheme = NATIVE[pick];
        float[] data = nonZero(r, rows * cols, Math.pow(10, r.nextInt(7) - 3));
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = PropertySupport.strided(arena, data, rows, cols, cols + pad);
            try (QuantizedTensor q = Quant.quantize(x, scheme); QuantizedTensor ref = Quant.quantizeReference(x, scheme)) {
                assertEquals(rows, q.rows());
                assertEquals(cols, q.cols());
                assertEquals(scheme, q.scheme());
                assertArrayEquals(ref.values().toByteArray(), q.values().toByteArray(), "values " + scheme);
                assertArrayEquals(ref.scales().toFloatArray(), q.scales().toFloatArray(), "scales " + scheme);
                try (Tensor d = Quant.dequantize(q); Tensor dr = Quant.dequantizeReference(q)) {
                    assertArrayEquals(dr.toFloatArray(), d.toFloatArray(), "dequantize " + scheme);
                }
                QuantError e = Quant.error(x, q);
                assertTrue(e.sqnrDb() > 30 && e.maxAbsError() >= 0 && e.rmse() <= e.maxAbsError(), e.toString());
            }
        }
    }

    @Property
    void anySchemeRoundTripsWithinItsStep(@ForAll("rows") int rows, @ForAll("cols") int cols, @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        QuantScheme scheme = any(r);
        float[] data = nonZero(r, rows * cols, 1);
        try (Tensor x = Tensor.of(data, rows, cols); QuantizedTensor q = Quant.quantize(x, scheme);
             Tensor d = Quant.dequantize(q)) {
            assertEquals(scheme.scaleCount(rows, cols), q.scales().elementCount());
            assertEquals(!scheme.symmetric(), q.zeroPoints() != null);
            float[] got = d.toFloatArray(), s = q.scales().toFloatArray();
            int g = scheme.granularity() == QuantScheme.Granularity.PER_GROUP ? scheme.group() : cols;
            int perRow = (cols + g - 1) / g;
            double amaxAll = 0;
            for (float v : data) amaxAll = Math.max(amaxAll, Math.abs(v));
            for (int i = 0; i < rows; i++)
                for (int c = 0; c < cols; c++) {
                    int si = switch (scheme.granularity()) {
                        case PER_TENSOR -> 0;
                        case PER_ROW -> i;
                        case PER_GROUP -> i * perRow + c / g;
                    };
                    double step = s[si];
                    // half a step (a step with the rounded zero point), plus the f32 rounding of x / s (half an ulp
                    // of a level <= 255: 2^-17 step) and of level * s: 1e-4 step covers both
                    double bound = ((scheme.symmetric() ? 0.5 : 1.0) + 1e-4) * step
                            + (scheme.clip() < 1 ? amaxAll * (1 - scheme.clip()) * 2 + step : 0) + 1e-30;
                    double err = Math.abs((double) data[i * cols + c] - got[i * cols + c]);
                    if (!(err <= bound))
                        fail(scheme + " [" + i + ", " + c + "]: " + data[i * cols + c] + " -> " + got[i * cols + c]
                                + ", error " + err + " > " + bound);
                }
        }
    }

    @Property
    void packedWeightsDescribeThemselves(@ForAll("rows") int n, @ForAll("cols") int k, @ForAll @IntRange(max = 5) int pick,
                                         @ForAll @IntRange(max = 2) int isa, @ForAll long seed) {
        count(getClass());
        Isthmus.setIsaCap(Isa.values()[isa]);
        Random r = new Random(seed);
        try (Tensor w = Tensor.of(nonZero(r, n * k, 1), n, k)) {
            PackedWeights p = PackedWeights.quantize(w, NATIVE[pick]);
            assertEquals(n, p.n());
            assertEquals(k, p.k());
            assertEquals(NATIVE[pick], p.scheme());
            assertEquals(Isthmus.isa(), p.isa());
            assertTrue(p.byteSize() >= (long) n * k && p.isAlive());
            try (QuantizedTensor q = Quant.quantize(w, NATIVE[pick]); PackedWeights p2 = PackedWeights.pack(q)) {
                assertEquals(p.byteSize(), p2.byteSize());
                assertEquals(-1L, p.segment().mismatch(p2.segment()), "pack(quantize(w)) differs from quantize(w)");
            }
            p.close();
            p.close(); // idempotent
            assertFalse(p.isAlive());
            refused(IllegalStateException.class, "PackedWeights", p::segment);
            refused(IllegalStateException.class, "PackedWeights", p::lease);
        }
    }

    // ------------------------------------------------------------------ refusals

    @Property
    void badSchemesAreRefused(@ForAll int bits, @ForAll int group, @ForAll float clip) {
        count(getClass());
        if (bits < 2 || bits > 8) refused(IllegalArgumentException.class, "bits", () -> QuantScheme.int8PerRow().withBits(bits));
        else assertEquals(bits, QuantScheme.int8PerRow().withBits(bits).bits());
        if (group < 1) refused(IllegalArgumentException.class, "group", () -> QuantScheme.int8PerGroup(group));
        else assertEquals(group, QuantScheme.int8PerGroup(group).group());
        if (!(clip > 0 && clip <= 1)) refused(IllegalArgumentException.class, "clip", () -> QuantScheme.int8PerRow().withClip(clip));
        else assertEquals(clip, QuantScheme.int8PerRow().withClip(clip).clip());
        refused(IllegalArgumentException.class, "rounding", () -> QuantScheme.int8PerRow().withRounding(null));
        refused(IllegalArgumentException.class, "rows", () -> QuantScheme.int8PerRow().scaleCount(-Math.abs((long) group) - 1, 4));
        refused(IllegalArgumentException.class, "cols", () -> QuantScheme.int8PerGroup(32).scaleCount(4, 0));
        refused(IllegalArgumentException.class, "rows",
                () -> QuantScheme.int8PerGroup(1).scaleCount(Long.MAX_VALUE / 2, Long.MAX_VALUE / 2));
    }

    @Property
    void badTensorsAreRefused(@ForAll("rows") int rows, @ForAll("cols") int cols, @ForAll @IntRange(max = 5) int pick,
                              @ForAll int dpick, @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        QuantScheme scheme = NATIVE[pick], other = any(r);
        try (Tensor x = Tensor.of(nonZero(r, rows * cols, 1), rows, cols);
             QuantizedTensor q = Quant.quantize(x, scheme)) {
            boolean[] no = {false, false, false};
            PropertySupport.refusesBadTensors(new String[] {"x"}, new Tensor[] {x}, no, false, dpick,
                    t -> Quant.quantize(t[0], scheme).close());
            PropertySupport.refusesBadTensors(new String[] {"x"}, new Tensor[] {x}, no, false, dpick,
                    t -> Quant.quantize(t[0], other).close());
            PropertySupport.refusesBadTensors(new String[] {"x"}, new Tensor[] {x}, no, false, dpick,
                    t -> Quant.quantizeReference(t[0], scheme).close());
            PropertySupport.refusesBadTensors(new String[] {"x"}, new Tensor[] {x}, no, true, dpick,
                    t -> Quant.error(t[0], q));
            PropertySupport.refusesBadTensors(new String[] {"w"}, new Tensor[] {x}, no, false, dpick,
                    t -> PackedWeights.quantize(t[0], scheme).close());
            PropertySupport.refusesBadTensors(new String[] {"values", "scales"}, new Tensor[] {q.values(), q.scales()},
                    no, false, dpick, t -> new QuantizedTensor(t[0], t[1], scheme));
            refused(IllegalArgumentException.class, "scheme", () -> Quant.quantize(x, null));
            refused(IllegalArgumentException.class, "scheme", () -> Quant.quantizeReference(x, null));
            refused(IllegalArgumentException.class, "scheme", () -> PackedWeights.quantize(x, null));
            refused(IllegalArgumentException.class, "scheme", () -> new QuantizedTensor(q.values(), q.scales(), null));
            refused(IllegalArgumentException.class, "q", () -> Quant.dequantize(null));
            refused(IllegalArgumentException.class, "q", () -> Quant.dequantizeReference(null));
            refused(IllegalArgumentException.class, "q", () -> Quant.error(x, null));
            refused(IllegalArgumentException.class, "w", () -> PackedWeights.pack(null));
            // a scheme with no native kernel cannot be packed
            if (!other.isNative()) {
                refused(IllegalArgumentException.class, "scheme", () -> PackedWeights.quantize(x, other));
                try (QuantizedTensor qo = Quant.quantize(x, other)) {
                    refused(IllegalArgumentException.class, "scheme", () -> PackedWeights.pack(qo));
                }
            }
            // zero points: required by asymmetric schemes, refused by symmetric ones
            try (Tensor zp = Tensor.allocate(DType.I32, q.scales().elementCount())) {
                refused(IllegalArgumentException.class, "zeroPoints", () -> new QuantizedTensor(q.values(), q.scales(), zp, scheme));
                refused(IllegalArgumentException.class, "zeroPoints",
                        () -> new QuantizedTensor(q.values(), q.scales(), null, scheme.asymmetric()));
            }
            // NaN / infinite inputs
            int at = r.nextInt(rows * cols);
            float[] bad = x.toFloatArray();
            bad[at] = new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}[r.nextInt(3)];
            try (Tensor xb = Tensor.of(bad, rows, cols)) {
                refused(IllegalArgumentException.class, "x", () -> Quant.quantize(xb, scheme).close());
                refused(IllegalArgumentException.class, "x", () -> Quant.quantizeReference(xb, other).close());
                refused(IllegalArgumentException.class, "x", () -> PackedWeights.quantize(xb, scheme).close());
            }
            // -128 in weights to pack
            try (Tensor v = Tensor.of(new byte[rows * cols], rows, cols);
                 Tensor s = Tensor.of(nonZero(r, (int) scheme.scaleCount(rows, cols), 1), scheme.scaleCount(rows, cols))) {
                v.set((byte) -128, (long) (at / cols), (long) (at % cols));
                QuantizedTensor qv = new QuantizedTensor(v, s, scheme);
                refused(IllegalArgumentException.class, "w", () -> PackedWeights.pack(qv).close());
            }
            // shape mismatch in error()
            try (Tensor x2 = Tensor.of(nonZero(r, rows * (cols + 1), 1), rows, cols + 1)) {
                refused(IllegalArgumentException.class, "x", () -> Quant.error(x2, q));
            }
        }
    }

    @Property
    void closedQuantizedTensorsAreRefused(@ForAll("rows") int rows, @ForAll("cols") int cols,
                                          @ForAll @IntRange(max = 5) int pick, @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        QuantScheme scheme = NATIVE[pick];
        try (Tensor x = Tensor.of(nonZero(r, rows * cols, 1), rows, cols); PackedWeights w = PackedWeights.quantize(x, scheme)) {
            QuantizedTensor q = Quant.quantize(x, scheme);
            q.close();
            refused(IllegalStateException.class, "q.values", () -> Quant.dequantize(q));
            refused(IllegalStateException.class, "q.values", () -> Quant.dequantizeReference(q));
            refused(IllegalStateException.class, "q.values", () -> Quant.error(x, q));
            refused(IllegalStateException.class, "w.values", () -> PackedWeights.pack(q));
            refused(IllegalStateException.class, "a.values", () -> dev.isthmus.Ops.matmul(q, w));
            try (QuantizedTensor q2 = Quant.quantize(x, scheme.asymmetric().withBits(7))) {
                q2.zeroPoints().close();
                refused(IllegalStateException.class, "q.zeroPoints", () -> Quant.dequantize(q2));
            }
        }
    }

    /** Regression: dequantizeReference(null) and error(x, null) were NullPointerExceptions, a closed q an
     *  IllegalStateException without the argument's name. */
    @Example
    void referenceDequantizeChecksItsArgument() {
        refused(IllegalArgumentException.class, "q", () -> Quant.dequantizeReference(null));
        try (Tensor x = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2)) {
            refused(IllegalArgumentException.class, "q", () -> Quant.error(x, null));
            QuantizedTensor q = Quant.quantize(x, QuantScheme.int8PerRow());
            q.close();
            refused(IllegalStateException.class, "q.values", () -> Quant.dequantizeReference(q));
        }
    }

    /** Regression: a null rounding was a NullPointerException, unlike every other bad scheme parameter; a
     *  scaleCount overflow an ArithmeticException. */
    @Example
    void schemeParametersAreIllegalArguments() {
        refused(IllegalArgumentException.class, "rounding", () -> QuantScheme.int8PerRow().withRounding(null));
        refused(IllegalArgumentException.class, "rows",
                () -> QuantScheme.int8PerGroup(1).scaleCount(Long.MAX_VALUE / 2, Long.MAX_VALUE / 2));
    }

    /** Regression: PackedWeights.quantize blamed "x" (Quant's name) for a bad w, and QuantizedTensor threw a
     *  NullPointerException for a null scheme where every other argument is an IllegalArgumentException. */
    @Example
    void packedWeightsNameW() {
        try (Tensor w = Tensor.of(new float[] {1, Float.NaN, 3, 4}, 2, 2); Tensor ok = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2);
             QuantizedTensor q = Quant.quantize(ok, QuantScheme.int8PerRow())) {
            refused(IllegalArgumentException.class, "w", () -> PackedWeights.quantize(w, QuantScheme.int8PerRow()));
            Tensor closed = PropertySupport.closed(ok);
            refused(IllegalStateException.class, "w", () -> PackedWeights.quantize(closed, QuantScheme.int8PerRow()));
            refused(IllegalArgumentException.class, "scheme", () -> new QuantizedTensor(q.values(), q.scales(), null));
        }
    }
}
