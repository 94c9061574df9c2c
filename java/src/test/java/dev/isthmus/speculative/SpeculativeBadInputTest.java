package dev.isthmus.speculative;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.IsthmusException;
import dev.isthmus.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Bad arguments: the exception type, and a message that names the argument. */
class SpeculativeBadInputTest {

    static void refused(Class<? extends Throwable> type, String mentions, Executable call) {
        Throwable e = assertThrows(type, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(mentions),
                "message should mention '" + mentions + "': " + e.getMessage());
    }

    @Test
    void samplingParams() {
        refused(IllegalArgumentException.class, "temperature", () -> SamplingParams.temperature(-1f));
        refused(IllegalArgumentException.class, "temperature", () -> SamplingParams.temperature(Float.NaN));
        refused(IllegalArgumentException.class, "temperature", () -> SamplingParams.temperature(Float.POSITIVE_INFINITY));
        refused(IllegalArgumentException.class, "topK", () -> SamplingParams.greedy().withTopK(-1));
        refused(IllegalArgumentException.class, "topP", () -> SamplingParams.greedy().withTopP(0f));
        refused(IllegalArgumentException.class, "topP", () -> SamplingParams.greedy().withTopP(1.5f));
        refused(IllegalArgumentException.class, "minP", () -> SamplingParams.greedy().withMinP(1f));
        refused(IllegalArgumentException.class, "minP", () -> SamplingParams.greedy().withMinP(-0.1f));
        refused(IllegalArgumentException.class, "repetitionPenalty", () -> SamplingParams.greedy().withRepetitionPenalty(0f));
        refused(IllegalArgumentException.class, "repetitionPenalty",
                () -> SamplingParams.greedy().withRepetitionPenalty(Float.NaN));
        SamplingParams p = SamplingParams.temperature(0.5f).withTopK(3).withTopP(0.9f).withMinP(0.1f)
                .withRepetitionPenalty(1.2f);
        assertEquals(new SamplingParams(0.5f, 3, 0.9f, 0.1f, 1.2f), p);
        assertTrue(SamplingParams.greedy().isGreedy());
    }

    @Test
    void draftTrees() {
        refused(IllegalArgumentException.class, "k", () -> DraftTree.chain(0));
        refused(IllegalArgumentException.class, "k", () -> DraftTree.chain(257));
        refused(IllegalArgumentException.class, "nodes", () -> DraftTree.of());
        refused(IllegalArgumentException.class, "parents[0]", () -> DraftTree.of(0));
        refused(IllegalArgumentException.class, "parents[2]", () -> DraftTree.of(-1, 0, 2));
        refused(IllegalArgumentException.class, "parents[1]", () -> DraftTree.of(-1, -2));
        refused(IllegalArgumentException.class, "perLevel[1]", () -> DraftTree.branching(2, 0));
        refused(IllegalArgumentException.class, "256", () -> DraftTree.branching(8, 8, 8));
        DraftTree t = DraftTree.branching(2, 2, 1);
        assertEquals(10, t.nodes());
        assertEquals(3, t.depth());
        assertTrue(Arrays.equals(new int[] {-1, -1, 0, 0, 1, 1, 2, 3, 4, 5}, t.parents()), Arrays.toString(t.parents()));
        assertTrue(DraftTree.chain(4).isChain() && DraftTree.of(-1, 0, 1).isChain() && !t.isChain());
        assertEquals(DraftTree.chain(3), DraftTree.of(-1, 0, 1));
    }

