package dev.isthmus.speculative;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.Tensor;

import java.util.Arrays;
import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

/**
 * isthmus_verify through {@link Verifier}: exact results for one-hot targets and greedy, invariants on random
 * inputs, and chi-square tests that the emitted tokens are distributed as the target's own samples with a
 * deliberately bad draft (100k trials per case, batched over as many streams). Each correctness test asserts
 * p > 1e-3 (a correct sampler fails one with probability 1e-3 for an arbitrary seed; the seeds are fixed, so
 * the outcome is deterministic); each power check asserts the same statistic against the draft's distribution
 * gives p < 1e-12.
 */
class SpeculativeVerifierTest {
    static final int V = 8;
    /** Target at the root, and a draft that prefers what the target dislikes. */
    static final double[] P = {0.30, 0.20, 0.15, 0.10, 0.10, 0.08, 0.05, 0.02};
    static final double[] Q = {0.02, 0.05, 0.08, 0.10, 0.10, 0.15, 0.20, 0.30};

    /** The target's distribution after token x at depth d (x's row): P rotated by x + d. */
    static double[] next(int depth, int x) {
        double[] r = new double[V];
        for (int i = 0; i < V; i++) r[i] = P[(i + x + depth) % V];
        return r;
    }

    static int draw(SplittableRandom r, double[] p, boolean[] exclude) {
        double total = 0;
        for (int i = 0; i < p.length; i++) if (exclude == null || !exclude[i]) total += p[i];
        double u = r.nextDouble() * total, cum = 0;
        int last = -1;
        for (int i = 0; i < p.length; i++) {
            if (exclude != null && exclude[i]) continue;
            last = i;
            cum += p[i];
            if (u < cum) return i;
        }
        return last;
    }

    /** A batch of trials: draft tokens drawn from Q (distinct siblings when asked), target rows by token. */
    record Trials(int[][] tokens, float[] draft, float[] target) {}

    static Trials trials(DraftTree tree, int b, boolean withoutReplacement, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int t = tree.nodes();
        int[][] tokens = new int[b][t];
        float[] draft = new float[b * t * V], target = new float[b * (t + 1) * V];
        int[][] children = new int[t + 1][];
        for (int j = -1; j < t; j++) children[j + 1] = tree.children(j);
        for (int s = 0; s < b; s++) {
            for (int j = -1; j < t; j++) {
                boolean[] used = withoutReplacement ? new boolean[V] : null;
                for (int c : children[j + 1]) {
                    tokens[s][c] = draw(r, Q, used);
                    if (used != null) used[tokens[s][c]] = true;
                }
            }
            for (int row = 0; row < t; row++)
                for (int i = 0; i < V; i++) draft[(s * t + row) * V + i] = (float) Q[i];
            for (int i = 0; i < V; i++) target[s * (t + 1) * V + i] = (float) P[i];
            for (int j = 0; j < t; j++) {
                double[] n = next(tree.depth(j), tokens[s][j]);
                for (int i = 0; i < V; i++) target[(s * (t + 1) + j + 1) * V + i] = (float) n[i];
            }
        }
        return new Trials(tokens, draft, target);
    }

    static long[] streams(int b, long base) {
        long[] s = new long[b];
        for (int i = 0; i < b; i++) s[i] = base + i * 0x1_0000L;
        return s;
    }

    static Verifier.Result run(DraftTree tree, Trials tr, boolean withoutReplacement, long seed, boolean asLogits) {
        int b = tr.tokens().length, t = tree.nodes();
        float[] target = asLogits ? log(tr.target()) : tr.target(), draft = asLogits ? log(tr.draft()) : tr.draft();
        try (Tensor d = Tensor.of(draft, (long) b * t, V); Tensor g = Tensor.of(target, (long) b * (t + 1), V)) {
            SamplingParams t1 = SamplingParams.temperature(1f);
            return Verifier.verify(tree, tr.tokens(),
                    asLogits ? Verifier.Distribution.logits(d, t1) : Verifier.Distribution.probs(d),
                    asLogits ? Verifier.Distribution.logits(g, t1) : Verifier.Distribution.probs(g), false, seed,
                    streams(b, 17), withoutReplacement);
        }
    }

    /** Logits whose softmax at temperature 1 is the given distribution. */
    static float[] log(float[] probs) {
        float[] out = new float[probs.length];
        for (int i = 0; i < out.length; i++) out[i] = (float) Math.log(probs[i]);
        return out;
    }

