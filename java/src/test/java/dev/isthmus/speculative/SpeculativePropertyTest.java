package dev.isthmus.speculative;

import static dev.isthmus.PropertySupport.count;
import static dev.isthmus.PropertySupport.refused;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.PropertySupport;
import dev.isthmus.Tensor;

import java.util.List;
import java.util.SplittableRandom;

import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.AfterTry;

/**
 * Properties of {@link Sampler}, {@link Verifier}, {@link SamplingParams} and {@link DraftTree}: sampled
 * distributions and tokens agree with {@link SpecReference} (double; {@code 2e-6 + 1e-5 p} per probability, the
 * token exactly unless the uniform lies within 1e-6 of a CDF boundary, rows near a top-p / min-p cut skipped as
 * {@link SpeculativeSamplerTest#borderline} defines); verification agrees draw for draw with
 * {@link SpecReference#verify} on random trees, vocabularies and distributions (borderline draws skipped); bad
 * parameters, trees, token arrays and tensors (closed, foreign, heap, dtype, shape, null) are refused with the
 * documented exception naming the argument.
 */
class SpeculativePropertyTest {
    @AfterContainer
    static void report() {
        PropertySupport.report(SpeculativePropertyTest.class);
    }

    @AfterTry
    void restoreIsa() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    static DraftTree randomTree(SplittableRandom r) {
        return switch (r.nextInt(3)) {
            case 0 -> DraftTree.chain(1 + r.nextInt(8));
            case 1 -> DraftTree.branching(1 + r.nextInt(3), 1 + r.nextInt(3));
            default -> {
                int[] p = new int[1 + r.nextInt(10)];
                for (int j = 0; j < p.length; j++) p[j] = r.nextInt(j + 1) - 1;
                yield DraftTree.of(p);
            }
        };
    }

    @Property
    void samplingAgreesWithTheReference(@ForAll @IntRange(min = 1, max = 12) int rows,
                                        @ForAll @IntRange(min = 1, max = 700) int vocab,
                                        @ForAll @IntRange(max = 11) int paramPick, @ForAll @IntRange(max = 2) int isa,
                                        @ForAll long seed) {
        count(getClass());
        Isthmus.setIsaCap(Isa.values()[isa]);
        SplittableRandom r = new SplittableRandom(seed);
        SamplingParams p = SpeculativeSamplerTest.PARAMS[paramPick];
        float[] logits = SpeculativeSamplerTest.randomLogits(r, rows, vocab, 0.5 + 3 * r.nextDouble());
        int[][] history = new int[rows][];
        long[] streams = new long[rows];
        for (int i = 0; i < rows; i++) {
            history[i] = r.nextInt(3) == 0 ? null : r.ints(r.nextInt(6), 0, vocab).toArray();
            streams[i] = r.nextLong();
        }
        int[] tokens;
        float[] probs;
        try (Tensor l = Tensor.of(logits, rows, vocab); Tensor out = Tensor.allocate(DType.F32, rows, vocab)) {
            tokens = Sampler.sample(l, new SamplingParams[] {p}, seed, streams, history, out);
            probs = out.toFloatArray();
            if (!p.hasRepetitionPenalty())
                assertArrayEquals(tokens, Sampler.sample(l, p, seed, streams), "the 4-argument form differs");
        }
        for (int i = 0; i < rows; i++) {
            float[] row = java.util.Arrays.copyOfRange(logits, i * vocab, (i + 1) * vocab);
            int[] h = history[i] == null ? new int[0] : history[i];
            if (SpeculativeSamplerTest.borderline(row, p, h)) continue;
            double[] want = SpecReference.distribution(row, p, h);
            for (int v = 0; v < vocab; v++) {
                assertEquals(want[v] > 0, probs[i * vocab + v] > 0, p + " row " + i + " token " + v + ": kept set differs");
                assertEquals(want[v], probs[i * vocab + v], 2e-6 + 1e-5 * want[v], p + " row " + i + " token " + v);
            }
            int t = SpecReference.inverseCdf(want, SpecReference.philoxUniform(seed, streams[i], 0), 1e-6);
            if (t >= 0) assertEquals(t, tokens[i], p + " row " + i + ": the inverse CDF of draw 0");
            else assertTrue(want[tokens[i]] > 0);
        }
    }

