package dev.isthmus.speculative;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

/**
 * Greedy speculative decoding gives the target's own greedy tokens, token for token: every draft length
 * 1..8, adaptive lengths, trees (with and without replacement), drafts that mostly agree, always agree or
 * never agree, and batches of prompts of different lengths (1 to 13 tokens).
 */
class SpeculativeGreedyTest {
    static final int V = 96, NEW = 40;

    static List<int[]> prompts(long seed, int... lengths) {
        return promptsOf(V, seed, lengths);
    }

    static List<int[]> promptsOf(int vocab, long seed, int... lengths) {
        SplittableRandom r = new SplittableRandom(seed);
        List<int[]> out = new ArrayList<>();
        for (int n : lengths) {
            int[] p = new int[n];
            for (int i = 0; i < n; i++) p[i] = r.nextInt(vocab);
            out.add(p);
        }
        return out;
    }

    static void assertSame(Generation want, Generation got, String what) {
        assertEquals(want.tokens().size(), got.tokens().size());
        long total = 0;
        for (int i = 0; i < want.tokens().size(); i++) {
            assertArrayEquals(want.tokens().get(i), got.tokens().get(i), what + ", prompt " + i);
            total += got.tokens().get(i).length;
        }
        DecodeStats s = got.stats();
        assertEquals(total, s.tokensEmitted(), what + ": tokensEmitted");
        assertTrue(s.draftTokensAccepted() <= s.draftTokensProposed(), what);
        assertTrue(s.targetSteps() >= 1 && s.tokensEmitted() <= s.targetSteps() * 9L, what);
    }

    @Test
    void everyDraftLengthAndAdaptiveMatchTheTargetAlone() {
        for (long seed = 1; seed <= 3; seed++) {
            List<int[]> prompts = prompts(seed * 11, 1, 5, 13);
            try (SpecTestModel target = SpecTestModel.of(V, seed);
                 SpecTestModel close = SpecTestModel.perturbed(V, seed, 0.1, seed + 50);
                 SpecTestModel same = SpecTestModel.perturbed(V, seed, 0, 0);
                 SpecTestModel bad = SpecTestModel.of(V, seed + 100)) {
                Generation want = AutoregressiveDecoder.of(target, SamplingParams.greedy(), 0).generate(prompts, NEW);
                assertEquals(3L * NEW, want.stats().tokensEmitted());
                assertEquals(1.0, want.stats().tokensPerTargetStep());
                for (SpecTestModel draft : new SpecTestModel[] {close, same, bad}) {
                    String name = draft == close ? "perturbed" : draft == same ? "identical" : "unrelated";
                    for (int k = 1; k <= 8; k++) {
                        Generation got = SpeculativeDecoder.builder(target, draft).draftLength(k).seed(seed).build()
                                .generate(prompts, NEW);
                        assertSame(want, got, "seed " + seed + ", " + name + " draft, k = " + k);
                        if (draft == same)
                            assertEquals(got.stats().draftTokensProposed(), got.stats().draftTokensAccepted(),
                                    "an identical draft is always accepted (k = " + k + ")");
                        if (k == 4 && seed == 1)
                            System.out.printf("greedy %s draft, k = 4: acceptance %.2f, %.2f tokens per target step%n",
                                    name, got.stats().acceptanceRate(), got.stats().tokensPerTargetStep());
                    }
                    Generation adaptive = SpeculativeDecoder.builder(target, draft).adaptiveDraftLength(1, 8).build()
                            .generate(prompts, NEW);
                    assertSame(want, adaptive, "seed " + seed + ", " + name + " draft, adaptive");
                    Generation fixedRatio = SpeculativeDecoder.builder(target, draft).adaptiveDraftLength(2, 6, 0.3)
                            .build().generate(prompts, NEW);
                    assertSame(want, fixedRatio, "seed " + seed + ", " + name + " draft, adaptive with a cost ratio");
                }
            }
        }
    }

    @Test
    void treesMatchTheTargetAlone() {
        DraftTree[] trees = {DraftTree.branching(2, 2, 1), DraftTree.branching(3), DraftTree.of(-1, 0, -1, 2, 2, 1),
                DraftTree.branching(2, 1, 1, 1), DraftTree.chain(3), DraftTree.of(-1, -1, -1, 0, 0, 1, 3, 6)};
        for (long seed = 4; seed <= 5; seed++) {
            List<int[]> prompts = prompts(seed * 13, 2, 9, 1, 6);
            try (SpecTestModel target = SpecTestModel.of(V, seed);
                 SpecTestModel close = SpecTestModel.perturbed(V, seed, 0.1, seed + 50);
                 SpecTestModel same = SpecTestModel.perturbed(V, seed, 0, 0);
                 SpecTestModel bad = SpecTestModel.of(V, seed + 100)) {
                Generation want = AutoregressiveDecoder.of(target, SamplingParams.greedy(), 0).generate(prompts, NEW);
                for (SpecTestModel draft : new SpecTestModel[] {close, same, bad})
                    for (DraftTree tree : trees)
                        for (boolean without : new boolean[] {false, true}) {
                            Generation got = SpeculativeDecoder.builder(target, draft).tree(tree)
                                    .withoutReplacement(without).build().generate(prompts, NEW);
                            assertSame(want, got, "seed " + seed + ", tree " + tree + (without ? " without" : " with")
                                    + " replacement");
                            if (draft == same)
                                assertEquals(got.stats().targetSteps() * firstChildDepth(tree),
                                        got.stats().draftTokensAccepted(), "identical draft: the path of first children"
                                        + " (the draft's best tokens) is always accepted, tree " + tree);
                        }
            }
        }
    }