    /** Chi-square of the first emitted token against P, and of the second given the first against next(1, x1). */
    static void checkDistribution(String what, DraftTree tree, boolean withoutReplacement, boolean asLogits,
                                  long seed) {
        int b = 100_000;
        Trials tr = trials(tree, b, withoutReplacement, seed);
        Verifier.Result res = run(tree, tr, withoutReplacement, seed * 31 + 7, asLogits);
        long[] first = new long[V];
        long[][] second = new long[V][V];
        long acceptedAny = 0;
        for (int s = 0; s < b; s++) {
            int[] out = res.tokens()[s];
            first[out[0]]++;
            if (out.length >= 2) {
                second[out[0]][out[1]]++;
                acceptedAny++;
            }
        }
        double[] c1 = SpecReference.chiSquare(first, P);
        double p1 = SpecReference.pValue(c1[0], c1[1]);
        double stat2 = 0, dof2 = 0;
        for (int x = 0; x < V; x++) {
            double[] c = SpecReference.chiSquare(second[x], next(1, x));
            stat2 += c[0];
            dof2 += c[1];
        }
        double p2 = SpecReference.pValue(stat2, dof2);
        double[] power = SpecReference.chiSquare(first, Q);
        double pPower = SpecReference.pValue(power[0], power[1]);
        System.out.printf("verify %-34s first token: chi2 %.2f, dof %.0f, p %.3f | second | first: chi2 %.2f, "
                + "dof %.0f, p %.3f (%d trials) | vs draft: chi2 %.0f, p %.1e%n", what, c1[0], c1[1], p1, stat2, dof2,
                p2, acceptedAny, power[0], pPower);
        assertTrue(p1 > 1e-3, what + ": first emitted token is not distributed as the target: chi2 " + c1[0] + ", dof "
                + c1[1] + ", p " + p1 + ", counts " + Arrays.toString(first));
        assertTrue(p2 > 1e-3, what + ": second token given the first is not distributed as the target: chi2 " + stat2
                + ", dof " + dof2 + ", p " + p2);
        assertTrue(pPower < 1e-12, what + ": the test cannot tell the draft from the target: p " + pPower);
    }

    @Test
    void chainEmitsTheTargetDistribution() {
        checkDistribution("chain(2)", DraftTree.chain(2), false, false, 1);
        checkDistribution("chain(3), both as logits", DraftTree.chain(3), false, true, 2);
    }

    @Test
    void treeWithReplacementEmitsTheTargetDistribution() {
        checkDistribution("branching(3, 2) with replacement", DraftTree.branching(3, 2), false, false, 3);
    }

    @Test
    void treeWithoutReplacementEmitsTheTargetDistribution() {
        checkDistribution("branching(3, 2) without replacement", DraftTree.branching(3, 2), true, false, 4);
        checkDistribution("of(-1,-1,0,1,1,-1) without replacement", DraftTree.of(-1, -1, 0, 1, 1, -1), true, false, 5);
    }

    @Test
    void matchesTheDoubleReferenceDrawForDraw() {
        SplittableRandom r = new SplittableRandom(12);
        int v = 16, b = 1500;
        for (DraftTree tree : new DraftTree[] {DraftTree.chain(1), DraftTree.chain(5), DraftTree.branching(3, 2),
                DraftTree.of(-1, 0, -1, 2, 2, 1)}) {
            for (boolean without : new boolean[] {false, true}) {
                int t = tree.nodes();
                int[][] tokens = new int[b][t];
                float[] draft = new float[b * t * v], target = new float[b * (t + 1) * v];
                for (int i = 0; i < draft.length; i++) draft[i] = r.nextInt(4) == 0 ? 0f : (float) r.nextDouble();
                for (int i = 0; i < target.length; i++) target[i] = r.nextInt(4) == 0 ? 0f : (float) r.nextDouble();
                for (int s = 0; s < b; s++) {
                    for (int row = 0; row < t; row++) draft[(s * t + row) * v + r.nextInt(v)] = 1f; // never all zero
                    for (int row = 0; row <= t; row++) target[(s * (t + 1) + row) * v + r.nextInt(v)] = 1f;
                    for (int j = -1; j < t; j++) {
                        boolean[] used = new boolean[v];
                        for (int c : tree.children(j)) {
                            int x;
                            do x = r.nextInt(v); while (without && used[x]);
                            used[x] = true;
                            tokens[s][c] = x;
                        }
                    }
                }
                long[] streams = streams(b, 99);
                for (boolean greedy : new boolean[] {false, true}) {
                    Verifier.Result res;
                    try (Tensor d = Tensor.of(draft, (long) b * t, v); Tensor g = Tensor.of(target, (long) b * (t + 1), v)) {
                        res = Verifier.verify(tree, tokens, Verifier.Distribution.probs(d), Verifier.Distribution.probs(g),
                                greedy, 31, streams, without);
                    }
                    int compared = 0;
                    for (int s = 0; s < b; s++) {
                        double[][] dr = new double[t][v], tr = new double[t + 1][v];
                        for (int row = 0; row < t; row++)
                            for (int i = 0; i < v; i++) dr[row][i] = draft[(s * t + row) * v + i];
                        for (int row = 0; row <= t; row++)
                            for (int i = 0; i < v; i++) tr[row][i] = target[(s * (t + 1) + row) * v + i];
                        SpecReference.Verified want = SpecReference.verify(tree, tokens[s], dr, tr, greedy, 31, streams[s],
                                without);
                        if (want.borderline()) continue;
                        compared++;
                        String at = tree + (without ? " without" : " with") + (greedy ? " greedy" : "") + ", sequence " + s;
                        assertEquals(want.accepted(), res.accepted()[s], at);
                        assertArrayEquals(want.tokens(), res.tokens()[s], at);
                        assertArrayEquals(want.path(), res.path()[s], at);
                    }
                    assertTrue(compared > b * 0.98, "too many borderline draws: " + compared);
                }
            }
        }
    }

