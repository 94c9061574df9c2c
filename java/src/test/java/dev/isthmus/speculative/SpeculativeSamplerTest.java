package dev.isthmus.speculative;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.DType;
import dev.isthmus.Tensor;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

/** isthmus_sample and isthmus_philox_uniform through {@link Sampler}, against the Java double references. */
class SpeculativeSamplerTest {

    @Test
    void philoxMatchesTheReferenceAndKnownAnswers() {
        // Random123 known-answer vectors for philox4x32-10: counter, key -> output
        assertArrayEquals(new int[] {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                SpecReference.philox(new int[] {0, 0, 0, 0}, 0, 0));
        assertArrayEquals(new int[] {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                SpecReference.philox(new int[] {-1, -1, -1, -1}, -1, -1));
        assertArrayEquals(new int[] {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
                SpecReference.philox(new int[] {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, 0xa4093822,
                        0x299f31d0));
        SplittableRandom r = new SplittableRandom(1);
        for (int i = 0; i < 2000; i++) {
            long seed = i < 10 ? i : r.nextLong(), stream = i % 3 == 0 ? i : r.nextLong();
            int draw = i % 5 == 0 ? -1 - i : r.nextInt(1000);
            double u = Sampler.uniform(seed, stream, draw);
            assertTrue(u >= 0 && u < 1);
            assertEquals(SpecReference.philoxUniform(seed, stream, draw), u, 0.0,
                    "seed " + seed + " stream " + stream + " draw " + draw);
        }
    }

    static float[] randomLogits(SplittableRandom r, int rows, int vocab, double scale) {
        float[] x = new float[rows * vocab];
        for (int i = 0; i < x.length; i++) x[i] = (float) (SpecTestModel.gaussian(r) * scale);
        return x;
    }

    static final SamplingParams[] PARAMS = {
            SamplingParams.temperature(1f),
            SamplingParams.temperature(0.7f),
            SamplingParams.temperature(1.3f).withTopK(5),
            SamplingParams.temperature(1f).withTopK(1),
            SamplingParams.temperature(0.9f).withTopP(0.8f),
            SamplingParams.temperature(1f).withTopP(0.3f),
            SamplingParams.temperature(1f).withMinP(0.1f),
            SamplingParams.temperature(0.8f).withTopK(20).withTopP(0.9f).withMinP(0.05f),
            SamplingParams.temperature(1f).withRepetitionPenalty(1.5f),
            SamplingParams.temperature(0.6f).withRepetitionPenalty(0.7f).withTopP(0.95f),
            SamplingParams.greedy(),
            SamplingParams.greedy().withRepetitionPenalty(2f),
    };

    @Test
    void distributionsAndTokensMatchTheDoubleReference() {
        SplittableRandom r = new SplittableRandom(2);
        for (int vocab : new int[] {1, 2, 7, 50, 257, 3001}) {
            int rows = 40;
            float[] logits = randomLogits(r, rows, vocab, 2.0);
            if (vocab > 2) logits[3 * vocab + 1] = Float.NEGATIVE_INFINITY; // allowed: never chosen
            int[][] history = new int[rows][];
            for (int i = 0; i < rows; i++) {
                history[i] = new int[i % 4 == 0 ? 0 : 1 + r.nextInt(6)];
                for (int j = 0; j < history[i].length; j++) history[i][j] = r.nextInt(vocab);
            }
            long[] streams = new long[rows];
            for (int i = 0; i < rows; i++) streams[i] = r.nextLong();
            for (SamplingParams p : PARAMS) {
                int[] tokens;
                float[] probs;
                try (Tensor l = Tensor.of(logits, rows, vocab); Tensor out = Tensor.allocate(DType.F32, rows, vocab)) {
                    tokens = Sampler.sample(l, new SamplingParams[] {p}, 99, streams, history, out);
                    probs = out.toFloatArray();
                }
                int checked = 0;
                for (int i = 0; i < rows; i++) {
                    float[] row = java.util.Arrays.copyOfRange(logits, i * vocab, (i + 1) * vocab);
                    double[] want = SpecReference.distribution(row, p, history[i]);
                    if (borderline(row, p, history[i])) continue;
                    checked++;
                    for (int v = 0; v < vocab; v++) {
                        assertEquals(want[v] > 0, probs[i * vocab + v] > 0, p + " vocab " + vocab + " row " + i
                                + " token " + v + ": kept set differs (want " + want[v] + ", got " + probs[i * vocab + v]
                                + ")");
                        assertEquals(want[v], probs[i * vocab + v], 2e-6 + 1e-5 * want[v], p + " row " + i + " token " + v);
                    }
                    double u = SpecReference.philoxUniform(99, streams[i], 0);
                    int t = SpecReference.inverseCdf(want, u, 1e-6);
                    if (t >= 0) assertEquals(t, tokens[i], p + " row " + i + ": the inverse CDF of draw 0");
                    else assertTrue(want[tokens[i]] > 0);
                }
                assertTrue(checked >= rows / 2, p + ": too few rows away from a filter boundary: " + checked);
            }
        }
    }

    /** True when float rounding could put a token on either side of a top-p or min-p cut. */
    static boolean borderline(float[] row, SamplingParams p, int[] history) {
        if (p.isGreedy()) return false;
        float dp = 4e-6f, dm = 1e-5f; // beyond the float rounding of the kernel's sums
        SamplingParams wider = new SamplingParams(p.temperature(), p.topK(), Math.min(1f, p.topP() + dp),
                Math.max(0f, p.minP() - dm), p.repetitionPenalty());
        SamplingParams narrower = new SamplingParams(p.temperature(), p.topK(), p.topP() < 1 ? p.topP() - dp : 1f,
                p.minP() > 0 ? p.minP() + dm : 0f, p.repetitionPenalty());
        double[] a = SpecReference.distribution(row, wider, history), b = SpecReference.distribution(row, narrower, history);
        for (int v = 0; v < row.length; v++) if ((a[v] > 0) != (b[v] > 0)) return true;
        return false;
    }

    @Test
    void tiesAndGreedy() {
        float[] row = {1f, 3f, 3f, 2f, 3f, -1f};
        try (Tensor l = Tensor.of(row, 1, 6); Tensor out = Tensor.allocate(DType.F32, 1, 6)) {
            assertEquals(1, Sampler.sample(l, SamplingParams.greedy(), 5, new long[] {0})[0], "ties go to the lowest id");
            // top-k = 1 keeps every token tied with the largest
            Sampler.sample(l, new SamplingParams[] {SamplingParams.temperature(1f).withTopK(1)}, 5, new long[] {0}, null,
                    out);
            float[] p = out.toFloatArray();
            for (int v = 0; v < 6; v++) assertEquals(v == 1 || v == 2 || v == 4 ? 1.0 / 3 : 0, p[v], 1e-6, "token " + v);
        }
    }

    @Test
    void reproducibleAndIndependentOfTheBatch() {
        SplittableRandom r = new SplittableRandom(3);
        int rows = 64, vocab = 100;
        float[] logits = randomLogits(r, rows, vocab, 1.5);
        long[] streams = new long[rows];
        for (int i = 0; i < rows; i++) streams[i] = (long) i << 32 | 7;
        SamplingParams p = SamplingParams.temperature(0.9f).withTopP(0.9f);
        int[] all, again;
        try (Tensor l = Tensor.of(logits, rows, vocab)) {
            all = Sampler.sample(l, p, 123, streams);
            again = Sampler.sample(l, p, 123, streams);
            // rows in another order, and in a strided view: the same token per (row, stream)
            float[] rev = new float[rows * vocab];
            long[] revStreams = new long[rows];
            for (int i = 0; i < rows; i++) {
                System.arraycopy(logits, i * vocab, rev, (rows - 1 - i) * vocab, vocab);
                revStreams[rows - 1 - i] = streams[i];
            }
            try (Tensor lr = Tensor.of(rev, rows, vocab)) {
                int[] backwards = Sampler.sample(lr, p, 123, revStreams);
                for (int i = 0; i < rows; i++) assertEquals(all[i], backwards[rows - 1 - i], "row " + i);
            }
            for (int i = 0; i < rows; i += 9) {
                int[] one = Sampler.sample(l.rows(i, i + 1), p, 123, new long[] {streams[i]});
                assertEquals(all[i], one[0], "row " + i + " alone");
            }
            int[] otherSeed = Sampler.sample(l, p, 124, streams);
            int differ = 0;
            for (int i = 0; i < rows; i++) if (otherSeed[i] != all[i]) differ++;
            assertTrue(differ > 5, "another seed should change some tokens");
        }
        assertArrayEquals(all, again);
    }

    @Test
    void badLogitsAreRefusedNamingTheArgument() {
        float[] row = {0f, Float.NaN, 1f};
        try (Tensor l = Tensor.of(row, 1, 3)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Sampler.sample(l, SamplingParams.temperature(1f), 0, new long[1]));
            assertTrue(e.getMessage().contains("logits"), e.getMessage());
        }
        float[] inf = {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY};
        try (Tensor l = Tensor.of(inf, 1, 2)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Sampler.sample(l, SamplingParams.temperature(1f), 0, new long[1]));
            assertTrue(e.getMessage().contains("logits"), e.getMessage());
        }
        try (Tensor l = Tensor.of(new float[6], 2, 3)) {
            assertTrue(assertThrows(IllegalArgumentException.class,
                    () -> Sampler.sample(l, SamplingParams.greedy(), 0, new long[3])).getMessage().contains("streams"));
            assertTrue(assertThrows(IllegalArgumentException.class,
                    () -> Sampler.sample(l, new SamplingParams[3], 0, new long[2], null, null)).getMessage()
                    .contains("perRow"));
            assertTrue(assertThrows(IllegalArgumentException.class,
                    () -> Sampler.sample(l, new SamplingParams[] {SamplingParams.greedy()}, 0, new long[2],
                            new int[][] {{0}, {3}}, null)).getMessage().contains("history[1][0]"));
            try (Tensor small = Tensor.allocate(DType.F32, 2, 2)) {
                assertTrue(assertThrows(IllegalArgumentException.class,
                        () -> Sampler.sample(l, new SamplingParams[] {SamplingParams.greedy()}, 0, new long[2], null,
                                small)).getMessage().contains("probsOut"));
            }
            assertTrue(assertThrows(IllegalArgumentException.class,
                    () -> Sampler.sample(l, new SamplingParams[] {SamplingParams.greedy()}, 0, new long[2], null, l))
                    .getMessage().contains("probsOut"));
        }
        try (Tensor i32 = Tensor.of(new int[4], 2, 2)) {
            assertTrue(assertThrows(IllegalArgumentException.class,
                    () -> Sampler.sample(i32, SamplingParams.greedy(), 0, new long[2])).getMessage().contains("logits"));
        }
    }
}
