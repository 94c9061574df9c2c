package dev.isthmus.speculative;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.Sequence;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;

/**
 * Sampled speculative decoding end to end: a one-hot target gives exactly its tokens; the same seed gives the
 * same tokens whatever else is in the batch; and the first two emitted tokens of many sequences (one prompt,
 * many streams) follow the target's distributions (chi-square, p > 1e-3), not the bad draft's.
 */
class SpeculativeSamplingDecodeTest {
    static final int V = 32;

    @Test
    void aOneHotTargetGivesItsExactTokens() {
        List<int[]> prompts = SpeculativeGreedyTest.promptsOf(V, 8, 3, 1, 7);
        try (SpecTestModel target = SpecTestModel.sharp(V, 9, 0, 0); SpecTestModel draft = SpecTestModel.perturbed(V, 9, 0.4, 3)) {
            Generation want = AutoregressiveDecoder.of(target, SamplingParams.greedy(), 0).generate(prompts, 30);
            SamplingParams t1 = SamplingParams.temperature(1f);
            List<Generation> runs = List.of(
                    AutoregressiveDecoder.of(target, t1, 5).generate(prompts, 30),
                    SpeculativeDecoder.builder(target, draft).draftLength(4).sampling(t1).seed(5).build().generate(prompts, 30),
                    SpeculativeDecoder.builder(target, draft).tree(DraftTree.branching(2, 2)).sampling(t1).seed(6).build()
                            .generate(prompts, 30),
                    SpeculativeDecoder.builder(target, draft).tree(DraftTree.branching(3, 1)).withoutReplacement(true)
                            .sampling(t1).seed(7).build().generate(prompts, 30));
            for (Generation g : runs)
                for (int i = 0; i < prompts.size(); i++) assertArrayEquals(want.tokens().get(i), g.tokens().get(i));
        }
    }

    @Test
    void reproducibleAndIndependentOfTheBatch() {
        List<int[]> prompts = SpeculativeGreedyTest.promptsOf(V, 9, 4, 6, 2);
        try (SpecTestModel target = SpecTestModel.of(V, 10); SpecTestModel draft = SpecTestModel.perturbed(V, 10, 0.1, 4)) {
            SpeculativeDecoder d = SpeculativeDecoder.builder(target, draft).tree(DraftTree.branching(2, 1, 1))
                    .sampling(SamplingParams.temperature(0.9f).withTopP(0.95f)).seed(77).build();
            Generation all = d.generate(prompts, 25), again = d.generate(prompts, 25);
            Generation first = d.generate(prompts.subList(0, 1), 25);
            for (int i = 0; i < 3; i++) assertArrayEquals(all.tokens().get(i), again.tokens().get(i));
            assertArrayEquals(all.tokens().get(0), first.tokens().get(0), "the other prompts changed prompt 0's tokens");
            Generation other = SpeculativeDecoder.builder(target, draft).tree(DraftTree.branching(2, 1, 1))
                    .sampling(SamplingParams.temperature(0.9f).withTopP(0.95f)).seed(78).build().generate(prompts, 25);
            assertTrue(!Arrays.equals(all.tokens().get(1), other.tokens().get(1)), "another seed, other tokens");
        }
    }

    /** The distribution the reference model gives after these tokens under p (history: the tokens), in double. */
    static double[] targetDistribution(SpecTestModel ref, int[] tokens, SamplingParams p) {
        try (Sequence seq = ref.cache().newSequence(); Tensor logits = Tensor.allocate(DType.F32, 1, V)) {
            Batch b = Batch.of(seq, tokens.length);
            ref.cache().extend(b);
            ref.forward(b, tokens, b.positions(), null, new int[] {tokens.length - 1}, logits);
            return SpecReference.distribution(logits.toFloatArray(), p, tokens);
        }
    }

    @Test
    void emittedTokensFollowTheTarget() {
        checkFirstTwoTokens(SamplingParams.temperature(1.5f), 12, false);
    }

