package dev.isthmus.speculative;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.Sequence;

import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;

/**
 * After every step, both caches hold exactly the accepted tokens: the target cache every committed token but
 * the last, the draft cache the committed tokens but its pending ones (the last, or the last two after a fully
 * accepted draft). Their K and V, read back, equal bit for bit those of a fresh cache filled with the same
 * tokens by one plain forward pass: rejected chain suffixes are truncated, tree nodes off the accepted path
 * compacted away, accepted nodes moved to their slots with K rotated at their true positions.
 */
class SpeculativeKvRollbackTest {
    static final int V = 64;

    /** K and V of positions [0, n) of seq, as float bits. */
    static int[][] readBits(SpecTestModel m, Sequence seq, int n) {
        try (Tensor k = Tensor.allocate(DType.F32, n, SpecTestModel.D); Tensor v = Tensor.allocate(DType.F32, n, SpecTestModel.D)) {
            m.cache().read(0, seq, 0, n, k, v);
            float[] kf = k.toFloatArray(), vf = v.toFloatArray();
            int[][] out = new int[2][kf.length];
            for (int i = 0; i < kf.length; i++) {
                out[0][i] = Float.floatToRawIntBits(kf[i]);
                out[1][i] = Float.floatToRawIntBits(vf[i]);
            }
            return out;
        }
    }

    /** The same tokens through a fresh sequence of the reference model, in one forward pass. */
    static int[][] reference(SpecTestModel ref, int[] tokens) {
        try (Sequence seq = ref.cache().newSequence()) {
            Batch b = Batch.of(seq, tokens.length);
            ref.cache().extend(b);
            try (Tensor logits = Tensor.allocate(DType.F32, 1, V)) {
                ref.forward(b, tokens, b.positions(), null, new int[] {tokens.length - 1}, logits);
            }
            return readBits(ref, seq, tokens.length);
        }
    }

    static int check(SpecTestModel model, SpecTestModel ref, Sequence seq, int[] tokens, String what) {
        assertEquals(tokens.length, seq.length(), what + ": cache length");
        if (tokens.length == 0) return 0;
        int[][] got = readBits(model, seq, tokens.length), want = reference(ref, tokens);
        assertArrayEquals(want[0], got[0], what + ": K differs from a fresh fill of the same tokens");
        assertArrayEquals(want[1], got[1], what + ": V differs from a fresh fill of the same tokens");
        return 1;
    }

    void run(SpeculativeDecoder.Builder builder, SpecTestModel target, SpecTestModel draft, SpecTestModel refTarget,
             SpecTestModel refDraft, String what) {
        SpeculativeDecoder decoder = builder.build();
        int[] checks = new int[2];
        decoder.listener = (step, running) -> {
            for (Decoding.State s : running) {
                int[] c = s.committed();
                String at = what + ", step " + step + ", sequence " + s.index;
                assertTrue(s.draftPending.length >= 1 && s.draftPending[s.draftPending.length - 1] == c[c.length - 1], at);
                assertArrayEquals(Arrays.copyOfRange(c, c.length - s.draftPending.length, c.length), s.draftPending, at);
                checks[0] += check(target, refTarget, s.target, Arrays.copyOf(c, c.length - 1), at + ", target");
                checks[1] += check(draft, refDraft, s.draft, Arrays.copyOf(c, c.length - s.draftPending.length),
                        at + ", draft");
            }
        };
        List<int[]> prompts = SpeculativeGreedyTest.promptsOf(V, 5, 1, 4, 9);
        Generation g = decoder.generate(prompts, 24);
        assertTrue(checks[0] > 10 && checks[1] > 10, what + ": too few checks");
        for (int[] t : g.tokens()) assertEquals(24, t.length);
        assertEquals(0, target.cache().stats().liveSequences(), "sequences are closed at the end");
        assertEquals(0, draft.cache().stats().liveSequences());
    }

    @Test
    void cachesHoldExactlyTheAcceptedTokens() {
        try (SpecTestModel target = SpecTestModel.of(V, 21); SpecTestModel draft = SpecTestModel.perturbed(V, 21, 0.1, 22);
             SpecTestModel refTarget = SpecTestModel.of(V, 21);
             SpecTestModel refDraft = SpecTestModel.perturbed(V, 21, 0.1, 22)) {
            SamplingParams sample = SamplingParams.temperature(1f);
            run(SpeculativeDecoder.builder(target, draft).draftLength(3), target, draft, refTarget, refDraft, "chain(3)");
            run(SpeculativeDecoder.builder(target, draft).adaptiveDraftLength(1, 6, 0.2).sampling(sample).seed(3),
                    target, draft, refTarget, refDraft, "adaptive, sampling");
            run(SpeculativeDecoder.builder(target, draft).tree(DraftTree.branching(2, 2, 1)), target, draft, refTarget,
                    refDraft, "branching(2, 2, 1), greedy");
            run(SpeculativeDecoder.builder(target, draft).tree(DraftTree.branching(2, 2, 1)).sampling(sample).seed(4),
                    target, draft, refTarget, refDraft, "branching(2, 2, 1), sampling");
            run(SpeculativeDecoder.builder(target, draft).tree(DraftTree.of(-1, 0, -1, 2, 2, 1)).sampling(sample)
                    .withoutReplacement(true).seed(5), target, draft, refTarget, refDraft,
                    "of(-1, 0, -1, 2, 2, 1), sampling without replacement");
        }
    }
}