    @Test
    void decoderArguments() {
        try (SpecTestModel a = SpecTestModel.of(64, 1); SpecTestModel b = SpecTestModel.of(65, 1);
             SpecTestModel c = SpecTestModel.of(64, 2)) {
            refused(IllegalArgumentException.class, "target", () -> SpeculativeDecoder.builder(null, a));
            refused(IllegalArgumentException.class, "draft", () -> SpeculativeDecoder.builder(a, null));
            refused(IllegalArgumentException.class, "vocabSize", () -> SpeculativeDecoder.builder(a, b));
            SpeculativeDecoder.Builder builder = SpeculativeDecoder.builder(a, c);
            refused(IllegalArgumentException.class, "k", () -> builder.draftLength(0));
            refused(IllegalArgumentException.class, "min", () -> builder.adaptiveDraftLength(0, 3));
            refused(IllegalArgumentException.class, "max", () -> builder.adaptiveDraftLength(4, 2));
            refused(IllegalArgumentException.class, "draftCostRatio", () -> builder.adaptiveDraftLength(1, 2, -1));
            refused(IllegalArgumentException.class, "tree", () -> builder.tree(null));
            int[] wide = new int[256];
            java.util.Arrays.fill(wide, -1);
            refused(IllegalArgumentException.class, "257 rows", () -> builder.tree(DraftTree.of(wide)));
            refused(IllegalArgumentException.class, "sampling", () -> builder.sampling(null));
            refused(IllegalArgumentException.class, "topK", () -> SpeculativeDecoder.builder(a, c)
                    .tree(DraftTree.branching(3)).sampling(SamplingParams.temperature(1f).withTopK(2))
                    .withoutReplacement(true).build());
            SpeculativeDecoder d = builder.draftLength(2).build();
            AutoregressiveDecoder ar = AutoregressiveDecoder.of(a, SamplingParams.greedy(), 0);
            for (var gen : List.<java.util.function.BiFunction<List<int[]>, Integer, Generation>>of(d::generate,
                    ar::generate)) {
                refused(IllegalArgumentException.class, "prompts", () -> gen.apply(null, 3));
                refused(IllegalArgumentException.class, "prompts", () -> gen.apply(List.of(), 3));
                refused(IllegalArgumentException.class, "prompts[1]", () -> gen.apply(List.of(new int[] {1}, new int[0]), 3));
                refused(IllegalArgumentException.class, "prompts[1][2]",
                        () -> gen.apply(List.of(new int[] {1}, new int[] {1, 2, 64}), 3));
                refused(IllegalArgumentException.class, "prompts[0][0]", () -> gen.apply(List.of(new int[] {-1}), 3));
                refused(IllegalArgumentException.class, "maxNewTokens", () -> gen.apply(List.of(new int[] {1}), -1));
                Generation none = gen.apply(List.of(new int[] {1, 2}), 0);
                assertEquals(0, none.tokens().get(0).length);
            }
            refused(IllegalArgumentException.class, "model", () -> AutoregressiveDecoder.of(null, SamplingParams.greedy(), 0));
            refused(IllegalArgumentException.class, "sampling", () -> AutoregressiveDecoder.of(a, null, 0));
            assertEquals(0, a.cache().stats().liveSequences());
            assertEquals(0, c.cache().stats().liveSequences());
        }
    }

    @Test
    void aFullCacheIsTheCachesIsthmusExceptionAndSequencesAreClosed() {
        try (SpecTestModel target = SpecTestModel.withCache(64, 1, 0, 0, 4, 32);
             SpecTestModel draft = SpecTestModel.perturbed(64, 1, 0.1, 2)) {
            int[] prompt = new int[20];
            SpeculativeDecoder d = SpeculativeDecoder.builder(target, draft).draftLength(4).build();
            IsthmusException e = assertThrows(IsthmusException.class, () -> d.generate(List.of(prompt), 40));
            assertTrue(e.isCapacity(), e.getMessage());
            assertTrue(!e.nativeMessage().isEmpty() && e.getMessage().contains(e.nativeMessage()), e.getMessage());
            assertEquals(0, target.cache().stats().liveSequences(), "sequences closed after the failure");
            assertEquals(0, draft.cache().stats().liveSequences(), "sequences closed after the failure");
            List<int[]> many = new ArrayList<>();
            for (int i = 0; i < 5; i++) many.add(new int[] {i});
            IsthmusException slots = assertThrows(IsthmusException.class, () -> d.generate(many, 2));
            assertTrue(slots.isCapacity(), slots.getMessage());
            assertEquals(0, target.cache().stats().liveSequences());
            assertEquals(0, draft.cache().stats().liveSequences());
        }
    }

    @Test
    void verifierArguments() {
        DraftTree tree = DraftTree.branching(2);
        SamplingParams t1 = SamplingParams.temperature(1f);
        try (Tensor draft = Tensor.of(new float[2 * 4], 2, 4); Tensor target = Tensor.of(new float[3 * 4], 3, 4);
             Tensor wrong = Tensor.of(new float[2 * 4], 2, 4)) {
            int[][] ok = {{1, 2}};
            long[] s1 = {0};
            refused(IllegalArgumentException.class, "tree", () -> Verifier.verify(null, ok, draft, target, t1, false, 0, s1, false));
            refused(IllegalArgumentException.class, "target", () -> Verifier.verify(tree, ok, draft, wrong, t1, false, 0, s1, false));
            refused(IllegalArgumentException.class, "draft", () -> Verifier.verify(tree, ok, null, target, t1, false, 0, s1, false));
            refused(IllegalArgumentException.class, "draft", () -> Verifier.verify(tree, ok, target, target, t1, false, 0, s1, false));
            refused(IllegalArgumentException.class, "draftTokens[0][1]",
                    () -> Verifier.verify(tree, new int[][] {{1, 4}}, draft, target, t1, false, 0, s1, false));
            refused(IllegalArgumentException.class, "draftTokens[0]",
                    () -> Verifier.verify(tree, new int[][] {{1}}, draft, target, t1, false, 0, s1, false));
            refused(IllegalArgumentException.class, "streams",
                    () -> Verifier.verify(tree, ok, draft, target, t1, false, 0, new long[2], false));
            refused(IllegalArgumentException.class, "siblings",
                    () -> Verifier.verify(tree, new int[][] {{2, 2}}, draft, target, t1, false, 0, s1, true));
            refused(IllegalArgumentException.class, "repetitionPenalty",
                    () -> Verifier.verify(tree, ok, draft, target, t1.withRepetitionPenalty(1.1f), false, 0, s1, false));
        }
    }
}