    @Test
    void emittedTokensFollowTheFilteredPenalizedTarget() {
        checkFirstTwoTokens(SamplingParams.temperature(1.2f).withTopP(0.97f).withRepetitionPenalty(1.4f), 13, false);
    }

    /**
     * Top-p 0.6 often keeps fewer draft tokens than a node of branching(3, 1) has children: those nodes draw
     * their distinct children from 0.999 q + 0.001 uniform, which must leave the output exact.
     */
    @Test
    void emittedTokensFollowTheTargetWhenTheDraftKeepsFewerTokensThanSiblings() {
        checkFirstTwoTokens(SamplingParams.temperature(1f).withTopP(0.6f), 14, true);
    }

    /**
     * One prompt in 200 sequences, 12 seeds (chains, trees with and without replacement): the first emitted token
     * against the target's distribution after the prompt, the second against the one after prompt + first.
     */
    static void checkFirstTwoTokens(SamplingParams p, long seed0, boolean onlyWithoutReplacement) {
        int copies = 200, seeds = 12;
        int[] prompt = {3, 17, 5, 30, 8};
        try (SpecTestModel target = SpecTestModel.withCache(V, seed0, 0, 0, copies, 64);
             SpecTestModel draft = SpecTestModel.withCache(V, 99, 0, 0, copies, 64);
             SpecTestModel ref = SpecTestModel.of(V, seed0); SpecTestModel refDraft = SpecTestModel.of(V, 99)) {
            List<int[]> prompts = new ArrayList<>();
            for (int i = 0; i < copies; i++) prompts.add(prompt);
            long[] first = new long[V];
            long[][] second = new long[V][V];
            for (int seed = 0; seed < seeds; seed++) {
                SpeculativeDecoder.Builder b = SpeculativeDecoder.builder(target, draft).sampling(p).seed(seed);
                SpeculativeDecoder d = switch (onlyWithoutReplacement ? 2 : seed % 3) {
                    case 0 -> b.draftLength(3).build();
                    case 1 -> b.tree(DraftTree.branching(2, 2)).build();
                    default -> b.tree(DraftTree.branching(3, 1)).withoutReplacement(true).build();
                };
                for (int[] t : d.generate(prompts, 2).tokens()) {
                    first[t[0]]++;
                    second[t[0]][t[1]]++;
                }
            }
            double[] p1 = targetDistribution(ref, prompt, p);
            double[] c1 = SpecReference.chiSquare(first, p1);
            double pv1 = SpecReference.pValue(c1[0], c1[1]);
            double stat2 = 0, dof2 = 0;
            for (int x = 0; x < V; x++) {
                long n = Arrays.stream(second[x]).sum();
                if (n < 50) continue;
                int[] ctx = Arrays.copyOf(prompt, prompt.length + 1);
                ctx[prompt.length] = x;
                double[] c = SpecReference.chiSquare(second[x], targetDistribution(ref, ctx, p));
                stat2 += c[0];
                dof2 += c[1];
            }
            double pv2 = SpecReference.pValue(stat2, dof2);
            double[] power = SpecReference.chiSquare(first, targetDistribution(refDraft, prompt, p));
            double pPower = SpecReference.pValue(power[0], power[1]);
            System.out.printf("decode %s first token: chi2 %.2f, dof %.0f, p %.3f | second | first: chi2 %.2f, dof %.0f, "
                    + "p %.3f | vs draft: chi2 %.0f, p %.1e (%d sequences)%n", p, c1[0], c1[1], pv1, stat2, dof2, pv2,
                    power[0], pPower, copies * seeds);
            assertTrue(pv1 > 1e-3, p + ", first token: chi2 " + c1[0] + " dof " + c1[1] + " p " + pv1);
            assertTrue(dof2 >= (onlyWithoutReplacement ? 2 : 10) && pv2 > 1e-3, p + ", second token: chi2 " + stat2 + " dof " + dof2 + " p " + pv2);
            assertTrue(pPower < 1e-6, p + ": the test cannot tell the draft from the target: p " + pPower);
        }
    }
}
