package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.attention.AttentionParams;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.KvCache;
import dev.isthmus.attention.KvConfig;
import dev.isthmus.attention.KvType;
import dev.isthmus.attention.Rope;
import dev.isthmus.attention.Sequence;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.speculative.Sampler;
import dev.isthmus.speculative.SamplingParams;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * What NaN and infinite inputs give through the Java API (the native rules are in isthmus.h and the README,
 * "NaN, infinities, saturation and denormals"; native/test/test_hygiene.c tests them per ISA variant): refusals
 * are {@link IllegalArgumentException}s naming the argument and the position, never an {@link IsthmusException}
 * or a crash; propagated values come back where the rule says, and nowhere else.
 */
class NumericsHygieneTest {
    static final float[] BAD = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};

    static float[] random(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (r.nextDouble() * 2 - 1);
        return x;
    }

    static IllegalArgumentException refused(Runnable op, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, op::run);
        for (String p : parts) assertTrue(e.getMessage().contains(p), "'" + p + "' missing from: " + e.getMessage());
        return e;
    }

    @Test
    void quantizeAndMatmulRefuseNonFiniteNamingThePosition() {
        Random r = new Random(71);
        for (float bad : BAD) {
            float[] x = random(r, 3 * 40);
            x[2 * 40 + 33] = bad;
            float[] w = random(r, 5 * 40);
            try (Tensor xt = Tensor.of(x, 3, 40); Tensor wt = Tensor.of(w, 5, 40);
                 PackedWeights pw = PackedWeights.quantize(wt, QuantScheme.int8PerRow())) {
                for (QuantScheme s : new QuantScheme[] {QuantScheme.int8PerTensor(), QuantScheme.int8PerRow(),
                        QuantScheme.int8PerGroup(32)})
                    refused(() -> Quant.quantize(xt, s).close(), "x F32[3, 40]", "x[2, 33]", "not finite");
                refused(() -> Ops.matmul(xt, pw).close(), "x F32[3, 40]", "x[2, 33]", "not finite");
            }
        }
    }

    @Test
    void rmsNormRowWithNonFiniteOrOverflowIsNaNOtherRowsUntouched() {
        Random r = new Random(72);
        int rows = 4, dim = 37;
        float[] x = random(r, rows * dim);
        x[5] = Float.NaN;                                        // row 0
        x[dim + 2] = Float.POSITIVE_INFINITY;                    // row 1: was 0s and one NaN before
        for (int i = 0; i < dim; i++) x[2 * dim + i] = 1e20f;    // row 2: the squares overflow (was all 0)
        float[] w = new float[dim];
        java.util.Arrays.fill(w, 1f);
        try (Tensor xt = Tensor.of(x, rows, dim); Tensor wt = Tensor.of(w, dim);
             Tensor y = Tensor.allocate(DType.F32, rows, dim)) {
            Ops.rmsNorm(xt, null, wt, 1e-5f, y);
            float[] out = y.toFloatArray();
            for (int row = 0; row < rows; row++)
                for (int i = 0; i < dim; i++) {
                    float v = out[row * dim + i];
                    if (row < 3) assertTrue(Float.isNaN(v), "row " + row + " [" + i + "] = " + v);
                    else assertTrue(Float.isFinite(v), "row 3 [" + i + "] = " + v);
                }
        }
    }

    @Test
    void swigluPropagatesElementWise() {
        float[] g = {Float.NaN, 1f, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, -100f, 2f};
        float[] u = {1f, Float.NaN, 1f, -2f, Float.POSITIVE_INFINITY, 3f};
        try (Tensor gt = Tensor.of(g, 1, 6); Tensor ut = Tensor.of(u, 1, 6); Tensor o = Tensor.allocate(DType.F32, 1, 6)) {
            Ops.swiglu(gt, ut, o);
            float[] out = o.toFloatArray();
            assertTrue(Float.isNaN(out[0]) && Float.isNaN(out[1]) && Float.isNaN(out[2]), java.util.Arrays.toString(out));
            assertEquals(Float.NEGATIVE_INFINITY, out[3]);
            assertTrue(Float.isNaN(out[4]), "silu(-100) is 0 in every variant: 0 * inf = NaN, got " + out[4]);
            assertTrue(Float.isFinite(out[5]));
        }
    }

    @Test
    void kvCacheRefusesNonFiniteForEveryTypeAndNothingIsWritten() {
        Random r = new Random(73);
        for (KvType type : KvType.values()) {
            KvConfig cfg = KvConfig.builder().layers(1).kvHeads(1).headDim(16).blockSize(4).type(type)
                    .numBlocks(4).maxSequences(1).maxSequenceLength(16).build();
            try (KvCache cache = KvCache.create(cfg); Sequence s = cache.newSequence()) {
                s.extend(2);
                float[] ok = random(r, 32);
                try (Tensor kt = Tensor.of(ok, 2, 16); Tensor vt = Tensor.of(ok, 2, 16);
                     Tensor back = Tensor.allocate(DType.F32, 2, 16); Tensor back2 = Tensor.allocate(DType.F32, 2, 16)) {
                    cache.write(0, Batch.of(s, 2), kt, vt, Rope.NONE);
                    cache.read(0, s, 0, 2, back, back2);
                    float[] before = back.toFloatArray();
                    for (float bad : BAD) {
                        float[] k = ok.clone();
                        k[16 + 9] = bad;
                        try (Tensor kb = Tensor.of(k, 2, 16)) {
                            refused(() -> cache.write(0, Batch.of(s, 2), kb, vt, Rope.NONE), "k F32[2, 16]", "k[1, 9]");
                            refused(() -> cache.write(0, Batch.of(s, 2), vt, kb, Rope.NONE), "v[1, 9]");
                        }
                    }
                    if (type == KvType.F16 || type == KvType.BF16) {
                        float[] k = ok.clone();
                        k[3] = type == KvType.F16 ? 70000f : Float.MAX_VALUE;
                        try (Tensor kb = Tensor.of(k, 2, 16)) {
                            refused(() -> cache.write(0, Batch.of(s, 2), kb, vt, Rope.NONE), "k[0, 3]", "rounds to inf");
                        }
                    }
                    cache.read(0, s, 0, 2, back, back2);
                    float[] after = back.toFloatArray();
                    for (int i = 0; i < before.length; i++)
                        assertEquals(Float.floatToIntBits(before[i]), Float.floatToIntBits(after[i]), type + ": refused write changed [" + i + "]");
                }
            }
        }
    }

    @Test
    void attentionRefusesNonFiniteQueryNamingRowHeadAndDimension() {
        Random r = new Random(74);
        KvConfig cfg = KvConfig.builder().layers(1).kvHeads(1).headDim(16).blockSize(4).type(KvType.F32)
                .numBlocks(4).maxSequences(1).maxSequenceLength(16).build();
        try (KvCache cache = KvCache.create(cfg); Sequence s = cache.newSequence()) {
            s.extend(3);
            try (Tensor kt = Tensor.of(random(r, 48), 3, 16); Tensor vt = Tensor.of(random(r, 48), 3, 16)) {
                cache.write(0, Batch.of(s, 3), kt, vt, Rope.NONE);
            }
            for (float bad : BAD) {
                float[] q = random(r, 2 * 32);
                q[32 + 16 + 5] = bad; // row 1, head 1, dimension 5
                try (Tensor qt = Tensor.of(q, 2, 32); Tensor out = Tensor.allocate(DType.F32, 2, 32)) {
                    refused(() -> cache.attention(0, Batch.of(s, 2), qt, out, AttentionParams.of(2, 16)),
                            "q F32[2, 32]", "q[1, 21]", "head 1, dimension 5");
                }
            }
        }
    }

    @Test
    void samplerRefusesNaNAndPlusInfinityButNeverPicksMinusInfinity() {
        float[] logits = {0.5f, Float.NEGATIVE_INFINITY, 1.5f, Float.NEGATIVE_INFINITY};
        try (Tensor l = Tensor.of(logits, 1, 4)) {
            for (int i = 0; i < 50; i++) {
                int t = Sampler.sample(l, SamplingParams.temperature(1f), 9, new long[] {i})[0];
                assertTrue(t == 0 || t == 2, "picked a -inf token " + t);
            }
        }
        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY}) {
            float[] x = logits.clone();
            x[3] = bad;
            try (Tensor l = Tensor.of(x, 1, 4)) {
                refused(() -> Sampler.sample(l, SamplingParams.greedy(), 9, new long[] {1}), "logits F32[1, 4]", "[0, 3]");
            }
        }
    }
}