    /** The token each row of a one-hot target stands for. */
    static int hot(int s, int row) {
        return (s * 7 + row * 3) % V;
    }

    @Test
    void oneHotTargetAndGreedyGiveExactTokens() {
        for (DraftTree tree : new DraftTree[] {DraftTree.chain(1), DraftTree.chain(5), DraftTree.branching(2, 2, 1),
                DraftTree.of(-1, 0, -1, 2, 2)}) {
            int b = 64, t = tree.nodes();
            SplittableRandom r = new SplittableRandom(t);
            int[][] tokens = new int[b][t];
            float[] target = new float[b * (t + 1) * V], draft = new float[b * t * V];
            Arrays.fill(draft, 1f / V);
            for (int s = 0; s < b; s++) {
                for (int row = 0; row <= t; row++) {
                    for (int i = 0; i < V; i++) target[(s * (t + 1) + row) * V + i] = -20f - i;
                    target[(s * (t + 1) + row) * V + hot(s, row)] = 80f;
                }
                // about half the nodes hold the token their parent's row wants
                for (int j = 0; j < t; j++) tokens[s][j] = r.nextBoolean() ? hot(s, tree.parent(j) + 1) : r.nextInt(V);
            }
            for (boolean greedy : new boolean[] {false, true}) {
                Verifier.Result res;
                try (Tensor d = Tensor.of(draft, (long) b * t, V); Tensor g = Tensor.of(target, (long) b * (t + 1), V)) {
                    res = Verifier.verify(tree, tokens, greedy ? null : d, g, SamplingParams.temperature(1f), greedy, 9,
                            streams(b, 3), false);
                }
                for (int s = 0; s < b; s++) {
                    // the walk: at each node take the first child holding the hot token of the node's row
                    int node = -1, a = 0;
                    int[] want = new int[t + 1];
                    for (;;) {
                        int h = hot(s, node + 1), next = -1;
                        for (int c : tree.children(node)) if (tokens[s][c] == h) { next = c; break; }
                        if (next < 0) { want[a] = h; break; }
                        want[a++] = h;
                        node = next;
                    }
                    assertEquals(a, res.accepted()[s], tree + (greedy ? " greedy" : " sampling") + " sequence " + s);
                    assertArrayEquals(Arrays.copyOf(want, a + 1), res.tokens()[s], tree + " sequence " + s);
                }
            }
        }
    }

    @Test
    void invariantsAndReproducibility() {
        SplittableRandom r = new SplittableRandom(11);
        for (DraftTree tree : new DraftTree[] {DraftTree.chain(4), DraftTree.branching(3, 2), DraftTree.of(-1, 0, 0, 1, -1)}) {
            for (boolean without : new boolean[] {false, true}) {
                int b = 200, t = tree.nodes();
                Trials tr = trials(tree, b, without, r.nextLong());
                // random target rows instead of the table, so rejections and bonus tokens both happen
                float[] target = tr.target().clone();
                for (int i = 0; i < target.length; i++) target[i] = (float) r.nextDouble() + 0.01f;
                Trials tr2 = new Trials(tr.tokens(), tr.draft(), target);
                Verifier.Result all = run(tree, tr2, without, 5, false);
                Verifier.Result again = run(tree, tr2, without, 5, false);
                for (int s = 0; s < b; s++) {
                    int a = all.accepted()[s];
                    assertTrue(a >= 0 && a <= tree.depth());
                    assertEquals(a + 1, all.tokens()[s].length);
                    assertEquals(a, all.path()[s].length);
                    int node = -1;
                    for (int i = 0; i < a; i++) {
                        int c = all.path()[s][i];
                        assertEquals(node, tree.parent(c), "path must go from a node to one of its children");
                        assertEquals(tr.tokens()[s][c], all.tokens()[s][i], "accepted token = the node's draft token");
                        node = c;
                    }
                    assertArrayEquals(all.tokens()[s], again.tokens()[s], "same seed and streams, same result");
                }
                // sequence 37 alone, with its own stream: the batch around it does not matter
                int s = 37;
                Trials one = new Trials(new int[][] {tr.tokens()[s]},
                        Arrays.copyOfRange(tr.draft(), s * t * V, (s + 1) * t * V),
                        Arrays.copyOfRange(target, s * (t + 1) * V, (s + 1) * (t + 1) * V));
                Verifier.Result alone;
                try (Tensor d = Tensor.of(one.draft(), t, V); Tensor g = Tensor.of(one.target(), t + 1, V)) {
                    alone = Verifier.verify(tree, one.tokens(), Verifier.Distribution.probs(d),
                            Verifier.Distribution.probs(g), false, 5, new long[] {streams(b, 17)[s]}, without);
                }
                assertArrayEquals(all.tokens()[s], alone.tokens()[0], tree + ": batch composition changed the result");
                assertArrayEquals(all.path()[s], alone.path()[0]);
            }
        }
    }
}
