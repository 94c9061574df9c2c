package dev.isthmus.bench.demo;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.Sequence;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** LlamaModel: a batch forward equals token-by-token forwards; the all-layer skip draft is the target. */
class DemoModelTest {
    /** A small model: 3 layers of width 128, GQA 4/2 x 32, vocab 1000. */
    static final LlamaConfig CONFIG = new LlamaConfig("test", 128, 3, 4, 2, 32, 352, 1000, 10_000, 128,
            dev.isthmus.attention.KvType.F16, 7);
    static LlamaWeights weights;

    @BeforeAll
    static void generate() {
        weights = LlamaWeights.generate(CONFIG);
    }

    @AfterAll
    static void free() {
        weights.close();
    }

    static final int[] PROMPT = {5, 17, 999, 0, 42, 42, 311, 7, 123};

    /** Logits [n, V] of feeding tokens[from, to) to seq in one forward (all rows). */
    static float[] forward(LlamaModel m, Sequence seq, int[] tokens, int from, int to) {
        int n = to - from;
        Batch b = Batch.of(seq, n);
        m.cache().extend(b);
        try (Tensor logits = Tensor.allocate(DType.F32, n, CONFIG.vocab())) {
            m.forward(b, java.util.Arrays.copyOfRange(tokens, from, to), b.positions(), null, null, logits);
            return logits.toFloatArray();
        }
    }

    @Test
    void batchForwardEqualsTokenByToken() {
        try (LlamaModel m = LlamaModel.target(weights, 4);
             Sequence all = m.cache().newSequence(); Sequence one = m.cache().newSequence()) {
            float[] batch = forward(m, all, PROMPT, 0, PROMPT.length);
            int v = CONFIG.vocab();
            double maxAbs = 0, maxDiff = 0;
            for (int i = 0; i < PROMPT.length; i++) {
                float[] step = forward(m, one, PROMPT, i, i + 1);
                int argBatch = 0, argStep = 0;
                for (int j = 0; j < v; j++) {
                    float a = batch[i * v + j], b = step[j];
                    maxAbs = Math.max(maxAbs, Math.abs(b));
                    maxDiff = Math.max(maxDiff, Math.abs(a - b));
                    if (a > batch[i * v + argBatch]) argBatch = j;
                    if (b > step[argStep]) argStep = j;
                }
                assertEquals(argStep, argBatch, "argmax of token " + i);
            }
            // Tolerance: attention over a batch and over one row may sum in a different order (f32 ulps),
            // and the next GEMM quantizes its input per row to int8, where such a difference can move one
            // element by one step (1/127 of the row max): logits then differ by ~1e-3 of their range.
            assertTrue(maxDiff <= 1e-2 * maxAbs, "max |batch - token by token| " + maxDiff + " > 1e-2 * " + maxAbs);
        }
    }

    @Test
    void skipDraftWithAllLayersIsTheTarget() {
        int[] all = Drafts.pickLayers(CONFIG.layers(), CONFIG.layers());
        assertArrayEquals(new int[] {0, 1, 2}, all);
        try (LlamaModel t = LlamaModel.target(weights, 2); LlamaModel d = Drafts.layerSkip(weights, all, 2);
             Sequence st = t.cache().newSequence(); Sequence sd = d.cache().newSequence()) {
            assertArrayEquals(forward(t, st, PROMPT, 0, 5), forward(d, sd, PROMPT, 0, 5));
            assertArrayEquals(forward(t, st, PROMPT, 5, 6), forward(d, sd, PROMPT, 5, 6));
            assertArrayEquals(forward(t, st, PROMPT, 6, 9), forward(d, sd, PROMPT, 6, 9));
        }
    }

    @Test
    void logitRowsSelectRows() {
        try (LlamaModel m = LlamaModel.target(weights, 2);
             Sequence a = m.cache().newSequence(); Sequence b = m.cache().newSequence()) {
            float[] full = forward(m, a, PROMPT, 0, 6);
            Batch batch = Batch.of(b, 6);
            m.cache().extend(batch);
            int v = CONFIG.vocab();
            try (Tensor logits = Tensor.allocate(DType.F32, 2, v)) {
                m.forward(batch, java.util.Arrays.copyOf(PROMPT, 6), batch.positions(), null, new int[] {1, 5}, logits);
                float[] got = logits.toFloatArray();
                assertArrayEquals(java.util.Arrays.copyOfRange(full, v, 2 * v), java.util.Arrays.copyOfRange(got, 0, v));
                assertArrayEquals(java.util.Arrays.copyOfRange(full, 5 * v, 6 * v), java.util.Arrays.copyOfRange(got, v, 2 * v));
            }
        }
    }
}