    @Property
    void verificationAgreesWithTheReference(@ForAll @IntRange(min = 1, max = 6) int b,
                                            @ForAll @IntRange(min = 2, max = 40) int v, @ForAll boolean without,
                                            @ForAll boolean greedy, @ForAll long seed) {
        count(getClass());
        SplittableRandom r = new SplittableRandom(seed);
        DraftTree tree = randomTree(r);
        int t = tree.nodes();
        if (without) {
            int maxChildren = 0;
            for (int j = -1; j < t; j++) maxChildren = Math.max(maxChildren, tree.children(j).length);
            if (maxChildren > v) return;
        }
        int[][] tokens = new int[b][t];
        float[] draft = new float[b * t * v], target = new float[b * (t + 1) * v];
        for (int i = 0; i < draft.length; i++) draft[i] = r.nextInt(4) == 0 ? 0f : (float) r.nextDouble();
        for (int i = 0; i < target.length; i++) target[i] = r.nextInt(4) == 0 ? 0f : (float) r.nextDouble();
        for (int s = 0; s < b; s++) {
            for (int row = 0; row < t; row++) draft[(s * t + row) * v + r.nextInt(v)] = 1f;
            for (int row = 0; row <= t; row++) target[(s * (t + 1) + row) * v + r.nextInt(v)] = 1f;
            for (int j = -1; j < t; j++) {
                boolean[] used = new boolean[v];
                for (int c : tree.children(j)) {
                    int x;
                    do x = r.nextInt(v); while (without && used[x]);
                    used[x] = true;
                    tokens[s][c] = x;
                    // a token was drawn from its parent's draft row: its probability there is > 0 (the contract;
                    // with 0, renormalizing without replacement divides by 0 and kernel and reference differ)
                    int at = (s * t + j + 1) * v + x;
                    if (draft[at] == 0f) draft[at] = 0.05f + (float) r.nextDouble();
                }
            }
        }
        long[] streams = new long[b];
        for (int s = 0; s < b; s++) streams[s] = r.nextLong();
        Verifier.Result res;
        try (Tensor d = Tensor.of(draft, (long) b * t, v); Tensor g = Tensor.of(target, (long) b * (t + 1), v)) {
            res = Verifier.verify(tree, tokens, Verifier.Distribution.probs(d), Verifier.Distribution.probs(g), greedy,
                    seed, streams, without);
        }
        for (int s = 0; s < b; s++) {
            double[][] dr = new double[t][v], tr = new double[t + 1][v];
            for (int row = 0; row < t; row++)
                for (int i = 0; i < v; i++) dr[row][i] = draft[(s * t + row) * v + i];
            for (int row = 0; row <= t; row++)
                for (int i = 0; i < v; i++) tr[row][i] = target[(s * (t + 1) + row) * v + i];
            SpecReference.Verified want = SpecReference.verify(tree, tokens[s], dr, tr, greedy, seed, streams[s], without);
            if (want.borderline()) continue;
            String at = tree + (without ? " without" : " with") + (greedy ? " greedy" : "") + ", sequence " + s;
            assertEquals(want.accepted(), res.accepted()[s], at);
            assertArrayEquals(want.tokens(), res.tokens()[s], at);
            assertArrayEquals(want.path(), res.path()[s], at);
        }
    }

    // ------------------------------------------------------------------ refusals

