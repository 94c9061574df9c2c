package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * {@link Ops#rmsNorm} and {@link Ops#swiglu} against double references for every ISA variant: dims 1, 7,
 * 16, 17, 4096, 5000, rows 1 / 3 / 40 (40 x 4096 runs on several threads), padded row strides, the residual
 * form (x written back exactly as the f32 sum), in place, and gate/up as the two column halves of one
 * fused buffer. Tolerances as the C tests state them: rmsNorm 1e-5 relative (f32 sums of squares over at
 * most n/8 terms per partial sum), swiglu 2e-6 relative (exp within 2 ulp and four roundings) plus
 * 1.1e-36 |up| where the SIMD exp flushes to 0 below -87.34. Bad inputs fail naming the argument.
 */
class NnOpsTest {
    static final int[] DIMS = {1, 7, 16, 17, 4096, 5000};
    static final int[] ROWS = {1, 3, 40};

    @AfterEach
    void resetIsa() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    static Tensor strided(Arena arena, float[] data, int rows, int cols, int ld) {
        MemorySegment seg = arena.allocate((long) ((rows - 1) * ld + cols) * 4, 64);
        for (int r = 0; r < rows; r++)
            MemorySegment.copy(data, r * cols, seg, ValueLayout.JAVA_FLOAT, (long) r * ld * 4, cols);
        return Tensor.wrap(seg, DType.F32, new long[] {rows, cols}, new long[] {ld, 1});
    }

    static float[] dense(Tensor t) {
        int rows = (int) t.dim(0), cols = (int) t.dim(1);
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) out[r * cols + c] = t.getFloat(r, c);
        return out;
    }

    static float[] random(Random r, int n, double lo, double hi) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (lo + (hi - lo) * r.nextDouble());
        return a;
    }

    @Test
    void rmsNormMatchesTheReference() {
        Random rnd = new Random(1);
        for (int dim : DIMS)
            for (int rows : ROWS)
                for (int mode = 0; mode < 3; mode++) { // 0: plain, 1: residual, 2: residual in place
                    boolean res = mode > 0, inPlace = mode == 2;
                    float[] x0 = random(rnd, rows * dim, -3, 3), rr = random(rnd, rows * dim, -1, 1);
                    float[] w = random(rnd, dim, 0.5, 1.5);
                    float eps = 1e-5f;
                    double[] want = new double[rows * dim];
                    float[] sum = new float[rows * dim];
                    for (int r = 0; r < rows; r++) {
                        double ss = 0;
                        for (int i = 0; i < dim; i++) {
                            sum[r * dim + i] = res ? x0[r * dim + i] + rr[r * dim + i] : x0[r * dim + i];
                            ss += (double) sum[r * dim + i] * sum[r * dim + i];
                        }
                        double inv = 1 / Math.sqrt(ss / dim + eps);
                        for (int i = 0; i < dim; i++) want[r * dim + i] = sum[r * dim + i] * inv * w[i];
                    }
                    for (Isa isa : TestSupport.isas()) {
                        Isthmus.setIsaCap(isa);
                        try (Arena arena = Arena.ofConfined()) {
                            Tensor x = strided(arena, x0, rows, dim, dim + 3);
                            Tensor residual = res ? strided(arena, rr, rows, dim, dim + 1) : null;
                            Tensor wt = strided(arena, w, 1, dim, dim);
                            Tensor y = inPlace ? x : strided(arena, new float[rows * dim], rows, dim, dim + 5);
                            Ops.rmsNorm(x, residual, wt, eps, y);
                            float[] got = dense(y);
                            for (int e = 0; e < got.length; e++)
                                if (!(Math.abs(got[e] - want[e]) <= 1e-5 * Math.abs(want[e])))
                                    fail(isa + " rmsNorm rows=" + rows + " dim=" + dim + " mode=" + mode + ": [" + e + "] = "
                                            + got[e] + ", reference " + want[e]);
                            if (!inPlace) assertArrayEquals(sum, dense(x), isa + " rmsNorm: x afterwards");
                        }
                    }
                }
    }

    @Test
    void swigluMatchesTheReference() {
        Random rnd = new Random(2);
        for (int n : DIMS)
            for (int rows : ROWS)
                for (int layout = 0; layout < 3; layout++) { // 0: separate, 1: fused halves, 2: fused, out = gate
                    float[] g = random(rnd, rows * n, -12, 12), u = random(rnd, rows * n, -2, 2);
                    if (rows * n > 3) {
                        g[0] = -100;
                        g[1] = 100;
                        g[2] = 0;
                    }
                    double[] want = new double[rows * n];
                    for (int e = 0; e < want.length; e++) want[e] = g[e] / (1 + Math.exp(-g[e])) * u[e];
                    for (Isa isa : TestSupport.isas()) {
                        Isthmus.setIsaCap(isa);
                        try (Arena arena = Arena.ofConfined()) {
                            Tensor gate, up, out;
                            if (layout == 0) {
                                gate = strided(arena, g, rows, n, n + 1);
                                up = strided(arena, u, rows, n, n + 2);
                                out = strided(arena, new float[rows * n], rows, n, n);
                            } else {
                                int ld = 2 * n + 1;
                                MemorySegment h = arena.allocate((long) rows * ld * 4, 64);
                                for (int r = 0; r < rows; r++) {
                                    MemorySegment.copy(g, r * n, h, ValueLayout.JAVA_FLOAT, (long) r * ld * 4, n);
                                    MemorySegment.copy(u, r * n, h, ValueLayout.JAVA_FLOAT, ((long) r * ld + n) * 4, n);
                                }
                                long[] shape = {rows, n}, strides = {ld, 1};
                                gate = Tensor.wrap(h.asSlice(0, ((long) (rows - 1) * ld + n) * 4), DType.F32, shape, strides);
                                up = Tensor.wrap(h.asSlice((long) n * 4, ((long) (rows - 1) * ld + n) * 4), DType.F32, shape,
                                        strides);
                                out = layout == 2 ? gate : strided(arena, new float[rows * n], rows, n, n + 3);
                            }
                            Ops.swiglu(gate, up, out);
                            float[] got = dense(out);
                            for (int e = 0; e < got.length; e++)
                                if (!(Math.abs(got[e] - want[e]) <= 2e-6 * Math.abs(want[e]) + 1.1e-36 * Math.abs(u[e])))
                                    fail(isa + " swiglu rows=" + rows + " n=" + n + " layout=" + layout + ": [" + e + "] = "
                                            + got[e] + ", reference " + want[e]);
                            if (layout == 2) assertArrayEquals(u, dense(up), "swiglu in place changed up");
                        }
                    }
                }
    }

    @Test
    void badInputsNameTheArgument() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.allocate(arena, DType.F32, 4, 32), y = Tensor.allocate(arena, DType.F32, 4, 32);
            Tensor w = Tensor.allocate(arena, DType.F32, 32), r = Tensor.allocate(arena, DType.F32, 4, 32);
            Ops.rmsNorm(x, r, w, 1e-5f, y);
            expect("x", () -> Ops.rmsNorm(null, null, w, 1e-5f, y));
            expect("x", () -> Ops.rmsNorm(Tensor.allocate(arena, DType.I32, 4, 32), null, w, 1e-5f, y));
            expect("weight", () -> Ops.rmsNorm(x, null, Tensor.allocate(arena, DType.F32, 31), 1e-5f, y));
            expect("eps", () -> Ops.rmsNorm(x, null, w, 0f, y));
            expect("eps", () -> Ops.rmsNorm(x, null, w, Float.NaN, y));
            expect("y", () -> Ops.rmsNorm(x, null, w, 1e-5f, Tensor.allocate(arena, DType.F32, 3, 32)));
            expect("residual", () -> Ops.rmsNorm(x, Tensor.allocate(arena, DType.F32, 4, 31), w, 1e-5f, y));
            expect("overlaps", () -> Ops.rmsNorm(x, x, w, 1e-5f, y));
            expect("overlaps", () -> Ops.rmsNorm(x, r, w, 1e-5f, r));
            Tensor x3 = x.rows(0, 3), shiftedY = Tensor.wrap(x.segment().asSlice(8 * 4), DType.F32, new long[] {3, 32},
                    new long[] {32, 1});
            expect("overlaps", () -> Ops.rmsNorm(x3, null, w, 1e-5f, shiftedY));
            Tensor wy = Tensor.wrap(y.segment().asSlice(0, 32 * 4), DType.F32, 32);
            expect("weight", () -> Ops.rmsNorm(x, null, wy, 1e-5f, y));
            Ops.rmsNorm(x, null, w, 1e-5f, x); // in place
            Tensor closed = Tensor.allocate(DType.F32, 4, 32);
            closed.close();
            assertThrows(IllegalStateException.class, () -> Ops.rmsNorm(closed, null, w, 1e-5f, y));

            Tensor h = Tensor.allocate(arena, DType.F32, 4, 64);
            long[] shape = {4, 32}, strides = {64, 1};
            Tensor gate = Tensor.wrap(h.segment().asSlice(0, (3 * 64 + 32) * 4), DType.F32, shape, strides);
            Tensor up = Tensor.wrap(h.segment().asSlice(32 * 4, (3 * 64 + 32) * 4), DType.F32, shape, strides);
            Ops.swiglu(gate, up, y);
            Ops.swiglu(gate, up, gate);
            Ops.swiglu(gate, up, up);
            expect("gate", () -> Ops.swiglu(null, up, y));
            expect("up", () -> Ops.swiglu(gate, Tensor.allocate(arena, DType.F32, 4, 31), y));
            expect("out", () -> Ops.swiglu(gate, up, Tensor.allocate(arena, DType.F32, 4, 33)));
            expect("out", () -> Ops.swiglu(gate, up, Tensor.allocate(arena, DType.I8, 4, 32)));
            Tensor shifted = Tensor.wrap(h.segment().asSlice(16 * 4, (3 * 64 + 32) * 4), DType.F32, shape, strides);
            expect("overlaps", () -> Ops.swiglu(gate, up, shifted));
            Tensor heap = Tensor.wrap(MemorySegment.ofArray(new float[128]), DType.F32, 4, 32);
            expect("heap", () -> Ops.swiglu(gate, up, heap));
        }
    }

    static void expect(String inMessage, Runnable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().contains(inMessage), "message '" + e.getMessage() + "' lacks '" + inMessage + "'");
    }
}
