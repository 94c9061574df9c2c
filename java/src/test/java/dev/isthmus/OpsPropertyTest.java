package dev.isthmus;

import static dev.isthmus.PropertySupport.count;
import static dev.isthmus.PropertySupport.nonZero;
import static dev.isthmus.PropertySupport.nonZeroInt8;
import static dev.isthmus.PropertySupport.refused;
import static dev.isthmus.PropertySupport.strided;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.lang.foreign.Arena;
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
 * Properties of the {@link Ops} entries (matmul f32 / quantized / int32, rmsNorm, swiglu) and of {@link Isthmus}:
 * random shapes, strides and values agree with the Java double references of {@link MatmulTest} and
 * {@link NnOpsTest} (their tolerances, justified there: matmul {@code (groups + 3) 2^-23 S}, int32 exact, rmsNorm
 * {@code 1e-5} relative, swiglu {@code 2e-6} relative), on every ISA variant this CPU runs; every tensor argument
 * that is closed, confined to another thread, on the Java heap, of another dtype, of another shape or null is
 * refused with the documented exception naming it.
 */
class OpsPropertyTest {
    @AfterContainer
    static void report() {
        PropertySupport.report(OpsPropertyTest.class);
    }

    @AfterTry
    void restoreIsa() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    @Provide
    Arbitrary<Integer> mn() {
        return PropertySupport.dim(129);
    }

    @Provide
    Arbitrary<Integer> k() {
        return PropertySupport.dim(700);
    }

    @Provide
    Arbitrary<Integer> dim() {
        return PropertySupport.dim(5000);
    }

    static Isa isa(int pick) {
        List<Isa> l = TestSupport.isas();
        return l.get(Math.floorMod(pick, l.size()));
    }

    static QuantScheme scheme(int pick) {
        return TestSupport.NATIVE_SCHEMES[Math.floorMod(pick, TestSupport.NATIVE_SCHEMES.length)];
    }

    /** The activation scheme Ops.matmul(Tensor, ...) uses for weights of scheme ws. */
    static QuantScheme onTheFly(QuantScheme ws) {
        return ws.granularity() == QuantScheme.Granularity.PER_GROUP ? ws : QuantScheme.int8PerRow();
    }