    @Property
    void badParametersAndTreesAreRefused(@ForAll int i, @ForAll float f, @ForAll @IntRange(min = 1, max = 12) int n) {
        count(getClass());
        if (!(f >= 0) || !Float.isFinite(f)) refused(IllegalArgumentException.class, "temperature", () -> SamplingParams.temperature(f));
        if (i < 0) refused(IllegalArgumentException.class, "topK", () -> SamplingParams.temperature(1).withTopK(i));
        if (!(f > 0 && f <= 1)) refused(IllegalArgumentException.class, "topP", () -> SamplingParams.temperature(1).withTopP(f));
        if (!(f >= 0 && f < 1)) refused(IllegalArgumentException.class, "minP", () -> SamplingParams.temperature(1).withMinP(f));
        if (!(f > 0) || !Float.isFinite(f))
            refused(IllegalArgumentException.class, "repetitionPenalty", () -> SamplingParams.greedy().withRepetitionPenalty(f));
        if (i < 1 || i > DraftTree.MAX_NODES) refused(IllegalArgumentException.class, "k", () -> DraftTree.chain(i));
        else assertEquals(i, DraftTree.chain(i).nodes());
        int[] parents = new int[n];
        for (int j = 0; j < n; j++) parents[j] = j - 1;
        int at = Math.floorMod(i, n);
        parents[at] = (i & 1) == 0 ? at + Math.floorMod(i >> 1, 5) : -2 - Math.floorMod(i >> 1, 5);
        refused(IllegalArgumentException.class, "parents[" + at + "]", () -> DraftTree.of(parents));
        refused(IllegalArgumentException.class, "parents", () -> DraftTree.of());
        refused(IllegalArgumentException.class, "parents", () -> DraftTree.of(new int[DraftTree.MAX_NODES + 1]));
        refused(IllegalArgumentException.class, "parents", () -> DraftTree.of((int[]) null));
        refused(IllegalArgumentException.class, "perLevel", () -> DraftTree.branching());
        refused(IllegalArgumentException.class, "perLevel", () -> DraftTree.branching(n, Math.min(0, i)));
        refused(IllegalArgumentException.class, "perLevel", () -> DraftTree.branching(n + 4, 8, 8));
        DraftTree tree = DraftTree.chain(n);
        assertEquals(n, tree.depth());
        assertTrue(tree.isChain());
        int j = Math.floorMod(i, n + 3) - 1;
        if (j < 0 || j >= n) {
            refused(IndexOutOfBoundsException.class, "j", () -> tree.parent(j));
            refused(IndexOutOfBoundsException.class, "j", () -> tree.depth(j));
        } else {
            assertEquals(j - 1, tree.parent(j));
            assertEquals(j + 1, tree.depth(j));
        }
    }

