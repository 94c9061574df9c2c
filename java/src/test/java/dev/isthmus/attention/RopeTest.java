package dev.isthmus.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.DType;
import dev.isthmus.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import org.junit.jupiter.api.Test;

/**
 * RoPE: {@link Rope#apply} against a double-precision rotation (both styles, whole and partial heads,
 * 2-D, 3-D and strided tensors), and the rotation fused into {@link KvCache#write} against
 * {@code Rope.apply} of the same K, bit for bit.
 */
class RopeTest {
    static final long SEED = 77;

    /** Row-major [tokens, heads * headDim] rotated in double (theta taken as the float native code gets). */
    static double[] reference(float[] x, int tokens, int heads, int headDim, long[] pos, Rope rope) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) y[i] = x[i];
        if (rope.style() == Rope.Style.NONE) return y;
        int rot = rope.rotaryDim() == 0 ? headDim : rope.rotaryDim();
        double theta = (float) rope.theta();
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++) {
                int base = (t * heads + h) * headDim;
                for (int i = 0; i < rot / 2; i++) {
                    double angle = pos[t] * Math.pow(theta, -2.0 * i / rot);
                    int a = rope.style() == Rope.Style.INTERLEAVED ? base + 2 * i : base + i;
                    int b = rope.style() == Rope.Style.INTERLEAVED ? base + 2 * i + 1 : base + i + rot / 2;
                    double c = Math.cos(angle), s = Math.sin(angle);
                    y[a] = x[a] * c - x[b] * s;
                    y[b] = x[b] * c + x[a] * s;
                }
            }
        return y;
    }

    static long[] positions(Random r, int tokens) {
        long[] p = new long[tokens];
        for (int t = 0; t < tokens; t++) p[t] = switch (t % 4) {
            case 0 -> t;                      // small, including 0
            case 1 -> r.nextInt(4096);
            case 2 -> 100_000 + r.nextInt(1000);
            default -> (1 << 24) - 1 - t;     // the largest a cache holds
        };
        return p;
    }

    /**
     * cos and sin are rounded to f32 (6e-8 relative each) and each output is one fma of a rounded product:
     * a few f32 ulps of the pair's magnitude. 1e-6 * (|x0| + |x1|) bounds that; a wrong pair, angle or
     * position is off by O(|x|).
     */
    @Test
    void applyMatchesDoubleRotation() {
        int config = 0;
        for (Rope.Style style : new Rope.Style[] {Rope.Style.INTERLEAVED, Rope.Style.HALF})
            for (int headDim : new int[] {64, 80, 128})
                for (int rotary : new int[] {0, 32, 16})
                    for (int layout = 0; layout < 3; layout++) {
                        long seed = SEED + config++;
                        Random r = new Random(seed);
                        int tokens = 1 + r.nextInt(13), heads = 1 + r.nextInt(4);
                        Rope rope = (style == Rope.Style.HALF ? Rope.half(500_000) : Rope.interleaved(10_000))
                                .withRotaryDim(rotary);
                        float[] x = KvTestSupport.gaussian(r, tokens * heads * headDim, 1);
                        long[] pos = positions(r, tokens);
                        float[] got = applied(x, tokens, heads, headDim, pos, rope, layout);
                        double[] want = reference(x, tokens, heads, headDim, pos, rope);
                        String where = "seed " + seed + ", " + rope + ", headDim " + headDim + ", heads " + heads
                                + ", layout " + layout;
                        check(x, got, want, headDim, rope, where);
                    }
    }

    /** Rope.apply on a 2-D, 3-D or row-strided tensor; returns the row-major result. */
    static float[] applied(float[] x, int tokens, int heads, int headDim, long[] pos, Rope rope, int layout) {
        int cols = heads * headDim;
        switch (layout) {
            case 0 -> {
                try (Tensor t = Tensor.of(x, tokens, cols)) {
                    Rope.apply(t, heads, pos, rope);
                    return t.toFloatArray();
                }
            }
            case 1 -> {
                try (Tensor t = Tensor.of(x, tokens, heads, headDim)) {
                    Rope.apply(t, heads, pos, rope);
                    return t.toFloatArray();
                }
            }
            default -> {
                long ld = cols + 48; // a Q view inside a fused QKV row
                try (Tensor buf = Tensor.allocate(DType.F32, tokens, ld)) {
                    MemorySegment s = buf.segment();
                    for (long i = 0; i < tokens * ld; i++) s.setAtIndex(ValueLayout.JAVA_FLOAT, i, -7f);
                    for (int t = 0; t < tokens; t++)
                        MemorySegment.copy(x, t * cols, s, ValueLayout.JAVA_FLOAT, t * ld * 4, cols);
                    Tensor view = Tensor.wrap(s, DType.F32, new long[] {tokens, cols}, new long[] {ld, 1});
                    Rope.apply(view, heads, pos, rope);
                    for (int t = 0; t < tokens; t++)
                        for (long j = cols; j < ld; j++)
                            if (s.getAtIndex(ValueLayout.JAVA_FLOAT, t * ld + j) != -7f)
                                fail("Rope.apply wrote column " + j + " of row " + t + ", outside the view");
                    return view.toFloatArray();
                }
            }
        }
    }

    static void check(float[] x, float[] got, double[] want, int headDim, Rope rope, String where) {
        int rot = rope.rotaryDim() == 0 ? headDim : rope.rotaryDim();
        for (int i = 0; i < x.length; i++) {
            int d = i % headDim;
            if (d >= rot) {
                if (Float.floatToIntBits(got[i]) != Float.floatToIntBits(x[i]))
                    fail(where + ": dimension " + d + " >= rotaryDim " + rot + " changed from " + x[i] + " to " + got[i]);
                continue;
            }
            int partner = rope.style() == Rope.Style.INTERLEAVED ? (d % 2 == 0 ? i + 1 : i - 1)
                    : (d < rot / 2 ? i + rot / 2 : i - rot / 2);
            double allowed = 1e-6 * (Math.abs(x[i]) + Math.abs(x[partner])) + Float.MIN_NORMAL;
            if (!(Math.abs(got[i] - want[i]) <= allowed))
                fail(where + ": element " + i + " (dimension " + d + ") = " + got[i] + ", reference " + want[i]
                        + ", allowed error " + allowed);
        }
    }

    @Test
    void noneLeavesTheTensorAsItIs() {
        float[] x = KvTestSupport.gaussian(new Random(SEED), 2 * 64, 1);
        try (Tensor t = Tensor.of(x, 2, 64)) {
            Rope.apply(t, 1, new long[] {5, 9}, Rope.NONE);
            assertArrayEquals(x, t.toFloatArray());
        }
    }

    /**
     * K rotated by the write is bit for bit Rope.apply of K (then stored with the cache type's rounding);
     * V is never rotated.
     */
    @Test
    void fusedWriteEqualsApplyThenWrite() {
        int config = 0;
        for (KvType type : KvType.values())
            for (Rope rope : new Rope[] {Rope.interleaved(10_000), Rope.half(500_000), Rope.half(10_000).withRotaryDim(32),
                    Rope.interleaved(1e6).withRotaryDim(16)}) {
                long seed = SEED + 1000 + config++;
                Random r = new Random(seed);
                int kvHeads = 2, headDim = 64, cols = kvHeads * headDim;
                KvConfig cfg = KvConfig.builder().layers(1).kvHeads(kvHeads).headDim(headDim).blockSize(8).type(type)
                        .numBlocks(64).maxSequences(3).maxSequenceLength(200).build();
                try (KvCache cache = KvCache.create(cfg)) {
                    Sequence a = cache.newSequence(), b = cache.newSequence();
                    a.extend(37);
                    int[] lens = {37 + 5, 3};
                    Batch batch = Batch.builder().add(a, 5).add(b, 3).build();
                    cache.extend(batch);
                    long[] pos = batch.positions();
                    assertArrayEquals(new long[] {37, 38, 39, 40, 41, 0, 1, 2}, pos, "positions of the batch's tokens");
                    int t = (int) batch.tokens();
                    float[] k = KvTestSupport.gaussian(r, t * cols, 2), v = KvTestSupport.gaussian(r, t * cols, 2);
                    try (Tensor kt = Tensor.of(k, t, cols); Tensor vt = Tensor.of(v, t, cols);
                         Tensor kr = Tensor.of(k, t, kvHeads, headDim)) {
                        cache.write(0, batch, kt, vt, rope);
                        assertArrayEquals(k, kt.toFloatArray(), "write must not change its input");
                        Rope.apply(kr, kvHeads, pos, rope);
                        float[] rotated = kr.toFloatArray();
                        float[] wantK = KvTestSupport.stored(type, rotated, kvHeads, headDim);
                        float[] wantV = KvTestSupport.stored(type, v, kvHeads, headDim);
                        int row = 0;
                        Sequence[] seqs = {a, b};
                        for (int e = 0; e < 2; e++) {
                            int n = batch.qLen(e);
                            float[][] back = KvTestSupport.readBack(cache, 0, seqs[e], lens[e] - n, n);
                            for (int j = 0; j < n * cols; j++) {
                                String where = "seed " + seed + ", " + type + ", " + rope + ", token " + (row + j / cols)
                                        + ", element " + j % cols;
                                if (Float.floatToIntBits(back[0][j]) != Float.floatToIntBits(wantK[row * cols + j]))
                                    fail(where + ": fused K " + back[0][j] + " != stored Rope.apply(K) "
                                            + wantK[row * cols + j]);
                                if (Float.floatToIntBits(back[1][j]) != Float.floatToIntBits(wantV[row * cols + j]))
                                    fail(where + ": V " + back[1][j] + " != stored V " + wantV[row * cols + j]);
                            }
                            row += n;
                        }
                    }
                }
            }
    }
}