    @Property
    void matmulF32AgreesWithTheReference(@ForAll("mn") int m, @ForAll("mn") int n, @ForAll("k") int k,
                                         @ForAll int schemePick, @ForAll boolean withBias,
                                         @ForAll @IntRange(max = 9) int pad, @ForAll int isaPick, @ForAll long seed) {
        count(getClass());
        Isthmus.setIsaCap(isa(isaPick));
        Random r = new Random(seed);
        QuantScheme ws = scheme(schemePick);
        float[] xs = nonZero(r, m * k, 2), wsv = nonZero(r, n * k, 0.5);
        float[] bias = withBias ? nonZero(r, n, 1) : null;
        try (Arena arena = Arena.ofConfined();
             Tensor w = Tensor.of(wsv, n, k);
             PackedWeights pw = PackedWeights.quantize(w, ws);
             QuantizedTensor wq = Quant.quantizeReference(w, ws)) {
            Tensor x = strided(arena, xs, m, k, k + pad);
            Tensor out = strided(arena, new float[m * n], m, n, n + (pad + 3) % 5);
            Tensor b = bias == null ? null : Tensor.wrap(arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_FLOAT, bias),
                    DType.F32, n);
            Ops.matmul(x, pw, b, out);
            try (Tensor xc = Tensor.of(xs, m, k); QuantizedTensor a = Quant.quantizeReference(xc, onTheFly(ws))) {
                MatmulTest.check(a, wq, bias, out, "matmul " + m + "x" + n + "x" + k + " " + ws + " " + Isthmus.isa());
                if (bias == null) {
                    try (Tensor y = Ops.matmul(x, pw)) {
                        assertArrayEquals(out.toFloatArray(), y.toFloatArray(), "matmul(x, w) differs from the 4-argument form");
                    }
                }
            }
        }
    }

    @Property
    void matmulQuantizedAgreesWithTheReference(@ForAll("mn") int m, @ForAll("mn") int n, @ForAll("k") int k,
                                               @ForAll int schemePick, @ForAll @IntRange(max = 2) int actPick,
                                               @ForAll boolean withBias, @ForAll int isaPick, @ForAll long seed) {
        count(getClass());
        Isthmus.setIsaCap(isa(isaPick));
        Random r = new Random(seed);
        QuantScheme ws = scheme(schemePick);
        QuantScheme as = actPick == 0 ? QuantScheme.int8PerRow() : actPick == 1 ? QuantScheme.int8PerTensor() : onTheFly(ws);
        float[] bias = withBias ? nonZero(r, n, 1) : null;
        try (Tensor w = Tensor.of(nonZero(r, n * k, 0.5), n, k);
             Tensor x = Tensor.of(nonZero(r, m * k, 3), m, k);
             PackedWeights pw = PackedWeights.quantize(w, ws);
             QuantizedTensor wq = Quant.quantizeReference(w, ws);
             QuantizedTensor a = Quant.quantize(x, as);
             Tensor b = bias == null ? null : Tensor.of(bias, n);
             Tensor out = Tensor.allocate(DType.F32, m, n)) {
            Ops.matmul(a, pw, b, out);
            MatmulTest.check(a, wq, bias, out, "matmul(a) " + m + "x" + n + "x" + k + " " + as + " " + ws);
            if (bias == null) {
                try (Tensor y = Ops.matmul(a, pw)) {
                    assertArrayEquals(out.toFloatArray(), y.toFloatArray(), "matmul(a, w) differs from the 4-argument form");
                }
            }
        }
    }

    @Property
    void matmulInt32IsExact(@ForAll("mn") int m, @ForAll("mn") int n, @ForAll("k") int k, @ForAll int schemePick,
                            @ForAll @IntRange(max = 9) int pad, @ForAll int isaPick, @ForAll long seed) {
        count(getClass());
        Isthmus.setIsaCap(isa(isaPick));
        Random r = new Random(seed);
        byte[] av = nonZeroInt8(r, m * k);
        try (Arena arena = Arena.ofConfined();
             Tensor w = Tensor.of(nonZero(r, n * k, 1), n, k);
             QuantizedTensor wq = Quant.quantizeReference(w, scheme(schemePick));
             PackedWeights pw = PackedWeights.pack(wq)) {
            java.lang.foreign.MemorySegment seg = arena.allocate((long) (m - 1) * (k + pad) + k, 64);
            for (int i = 0; i < m; i++)
                java.lang.foreign.MemorySegment.copy(av, i * k, seg, java.lang.foreign.ValueLayout.JAVA_BYTE,
                        (long) i * (k + pad), k);
            Tensor a = Tensor.wrap(seg, DType.I8, new long[] {m, k}, new long[] {k + pad, 1});
            byte[] wv = wq.values().toByteArray();
            try (Tensor c = Ops.matmulInt32(a, pw)) {
                int[] got = c.toIntArray();
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        int want = 0;
                        for (int kk = 0; kk < k; kk++) want += av[i * k + kk] * wv[j * k + kk];
                        if (got[i * n + j] != want) fail("matmulInt32 c[" + i + "," + j + "] = " + got[i * n + j] + ", want " + want);
                    }
            }
        }
    }

    @Property
    void rmsNormAgreesWithTheReference(@ForAll("mn") int rows, @ForAll("dim") int dim, @ForAll @IntRange(max = 2) int mode,
                                       @ForAll @IntRange(max = 9) int pad, @ForAll int isaPick, @ForAll long seed) {
        count(getClass());
        Isthmus.setIsaCap(isa(isaPick));
        Random r = new Random(seed);
        boolean res = mode > 0, inPlace = mode == 2;
        float[] x0 = nonZero(r, rows * dim, 2), rr = nonZero(r, rows * dim, 0.5), w = nonZero(r, dim, 1);
        float eps = 1e-5f;
        double[] want = new double[rows * dim];
        float[] sum = new float[rows * dim];
        for (int i = 0; i < rows; i++) {
            double ss = 0;
            for (int c = 0; c < dim; c++) {
                sum[i * dim + c] = res ? x0[i * dim + c] + rr[i * dim + c] : x0[i * dim + c];
                ss += (double) sum[i * dim + c] * sum[i * dim + c];
            }
            double inv = 1 / Math.sqrt(ss / dim + eps);
            for (int c = 0; c < dim; c++) want[i * dim + c] = sum[i * dim + c] * inv * w[c];
        }
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = strided(arena, x0, rows, dim, dim + pad);
            Tensor residual = res ? strided(arena, rr, rows, dim, dim + (pad + 1) % 4) : null;
            Tensor wt = strided(arena, w, 1, dim, dim);
            Tensor y = inPlace ? x : strided(arena, new float[rows * dim], rows, dim, dim + (pad + 2) % 3);
            Ops.rmsNorm(x, residual, wt, eps, y);
            float[] got = NnOpsTest.dense(y);
            for (int e = 0; e < got.length; e++)
                if (!(Math.abs(got[e] - want[e]) <= 1e-5 * Math.abs(want[e])))
                    fail("rmsNorm rows=" + rows + " dim=" + dim + " mode=" + mode + ": [" + e + "] = " + got[e]
                            + ", reference " + want[e]);
            if (!inPlace) assertArrayEquals(sum, NnOpsTest.dense(x), "rmsNorm: x afterwards");
        }
    }

    @Property
    void swigluAgreesWithTheReference(@ForAll("mn") int rows, @ForAll("dim") int n, @ForAll @IntRange(max = 2) int layout,
                                      @ForAll int isaPick, @ForAll long seed) {
        count(getClass());
        Isthmus.setIsaCap(isa(isaPick));
        Random r = new Random(seed);
        float[] g = nonZero(r, rows * n, 4), u = nonZero(r, rows * n, 1);
        try (Arena arena = Arena.ofConfined()) {
            Tensor gate = strided(arena, g, rows, n, n + layout);
            Tensor up = strided(arena, u, rows, n, n + 2);
            Tensor out = layout == 2 ? gate : layout == 1 ? up : strided(arena, new float[rows * n], rows, n, n + 1);
            Ops.swiglu(gate, up, out);
            float[] got = NnOpsTest.dense(out);
            for (int e = 0; e < got.length; e++) {
                double want = g[e] / (1 + Math.exp(-g[e])) * u[e];
                if (!(Math.abs(got[e] - want) <= 2e-6 * Math.abs(want) + 1.1e-36 * Math.abs(u[e])))
                    fail("swiglu rows=" + rows + " n=" + n + " layout=" + layout + ": [" + e + "] = " + got[e] + ", want " + want);
            }
        }
    }

    // ------------------------------------------------------------------ refusals

    private static final boolean[] NONE_NULL = {false, false, false, false};

    @Property
    void badTensorsAreRefusedByEveryOp(@ForAll("mn") int m, @ForAll("mn") int n, @ForAll("k") int k,
                                       @ForAll int schemePick, @ForAll int pick, @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        QuantScheme ws = scheme(schemePick);
        try (Tensor w = Tensor.of(nonZero(r, n * k, 1), n, k);
             PackedWeights pw = PackedWeights.quantize(w, ws);
             Tensor x = Tensor.of(nonZero(r, m * k, 1), m, k);
             Tensor bias = Tensor.of(nonZero(r, n, 1), n);
             Tensor out = Tensor.allocate(DType.F32, m, n);
             Tensor a = Tensor.of(nonZeroInt8(r, m * k), m, k);
             Tensor c = Tensor.allocate(DType.I32, m, n);
             Tensor resid = Tensor.of(nonZero(r, m * k, 1), m, k);
             Tensor wn = Tensor.of(nonZero(r, k, 1), k);
             Tensor y = Tensor.allocate(DType.F32, m, k);
             Tensor up = Tensor.of(nonZero(r, m * k, 1), m, k)) {
            PropertySupport.refusesBadTensors(new String[] {"x", "bias", "out"}, new Tensor[] {x, bias, out},
                    new boolean[] {false, true, false}, true, pick, t -> Ops.matmul(t[0], pw, t[1], t[2]));
            PropertySupport.refusesBadTensors(new String[] {"x"}, new Tensor[] {x}, NONE_NULL, false, pick,
                    t -> Ops.matmul(t[0], pw).close());
            PropertySupport.refusesBadTensors(new String[] {"a", "out"}, new Tensor[] {a, c}, NONE_NULL, true, pick,
                    t -> Ops.matmulInt32(t[0], pw, t[1]));
            PropertySupport.refusesBadTensors(new String[] {"a"}, new Tensor[] {a}, NONE_NULL, false, pick,
                    t -> Ops.matmulInt32(t[0], pw).close());
            PropertySupport.refusesBadTensors(new String[] {"x", "residual", "weight", "y"},
                    new Tensor[] {x, resid, wn, y}, new boolean[] {false, true, false, false}, true, pick,
                    t -> Ops.rmsNorm(t[0], t[1], t[2], 1e-5f, t[3]));
            PropertySupport.refusesBadTensors(new String[] {"gate", "up", "out"}, new Tensor[] {x, up, y}, NONE_NULL,
                    true, pick, t -> Ops.swiglu(t[0], t[1], t[2]));
            try (QuantizedTensor aq = Quant.quantize(x, QuantScheme.int8PerRow())) {
                PropertySupport.refusesBadTensors(new String[] {"bias", "out"}, new Tensor[] {bias, out},
                        new boolean[] {true, false}, true, pick, t -> Ops.matmul(aq, pw, t[0], t[1]));
                refused(IllegalArgumentException.class, "a", () -> Ops.matmul((QuantizedTensor) null, pw, bias, out));
                refused(IllegalArgumentException.class, "a", () -> Ops.matmul((QuantizedTensor) null, pw));
                refused(IllegalArgumentException.class, "w", () -> Ops.matmul(aq, null, bias, out));
                refused(IllegalArgumentException.class, "w", () -> Ops.matmul(aq, (PackedWeights) null));
            }
            refused(IllegalArgumentException.class, "w", () -> Ops.matmul(x, null, bias, out));
            refused(IllegalArgumentException.class, "w", () -> Ops.matmul(x, (PackedWeights) null));
            refused(IllegalArgumentException.class, "w", () -> Ops.matmulInt32(a, null, c));
            refused(IllegalArgumentException.class, "w", () -> Ops.matmulInt32(a, (PackedWeights) null));
            // eps: not finite or <= 0
            float[] badEps = {0f, -1e-5f, Float.NaN, Float.POSITIVE_INFINITY, -Float.MIN_VALUE};
            float eps = badEps[Math.floorMod(pick, badEps.length)];
            refused(IllegalArgumentException.class, "eps", () -> Ops.rmsNorm(x, null, wn, eps, y));
            // read-only outputs
            Tensor ro = Tensor.wrap(out.segment().asReadOnly(), DType.F32, m, n);
            refused(IllegalArgumentException.class, "out", () -> Ops.matmul(x, pw, null, ro));
            // mismatched K
            try (Tensor x2 = Tensor.of(nonZero(r, m * (k + 1), 1), m, k + 1)) {
                refused(IllegalArgumentException.class, "x", () -> Ops.matmul(x2, pw).close());
            }
            // closed packed weights
            PackedWeights closedW = PackedWeights.quantize(w, ws);
            closedW.close();
            refused(IllegalStateException.class, "w", () -> Ops.matmul(x, closedW).close());
            refused(IllegalStateException.class, "w", () -> Ops.matmulInt32(a, closedW).close());
        }
    }

    // ------------------------------------------------------------------ Isthmus, Isa, DType

    @Property
    void runtimeSettingsAreValidated(@ForAll int threads, @ForAll int code) {
        count(getClass());
        if (threads < 1 || threads > 1024)
            refused(IllegalArgumentException.class, "threads", () -> Isthmus.setThreads(threads));
        if (code < 0 || code > 2) refused(IllegalArgumentException.class, "code", () -> Isa.of(code));
        else assertEquals(code, Isa.of(code).code());
        refused(IllegalArgumentException.class, "cap", () -> Isthmus.setIsaCap(null));
        Isa cap = Isa.values()[Math.floorMod(code, 3)];
        Isthmus.setIsaCap(cap);
        assertEquals(cap.compareTo(Isthmus.supportedIsa()) <= 0 ? cap : Isthmus.supportedIsa(), Isthmus.isa());
        int before = Isthmus.threads();
        int t = 1 + Math.floorMod(threads, 4);
        Isthmus.setThreads(t);
        assertEquals(t, Isthmus.threads());
        Isthmus.setThreads(before);
    }
}