    @Property
    void badTensorsAndArraysAreRefused(@ForAll @IntRange(min = 1, max = 6) int rows, @ForAll @IntRange(min = 2, max = 60) int vocab,
                                       @ForAll int pick, @ForAll long seed) {
        count(getClass());
        SplittableRandom r = new SplittableRandom(seed);
        SamplingParams p = SamplingParams.temperature(1f);
        long[] streams = new long[rows];
        boolean[] no = {false, false};
        try (Tensor l = Tensor.of(SpeculativeSamplerTest.randomLogits(r, rows, vocab, 1), rows, vocab);
             Tensor out = Tensor.allocate(DType.F32, rows, vocab)) {
            PropertySupport.refusesBadTensors(new String[] {"logits"}, new Tensor[] {l}, no, false, pick,
                    t -> Sampler.sample(t[0], p, seed, streams));
            PropertySupport.refusesBadTensors(new String[] {"logits", "probsOut"}, new Tensor[] {l, out},
                    new boolean[] {false, true}, true, pick,
                    t -> Sampler.sample(t[0], new SamplingParams[] {p}, seed, streams, null, t[1]));
            refused(IllegalArgumentException.class, "params", () -> Sampler.sample(l, (SamplingParams) null, seed, streams));
            refused(IllegalArgumentException.class, "perRow", () -> Sampler.sample(l, new SamplingParams[rows + 1], seed, streams, null, null));
            refused(IllegalArgumentException.class, "perRow[0]", () -> Sampler.sample(l, new SamplingParams[1], seed, streams, null, null));
            refused(IllegalArgumentException.class, "streams", () -> Sampler.sample(l, p, seed, new long[rows + 1]));
            refused(IllegalArgumentException.class, "streams", () -> Sampler.sample(l, p, seed, null));
            int[][] history = new int[rows][];
            int row = r.nextInt(rows);
            history[row] = new int[] {r.nextBoolean() ? vocab + r.nextInt(5) : -1 - r.nextInt(5)};
            refused(IllegalArgumentException.class, "history[" + row + "][0]",
                    () -> Sampler.sample(l, new SamplingParams[] {p}, seed, streams, history, null));
            refused(IllegalArgumentException.class, "history",
                    () -> Sampler.sample(l, new SamplingParams[] {p}, seed, streams, new int[rows + 1][], null));
            // verification
            DraftTree tree = randomTree(r);
            int t = tree.nodes();
            int[][] tokens = new int[rows][t];
            try (Tensor d = Tensor.of(SpeculativeSamplerTest.randomLogits(r, rows * t, vocab, 1), (long) rows * t, vocab);
                 Tensor g = Tensor.of(SpeculativeSamplerTest.randomLogits(r, rows * (t + 1), vocab, 1), (long) rows * (t + 1), vocab)) {
                for (int s = 0; s < rows; s++)
                    for (int j = 0; j < t; j++) tokens[s][j] = r.nextInt(vocab);
                PropertySupport.refusesBadTensors(new String[] {"draft", "targetLogits"}, new Tensor[] {d, g}, no, false,
                        pick, x -> Verifier.verify(tree, tokens, x[0], x[1], p, false, seed, streams, false));
                PropertySupport.refusesBadTensors(new String[] {"draft", "target"}, new Tensor[] {d, g}, no, false,
                        pick, x -> Verifier.verify(tree, tokens, x[0] == null ? null : Verifier.Distribution.probs(x[0]),
                                x[1] == null ? null : Verifier.Distribution.logits(x[1], p), false, seed, streams, false));
                refused(IllegalArgumentException.class, "tree", () -> Verifier.verify(null, tokens, d, g, p, false, seed, streams, false));
                refused(IllegalArgumentException.class, "draftTokens",
                        () -> Verifier.verify(tree, new int[rows + 1][t], d, g, p, false, seed, streams, false));
                int[][] badTok = new int[rows][];
                for (int s = 0; s < rows; s++) badTok[s] = tokens[s].clone();
                int s0 = r.nextInt(rows), j0 = r.nextInt(t);
                badTok[s0][j0] = r.nextBoolean() ? vocab + r.nextInt(3) : -1;
                refused(IllegalArgumentException.class, "draftTokens[" + s0 + "][" + j0 + "]",
                        () -> Verifier.verify(tree, badTok, d, g, p, false, seed, streams, false));
                refused(IllegalArgumentException.class, "streams",
                        () -> Verifier.verify(tree, tokens, d, g, p, false, seed, new long[rows + 1], false));
                refused(IllegalArgumentException.class, "draft", () -> Verifier.verify(tree, tokens, null, g, p, false, seed, streams, false));
                refused(IllegalArgumentException.class, "targetParams",
                        () -> Verifier.verify(tree, tokens, d, g, null, false, seed, streams, false));
                refused(IllegalArgumentException.class, "data", () -> Verifier.Distribution.probs(null));
                refused(IllegalArgumentException.class, "params", () -> Verifier.Distribution.logits(g, null));
                refused(IllegalArgumentException.class, "params.repetitionPenalty",
                        () -> Verifier.Distribution.logits(g, p.withRepetitionPenalty(1.5f)));
            }
        }
    }

    @Property
    void greedySpeculationEmitsTheTargetsGreedyTokens(@ForAll @IntRange(min = 2, max = 60) int vocab,
                                                      @ForAll @IntRange(min = 1, max = 3) int prompts,
                                                      @ForAll @IntRange(min = 0, max = 12) int newTokens,
                                                      @ForAll @IntRange(max = 2) int shape, @ForAll long seed) {
        count(getClass());
        SplittableRandom r = new SplittableRandom(seed);
        List<int[]> ps = new java.util.ArrayList<>();
        for (int i = 0; i < prompts; i++) ps.add(r.ints(1 + r.nextInt(6), 0, vocab).toArray());
        try (SpecTestModel target = SpecTestModel.of(vocab, seed);
             SpecTestModel draft = SpecTestModel.perturbed(vocab, seed, 0.2 * r.nextDouble(), seed + 1)) {
            Generation want = AutoregressiveDecoder.of(target, SamplingParams.greedy(), 0).generate(ps, newTokens);
            SpeculativeDecoder.Builder b = SpeculativeDecoder.builder(target, draft).sampling(SamplingParams.greedy());
            switch (shape) {
                case 0 -> b.draftLength(1 + r.nextInt(6));
                case 1 -> b.adaptiveDraftLength(1, 2 + r.nextInt(5), r.nextDouble());
                default -> b.tree(DraftTree.branching(1 + r.nextInt(3), 1 + r.nextInt(2)));
            }
            Generation got = b.build().generate(ps, newTokens);
            for (int i = 0; i < prompts; i++)
                assertArrayEquals(want.tokens().get(i), got.tokens().get(i), "prompt " + i + " shape " + shape);
            assertTrue(got.stats().acceptanceRate() >= 0 && got.stats().acceptanceRate() <= 1, got.stats().toString());
        }
    }