    /** The length of the path root -> first child -> its first child ... (greedy: the draft's best tokens). */
    static int firstChildDepth(DraftTree tree) {
        int node = -1, d = 0;
        for (;;) {
            int next = -1;
            for (int j = 0; j < tree.nodes() && next < 0; j++) if (tree.parent(j) == node) next = j;
            if (next < 0) return d;
            node = next;
            d++;
        }
    }

    @Test
    void manySeeds() {
        for (long seed = 10; seed < 22; seed++) {
            List<int[]> prompts = promptsOf(V, seed, 1 + (int) (seed % 5), 7, 3);
            try (SpecTestModel target = SpecTestModel.of(V, seed);
                 SpecTestModel draft = SpecTestModel.perturbed(V, seed, 0.05 + 0.02 * (seed % 4), seed + 7)) {
                Generation want = AutoregressiveDecoder.of(target, SamplingParams.greedy(), 0).generate(prompts, 30);
                assertSame(want, SpeculativeDecoder.builder(target, draft).draftLength(1 + (int) (seed % 8)).build()
                        .generate(prompts, 30), "seed " + seed + ", chain");
                assertSame(want, SpeculativeDecoder.builder(target, draft).adaptiveDraftLength(1, 8).build()
                        .generate(prompts, 30), "seed " + seed + ", adaptive");
                assertSame(want, SpeculativeDecoder.builder(target, draft).tree(DraftTree.branching(2, 2, 1)).build()
                        .generate(prompts, 30), "seed " + seed + ", tree");
            }
        }
    }

    /** The adaptive rule drafts long chains for a draft that is always right and short ones for one always wrong. */
    @Test
    void adaptiveLengthFollowsTheAcceptanceRate() {
        List<int[]> prompts = promptsOf(V, 3, 4, 6);
        try (SpecTestModel target = SpecTestModel.of(V, 2); SpecTestModel same = SpecTestModel.perturbed(V, 2, 0, 0);
             SpecTestModel bad = SpecTestModel.of(V, 200)) {
            DecodeStats good = SpeculativeDecoder.builder(target, same).adaptiveDraftLength(1, 8, 0.05).build()
                    .generate(prompts, 120).stats();
            DecodeStats poor = SpeculativeDecoder.builder(target, bad).adaptiveDraftLength(1, 8, 0.05).build()
                    .generate(prompts, 120).stats();
            double kGood = (double) good.draftTokensProposed() / good.targetSteps();
            double kPoor = (double) poor.draftTokensProposed() / poor.targetSteps();
            System.out.printf("adaptive: mean draft length %.2f (identical draft), %.2f (unrelated draft)%n", kGood, kPoor);
            assertTrue(kGood > 6, "identical draft: mean draft length " + kGood);
            assertTrue(kPoor < 1.5, "unrelated draft: mean draft length " + kPoor);
        }
    }

    @Test
    void greedyWithARepetitionPenaltyMatchesTheTargetAlone() {
        SamplingParams p = SamplingParams.greedy().withRepetitionPenalty(1.3f);
        List<int[]> prompts = prompts(77, 3, 8);
        try (SpecTestModel target = SpecTestModel.of(V, 7); SpecTestModel draft = SpecTestModel.perturbed(V, 7, 0.1, 8)) {
            Generation want = AutoregressiveDecoder.of(target, p, 0).generate(prompts, NEW);
            Generation plain = AutoregressiveDecoder.of(target, SamplingParams.greedy(), 0).generate(prompts, NEW);
            boolean differs = false;
            for (int i = 0; i < prompts.size(); i++)
                differs |= !java.util.Arrays.equals(want.tokens().get(i), plain.tokens().get(i));
            assertTrue(differs, "the penalty should change the greedy output of this model");
            for (int k : new int[] {1, 3, 6})
                assertSame(want, SpeculativeDecoder.builder(target, draft).draftLength(k).sampling(p).build()
                        .generate(prompts, NEW), "penalty, k = " + k);
            assertSame(want, SpeculativeDecoder.builder(target, draft).tree(DraftTree.branching(2, 2)).sampling(p).build()
                    .generate(prompts, NEW), "penalty, tree");
        }
    }
}