    @Property
    void decodersRefuseBadArguments(@ForAll int k, @ForAll int max, @ForAll double ratio, @ForAll int token,
                                    @ForAll long seed) {
        count(getClass());
        int vocab = 17;
        try (SpecTestModel m = SpecTestModel.of(vocab, seed); SpecTestModel other = SpecTestModel.of(vocab + 1, seed)) {
            refused(IllegalArgumentException.class, "target", () -> SpeculativeDecoder.builder(null, m));
            refused(IllegalArgumentException.class, "draft", () -> SpeculativeDecoder.builder(m, null));
            refused(IllegalArgumentException.class, "target.vocabSize", () -> SpeculativeDecoder.builder(m, other));
            refused(IllegalArgumentException.class, "model", () -> AutoregressiveDecoder.of(null, SamplingParams.greedy(), 1));
            refused(IllegalArgumentException.class, "sampling", () -> AutoregressiveDecoder.of(m, null, 1));
            SpeculativeDecoder.Builder b = SpeculativeDecoder.builder(m, m);
            if (k < 1 || k > DraftTree.MAX_NODES) refused(IllegalArgumentException.class, "k", () -> b.draftLength(k));
            if (!(ratio >= 0) || Double.isInfinite(ratio))
                refused(IllegalArgumentException.class, "draftCostRatio", () -> b.adaptiveDraftLength(1, 2, ratio));
            if (k < 1 || k > max) refused(IllegalArgumentException.class, "min", () -> b.adaptiveDraftLength(k, max));
            refused(IllegalArgumentException.class, "tree", () -> b.tree(null));
            refused(IllegalArgumentException.class, "sampling", () -> b.sampling(null));
            AutoregressiveDecoder ar = AutoregressiveDecoder.of(m, SamplingParams.greedy(), seed);
            SpeculativeDecoder sd = SpeculativeDecoder.builder(m, m).build();
            for (java.util.function.BiConsumer<List<int[]>, Integer> gen : List.<java.util.function.BiConsumer<List<int[]>, Integer>>of(
                    ar::generate, sd::generate)) {
                refused(IllegalArgumentException.class, "prompts", () -> gen.accept(null, 1));
                refused(IllegalArgumentException.class, "prompts", () -> gen.accept(List.of(), 1));
                refused(IllegalArgumentException.class, "prompts[0]", () -> gen.accept(List.of(new int[0]), 1));
                if (token < 0 || token >= vocab)
                    refused(IllegalArgumentException.class, "prompts[0][1]", () -> gen.accept(List.<int[]>of(new int[] {1, token}), 1));
                if (max < 0) refused(IllegalArgumentException.class, "maxNewTokens", () -> gen.accept(List.<int[]>of(new int[] {1}), max));
            }
        }
    }

    /** Regression: DraftTree's size errors named neither parents nor perLevel, parent(j) / depth(j) out of range
     *  threw an ArrayIndexOutOfBoundsException without j, and Verifier.verify(Tensor form) called a closed
     *  targetLogits "target". */
    @net.jqwik.api.Example
    void treeAndVerifierErrorsNameTheArgument() {
        refused(IllegalArgumentException.class, "parents", () -> DraftTree.of(new int[DraftTree.MAX_NODES + 1]));
        refused(IllegalArgumentException.class, "perLevel", () -> DraftTree.branching(16, 16));
        refused(IndexOutOfBoundsException.class, "j", () -> DraftTree.chain(2).parent(2));
        refused(IndexOutOfBoundsException.class, "j", () -> DraftTree.chain(2).depth(-1));
        try (Tensor d = Tensor.of(new float[] {0.5f, 0.5f}, 1, 2); Tensor like = Tensor.allocate(DType.F32, 2, 2)) {
            Tensor g = PropertySupport.closed(like);
            refused(IllegalStateException.class, "targetLogits", () -> Verifier.verify(DraftTree.chain(1), new int[][] {{0}},
                    d, g, SamplingParams.temperature(1), false, 1, new long[1], false));
        }
    }
}
