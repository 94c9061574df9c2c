package dev.isthmus.speculative;

import dev.isthmus.Tensor;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.Sequence;
import dev.isthmus.speculative.Decoding.State;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a small draft model proposes tokens, the
 * target model checks them all in one forward pass, and {@link Verifier} keeps the longest prefix the
 * target agrees with plus one token of its own. Greedy output is token for token the target's greedy
 * output; sampled output is distributed exactly as the target's own samples. With a {@link DraftTree}
 * the draft proposes several continuations at once (SpecInfer, Sequoia) and the target reads them with
 * the tree attention mask.
 *
 * <pre>{@code
 * SpeculativeDecoder decoder = SpeculativeDecoder.builder(target, draft)
 *         .draftLength(4)                                   // or .adaptiveDraftLength(1, 8), .tree(...)
 *         .sampling(SamplingParams.temperature(0.8f).withTopP(0.95f))
 *         .seed(42)
 *         .build();
 * Generation g = decoder.generate(List.of(promptA, promptB), 128);   // a batch of prompts
 * int[] continuation = g.tokens().get(0);
 * System.out.println(g.stats().tokensPerTargetStep() + " tokens per target pass");
 * }</pre>
 *
 * <p><b>One step</b>, for every unfinished sequence of the batch at once:
 * <ol>
 *   <li>the draft is fed the committed tokens its cache lacks (the last committed token, the root, and
 *       after a fully accepted draft also the last draft token), then proposes the tree level by level:
 *       children are drawn with {@link Sampler} from the draft's distribution at their parent (greedy:
 *       the parent's most likely tokens), with or without replacement among siblings;</li>
 *   <li>the target runs one forward pass over the root and all draft nodes: node {@code j} sits in cache
 *       slot {@code P + 1 + j} but is rotated at position {@code P + depth(j)} ({@code P}: the root's
 *       position), and attends to the prefix and its ancestors only;</li>
 *   <li>{@link Verifier} accepts a path of {@code a} nodes and emits one more token;</li>
 *   <li>both caches keep exactly the accepted tokens: a chain is truncated, a tree compacted
 *       ({@link Sequence#compact}) to root + path, so the K/V left in the cache are bit for bit what a
 *       target-only decoder would have written for those tokens.</li>
 * </ol>
 * <b>Cache invariant</b>, after prefill and after every step: the target cache holds every committed
 * token (prompt + emitted) except the last one, which is the next step's root; the draft cache holds the
 * same, or one token fewer when the whole draft was accepted (the last draft token was never fed to the
 * draft: it is fed, with the root, in the next step's first draft pass). Prefill writes every prompt token
 * but the last.
 *
 * <p><b>Draft length.</b> Fixed ({@link Builder#draftLength}), a fixed {@link Builder#tree}, or adaptive
 * ({@link Builder#adaptiveDraftLength(int, int)}): a chain whose length {@code k} is chosen before each
 * step to maximize the expected tokens per unit of cost {@code (1 - a^(k+1)) / ((1 - a) (c_t(k) + k c_d))},
 * with {@code a} an exponential moving average (decay 0.9 per step, prior 0.7 worth two tokens) of the
 * per-token acceptance rate (accepted tokens over accepted tokens plus first rejections, averaged over the
 * batch), clamped to {@code [0, 0.99]}, {@code c_d} a moving average (decay 0.9) of the measured time of one
 * draft pass, and {@code c_t(k)} moving averages of the measured target pass per length {@code k}: the
 * target pass over {@code B (k + 1)} rows costs about the same for every k when it is memory-bound (one
 * sequence) and grows with k when it is compute-bound (a batch on few cores), so lengths not measured yet
 * are estimated from the measured ones and a neighbour of the best length is tried once to learn the slope
 * (the rule is {@code DraftLengthRule}'s). Until anything is measured, or with a ratio fixed by
 * {@link Builder#adaptiveDraftLength(int, int, double)}, the cost is {@code 1 + k c_d / c_t} with the ratio
 * 0.1 (or the fixed one). The best {@code k} in {@code [min, max]} wins, the shortest on ties. A step never drafts more tokens than the longest
 * remaining budget needs ({@code maxNewTokens - generated - 1}, at least 1).
 *
 * <p><b>Randomness.</b> Every draw comes from a Philox stream named by (sequence index, step, use):
 * see {@link Sampler}. With a fixed draft length or tree, a sequence's tokens depend only on (seed, its
 * prompt, its index in the prompt list): not on the other prompts of the batch. An adaptive length is chosen
 * for the whole batch from its acceptance rate and, unless a cost ratio is fixed, from measured times: the
 * sampled tokens (not their distribution) then depend on those too. Greedy output never depends on the
 * draft length.
 *
 * <p><b>Errors.</b> Bad arguments are {@link IllegalArgumentException}s naming them (vocabulary sizes
 * that differ, empty prompts, tokens out of range); a full KV cache (sequence slots, blocks or maximum
 * length) is the cache's {@link dev.isthmus.IsthmusException} with the native message. Sequences are
 * closed at the end of {@link #generate}, also when it fails. A decoder holds no state between calls, but
 * the models' caches must not be used by others during a call.
 */
public final class SpeculativeDecoder {
    private final LanguageModel target, draft;
    private final DraftTree tree;        // null: a chain of minK..maxK
    private final int minK, maxK;
    private final double costRatio;      // NaN: measured
    private final SamplingParams sampling;
    private final long seed;
    private final boolean withoutReplacement;
    Decoding.StepListener listener;      // tests

    private SpeculativeDecoder(Builder b) {
        this.target = b.target;
        this.draft = b.draft;
        this.tree = b.tree;
        this.minK = b.minK;
        this.maxK = b.maxK;
        this.costRatio = b.costRatio;
        this.sampling = b.sampling;
        this.seed = b.seed;
        this.withoutReplacement = b.withoutReplacement;
    }

    /**
     * A builder for decoding {@code target} with proposals from {@code draft} (same vocabulary; each with
     * its own cache). Defaults: a chain of 4 draft tokens, greedy, seed 0, siblings drawn with replacement.
     *
     * @throws IllegalArgumentException if a model is null or their vocabulary sizes differ
     */
    public static Builder builder(LanguageModel target, LanguageModel draft) {
        if (target == null) throw new IllegalArgumentException("target is null");
        if (draft == null) throw new IllegalArgumentException("draft is null");
        if (target.vocabSize() != draft.vocabSize())
            throw new IllegalArgumentException("target.vocabSize() = " + target.vocabSize() + " differs from "
                    + "draft.vocabSize() = " + draft.vocabSize() + ": the draft must share the target's vocabulary");
        if (target.vocabSize() < 1 || target.vocabSize() > Sampler.MAX_VOCAB)
            throw new IllegalArgumentException("target.vocabSize() = " + target.vocabSize() + " is not in [1, "
                    + Sampler.MAX_VOCAB + "]");
        return new Builder(target, draft);
    }

    /** Options of a {@link SpeculativeDecoder}; the draft-shape options replace each other (last call wins). */
    public static final class Builder {
        private final LanguageModel target, draft;
        private DraftTree tree;
        private int minK = 4, maxK = 4;
        private double costRatio = Double.NaN;
        private SamplingParams sampling = SamplingParams.greedy();
        private long seed;
        private boolean withoutReplacement;

        private Builder(LanguageModel target, LanguageModel draft) {
            this.target = target;
            this.draft = draft;
        }

        /** A chain of {@code k} draft tokens per step, {@code 1 <= k <= DraftTree.MAX_NODES}. */
        public Builder draftLength(int k) {
            DraftTree.chain(k);
            tree = null;
            minK = maxK = k;
            costRatio = Double.NaN;
            return this;
        }

        /**
         * A chain whose length is chosen in {@code [min, max]} before each step from the acceptance rate seen
         * so far and the measured cost of a draft pass relative to a target pass (see the class doc).
         */
        public Builder adaptiveDraftLength(int min, int max) {
            return adaptive(min, max, Double.NaN);
        }

        /**
         * As {@link #adaptiveDraftLength(int, int)} with a fixed cost ratio {@code draftCost / targetCost}
         * ({@code >= 0}) instead of measured times, so that sampled runs are reproducible for a seed.
         */
        public Builder adaptiveDraftLength(int min, int max, double draftCostRatio) {
            if (!(draftCostRatio >= 0) || Double.isInfinite(draftCostRatio))
                throw new IllegalArgumentException("draftCostRatio must be finite and >= 0, got " + draftCostRatio);
            return adaptive(min, max, draftCostRatio);
        }

        private Builder adaptive(int min, int max, double ratio) {
            if (min < 1 || max > DraftTree.MAX_NODES || min > max)
                throw new IllegalArgumentException("adaptive draft length needs 1 <= min <= max <= "
                        + DraftTree.MAX_NODES + ", got min " + min + ", max " + max);
            tree = null;
            minK = min;
            maxK = max;
            costRatio = ratio;
            return this;
        }

        /**
         * Proposes this tree every step (a chain tree is the same as {@link #draftLength}). A tree that is not
         * a chain may have at most {@code DraftTree.MAX_NODES - 1} nodes: the target's tree-masked pass reads
         * the root and every node, at most {@code MAX_NODES} rows per sequence.
         */
        public Builder tree(DraftTree tree) {
            if (tree == null) throw new IllegalArgumentException("tree is null");
            if (!tree.isChain() && tree.nodes() + 1 > DraftTree.MAX_NODES)
                throw new IllegalArgumentException("tree has " + tree.nodes() + " nodes: with the root, the target's "
                        + "tree-masked pass would read " + (tree.nodes() + 1) + " rows, more than " + DraftTree.MAX_NODES);
            this.tree = tree;
            minK = maxK = tree.nodes();
            costRatio = Double.NaN;
            return this;
        }

        /** How the target's (and the draft's) logits become distributions; greedy by default. */
        public Builder sampling(SamplingParams sampling) {
            if (sampling == null) throw new IllegalArgumentException("sampling is null");
            this.sampling = sampling;
            return this;
        }

        /** The Philox key of every draw. */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /**
         * Siblings of a tree are distinct tokens, each drawn from the draft's distribution renormalized
         * without the ones before (Sequoia), rather than independent draws (SpecInfer). Chains ignore it.
         */
        public Builder withoutReplacement(boolean withoutReplacement) {
            this.withoutReplacement = withoutReplacement;
            return this;
        }

        public SpeculativeDecoder build() {
            if (withoutReplacement && tree != null && !sampling.isGreedy() && sampling.topK() > 0) {
                int widest = 0;
                for (int j = -1; j < tree.nodes(); j++) widest = Math.max(widest, tree.children(j).length);
                if (widest > sampling.topK())
                    throw new IllegalArgumentException("tree " + tree + " has a node with " + widest + " children but "
                            + "sampling.topK = " + sampling.topK() + " keeps fewer tokens: siblings drawn without "
                            + "replacement must be distinct");
            }
            return new SpeculativeDecoder(this);
        }
    }

    /** The target model. */
    public LanguageModel target() {
        return target;
    }

    /** The draft model. */
    public LanguageModel draft() {
        return draft;
    }

    /**
     * Decodes up to {@code maxNewTokens} new tokens for each prompt, all prompts as one batch (each a
     * sequence in both models' caches, closed again before returning).
     *
     * @param prompts      token ids, each prompt non-empty, ids in {@code [0, vocabSize)}
     * @param maxNewTokens {@code >= 0}; every sequence gets exactly this many (no stop token)
     * @return the new tokens per prompt and the run's stats
     * @throws IllegalArgumentException          for bad prompts
     * @throws dev.isthmus.IsthmusException when a cache is full (sequence slots, blocks, maximum length)
     */
    public Generation generate(List<int[]> prompts, int maxNewTokens) {
        int vocab = target.vocabSize();
        if (draft.vocabSize() != vocab)
            throw new IllegalArgumentException("target.vocabSize() = " + vocab + " differs from draft.vocabSize() = "
                    + draft.vocabSize());
        Decoding.checkPrompts(prompts, vocab, maxNewTokens);
        return new Run(prompts, maxNewTokens, vocab).run();
    }

    /** The state of one generate call. */
    private final class Run {
        final int maxNew, vocab;
        final List<State> states = new ArrayList<>();
        final List<int[]> prompts;
        long targetSteps, draftSteps, proposed, acceptedTotal, emitted;
        long targetNanos, draftNanos, verifyNanos;
        // adaptive draft length
        double accSuccess = 1.4, accTrials = 2.0;   // prior a = 0.7, weight of 2 trials
        double costDraft = Double.NaN;
        final double[] costTarget = new double[maxK + 1];   // per chain length; NaN: not measured
        {
            java.util.Arrays.fill(costTarget, Double.NaN);
        }
        /** Slots: draft logits, sampled probabilities, draft rows, target logits, sampler inputs, target probs. */
        static final int LOGITS = 0, PROBS = 1, DRAFT = 2, TARGET = 3, SCRATCH = 4, TARGET_PROBS = 5;
        final Decoding.Buffers buffers = new Decoding.Buffers(6);

        Run(List<int[]> prompts, int maxNew, int vocab) {
            this.prompts = prompts;
            this.maxNew = maxNew;
            this.vocab = vocab;
        }

        Generation run() {
            long start = System.nanoTime();
            Throwable failure = null;
            try {
                for (int i = 0; i < prompts.size(); i++) {
                    State s = new State(i, prompts.get(i));
                    states.add(s);
                    s.target = target.cache().newSequence();
                    s.draft = draft.cache().newSequence();
                }
                if (maxNew > 0) {
                    targetNanos += Decoding.prefill(target, states, false, buffers, LOGITS);
                    draftNanos += Decoding.prefill(draft, states, true, buffers, LOGITS);
                }
                for (int step = 0; ; step++) {
                    List<State> running = new ArrayList<>();
                    for (State s : states) if (!s.done && s.generated() < maxNew) running.add(s);
                    if (running.isEmpty()) break;
                    step(running, step);
                    if (listener != null) {
                        List<State> still = new ArrayList<>();
                        for (State s : running) if (!s.done) still.add(s);
                        listener.afterStep(step, still);
                    }
                }
            } catch (RuntimeException | Error e) {
                failure = e;
                throw e;
            } finally {
                Decoding.release(states, failure, buffers);
            }
            List<int[]> out = new ArrayList<>();
            for (State s : states) out.add(s.newTokens());
            return new Generation(out, new DecodeStats(targetSteps, draftSteps, proposed, acceptedTotal, emitted,
                    targetNanos, draftNanos, verifyNanos, System.nanoTime() - start));
        }

        /** The chain length for this step (adaptive: the best expected tokens per cost). */
        int chooseK(List<State> running) {
            int budget = 0;
            for (State s : running) budget = Math.max(budget, maxNew - s.generated() - 1);
            int k = minK;
            if (maxK > minK) {
                double a = Math.min(0.99, Math.max(0.0, accSuccess / accTrials));
                k = DraftLengthRule.choose(minK, maxK, a, costDraft, costTarget, costRatio);
            }
            return Math.max(1, Math.min(k, budget));
        }

        void step(List<State> running, int step) {
            DraftTree t = tree != null ? tree : DraftTree.chain(chooseK(running));
            int b = running.size(), n = t.nodes();
            boolean greedy = sampling.isGreedy();
            int[][] tokens = new int[b][n];
            int[] rootPos = new int[b];
            for (int i = 0; i < b; i++) rootPos[i] = running.get(i).size - 1;
            Tensor draftProbs = greedy ? null : buffers.matrix(DRAFT, (long) b * n, vocab);
            {
                // ---------------------------------------------------------------- draft, level by level
                long d0 = System.nanoTime();
                int draftPasses = 0;
                int[][] ancestors = ancestors(t);
                // level 0: the committed tokens the draft lacks; logits of each sequence's last row (the root)
                {
                    Batch.Builder bb = Batch.builder();
                    List<int[]> parts = new ArrayList<>();
                    int rows = 0;
                    int[] logitRows = new int[b];
                    for (int i = 0; i < b; i++) {
                        State s = running.get(i);
                        bb.add(s.draft, s.draftPending.length);
                        parts.add(s.draftPending);
                        rows += s.draftPending.length;
                        logitRows[i] = rows - 1;
                    }
                    Batch batch = bb.build();
                    draft.cache().extend(batch);
                    long[] pos = batch.positions();
                    Tensor logits = buffers.matrix(LOGITS, b, vocab);
                    draft.forward(batch, Decoding.concat(parts, rows), pos, null, logitRows, logits);
                    draftPasses++;
                    int[] parentNodes = new int[b];
                    Arrays.fill(parentNodes, -1);
                    drawChildren(running, t, step, tokens, ancestors, logits, parentNodes, 1, draftProbs);
                    for (State s : running) s.draftPending = new int[0];
                }
                // levels 1 .. depth-1: internal nodes of that level give their children's distribution
                List<Integer> fed = new ArrayList<>();       // tree nodes in the draft cache after the root
                int[] base = new int[b];
                for (int i = 0; i < b; i++) base[i] = rootPos[i] + 1;
                for (int level = 1; level < t.depth(); level++) {
                    List<Integer> internal = new ArrayList<>();
                    for (int j = 0; j < n; j++)
                        if (t.depth(j) == level && t.children(j).length > 0) internal.add(j);
                    if (internal.isEmpty()) break;
                    boolean incremental = true;
                    for (int f : fed)
                        for (int x : internal)
                            if (!isAncestor(ancestors, f, x)) incremental = false;
                    List<Integer> feed;
                    if (incremental) {
                        feed = internal;
                    } else {
                        for (int i = 0; i < b; i++) running.get(i).draft.truncate(base[i]);
                        feed = new ArrayList<>();
                        for (int j = 0; j < n; j++)
                            if (t.depth(j) <= level && t.children(j).length > 0) feed.add(j);
                        fed.clear();
                    }
                    int m = feed.size();
                    int[] parentsInFeed = new int[m];
                    boolean causalOk = m == 1;
                    for (int u = 0; u < m; u++) parentsInFeed[u] = feed.indexOf(t.parent(feed.get(u)));
                    Batch.Builder bb = Batch.builder();
                    for (State s : running) bb.add(s.draft, m);
                    Batch batch = bb.build();
                    draft.cache().extend(batch);
                    int[] toks = new int[b * m];
                    long[] pos = new long[b * m];
                    int[] treeParents = causalOk ? null : new int[b * m];
                    int[] logitRows = new int[b * internal.size()];
                    int[] parentNodes = new int[b * internal.size()];
                    int r = 0;
                    for (int i = 0; i < b; i++) {
                        for (int u = 0; u < m; u++) {
                            int j = feed.get(u);
                            toks[i * m + u] = tokens[i][j];
                            pos[i * m + u] = rootPos[i] + t.depth(j);
                            if (treeParents != null) treeParents[i * m + u] = parentsInFeed[u];
                            if (t.depth(j) == level) {
                                logitRows[r] = i * m + u;
                                parentNodes[r++] = j;
                            }
                        }
                    }
                    Tensor logits = buffers.matrix(LOGITS, logitRows.length, vocab);
                    draft.forward(batch, toks, pos, treeParents, logitRows, logits);
                    draftPasses++;
                    drawChildren(running, t, step, tokens, ancestors, logits, parentNodes, internal.size(), draftProbs);
                    fed.addAll(feed);
                }
                draftNanos += System.nanoTime() - d0;
                draftSteps += (long) draftPasses * b;
                double draftCost = (System.nanoTime() - d0) / (double) draftPasses;

                // ---------------------------------------------------------------- target: one pass
                Batch.Builder tb = Batch.builder();
                for (State s : running) tb.add(s.target, n + 1);
                Batch batch = tb.build();
                target.cache().extend(batch);
                int[] toks = new int[b * (n + 1)];
                long[] pos = new long[b * (n + 1)];
                int[] treeParents = t.isChain() ? null : new int[b * (n + 1)];
                for (int i = 0; i < b; i++) {
                    int o = i * (n + 1);
                    toks[o] = running.get(i).last();
                    pos[o] = rootPos[i];
                    if (treeParents != null) treeParents[o] = -1;
                    for (int j = 0; j < n; j++) {
                        toks[o + 1 + j] = tokens[i][j];
                        pos[o + 1 + j] = rootPos[i] + t.depth(j);
                        if (treeParents != null) treeParents[o + 1 + j] = t.parent(j) + 1;
                    }
                }
                Tensor targetLogits = buffers.matrix(TARGET, (long) b * (n + 1), vocab);
                long t0 = System.nanoTime();
                target.forward(batch, toks, pos, treeParents, null, targetLogits);
                long targetTime = System.nanoTime() - t0;
                targetNanos += targetTime;
                targetSteps += b;

                // ---------------------------------------------------------------- verify
                long v0 = System.nanoTime();
                long[] streams = new long[b];
                for (int i = 0; i < b; i++) streams[i] = Decoding.stream(running.get(i).index, step, 0);
                Verifier.Result res;
                if (sampling.hasRepetitionPenalty()) {
                    {
                        Tensor probs = buffers.matrix(TARGET_PROBS, (long) b * (n + 1), vocab);
                        int[][] history = new int[b * (n + 1)][];
                        long[] dummy = new long[b * (n + 1)];
                        for (int i = 0; i < b; i++) {
                            State s = running.get(i);
                            for (int j = -1; j < n; j++)
                                history[i * (n + 1) + 1 + j] = historyAt(s, tokens[i], ancestors, j);
                        }
                        Sampler.sample(targetLogits, new SamplingParams[] {sampling}, seed, dummy, history, probs);
                        res = Verifier.verify(t, tokens, greedy ? null : Verifier.Distribution.probs(draftProbs),
                                Verifier.Distribution.probs(probs), greedy, seed, streams, withoutReplacement);
                    }
                } else {
                    res = Verifier.verify(t, tokens, greedy ? null : Verifier.Distribution.probs(draftProbs),
                            Verifier.Distribution.logits(targetLogits, sampling), greedy, seed, streams,
                            withoutReplacement);
                }
                verifyNanos += System.nanoTime() - v0;

                // ---------------------------------------------------------------- commit, roll back the caches
                double success = 0, trials = 0;
                for (int i = 0; i < b; i++) {
                    State s = running.get(i);
                    int a = res.accepted()[i];
                    int[] out = res.tokens()[i];
                    int[] path = res.path()[i];
                    proposed += n;
                    acceptedTotal += a;
                    success += a;
                    trials += a + (a < t.depth() ? 1 : 0);
                    int emit = Math.min(out.length, maxNew - s.generated());
                    for (int x = 0; x < emit; x++) s.append(out[x]);
                    emitted += emit;
                    if (s.generated() >= maxNew) {
                        s.done = true;
                        continue;
                    }
                    // target: root + path stay
                    if (t.isChain()) {
                        s.target.truncate(rootPos[i] + 1L + a);
                    } else {
                        int[] keep = new int[a + 1];
                        for (int x = 0; x < a; x++) keep[x + 1] = path[x] + 1;
                        compactOrTruncate(s.target, rootPos[i], keep);
                    }
                    // draft: the path nodes it was fed stay; the others and the emitted token are pending
                    int present = 0;
                    while (present < a && fed.contains(path[present])) present++;
                    int[] keep = new int[present];
                    for (int x = 0; x < present; x++) keep[x] = fed.indexOf(path[x]);
                    compactOrTruncate(s.draft, base[i], keep);
                    int[] pending = new int[a - present + 1];
                    for (int x = present; x < a; x++) pending[x - present] = out[x];
                    pending[a - present] = out[a];
                    s.draftPending = pending;
                }
                if (maxK > minK) {
                    accSuccess = 0.9 * accSuccess + success / b;
                    accTrials = 0.9 * accTrials + trials / b;
                    int k = t.nodes();
                    costTarget[k] = Double.isNaN(costTarget[k]) ? targetTime : 0.9 * costTarget[k] + 0.1 * targetTime;
                    costDraft = Double.isNaN(costDraft) ? draftCost : 0.9 * costDraft + 0.1 * draftCost;
                }
            }
        }

        /**
         * Draws the children of {@code parentNodes[r]} of sequence {@code r / perSequence} from logits row r,
         * writing their tokens and the distribution they were drawn from into the parent's draft row.
         * The first child comes from the filtered distribution q ({@link Sampler}); with replacement the others
         * come from q too, without replacement each from q renormalized without its elder siblings (sampled as
         * softmax(log q) with those tokens at -inf). When q keeps fewer tokens than a node has children (top-k,
         * top-p, min-p or underflow), that node's q becomes 0.999 q + 0.001 / vocab, so distinct children exist;
         * any draft distribution is exact as long as the children are drawn from what verification is told.
         */
        void drawChildren(List<State> running, DraftTree t, int step, int[][] tokens, int[][] ancestors,
                          Tensor logits, int[] parentNodes, int perSequence, Tensor draftProbs) {
            if (sampling.isGreedy()) {
                drawGreedy(running, t, tokens, ancestors, logits, parentNodes, perSequence);
                return;
            }
            int rows = parentNodes.length, n = t.nodes();
            int maxChildren = 0;
            for (int p : parentNodes) maxChildren = Math.max(maxChildren, t.children(p).length);
            int[][] history = null;
            if (sampling.hasRepetitionPenalty()) {
                history = new int[rows][];
                for (int r = 0; r < rows; r++) history[r] = historyAt(running.get(r / perSequence), tokens[r / perSequence],
                        ancestors, parentNodes[r]);
            }
            // child 0 of every parent, from q; q is kept as the parent's draft row
            float[][] q = new float[rows][];
            {
                Tensor probs = buffers.matrix(PROBS, rows, vocab);
                long[] streams = new long[rows];
                for (int r = 0; r < rows; r++)
                    streams[r] = Decoding.stream(running.get(r / perSequence).index, step,
                            1 + t.children(parentNodes[r])[0]);
                int[] drawn = Sampler.sample(logits, new SamplingParams[] {sampling}, seed, streams, history, probs);
                List<Integer> redraw = new ArrayList<>();
                for (int r = 0; r < rows; r++) {
                    int seqIdx = r / perSequence, p = parentNodes[r];
                    tokens[seqIdx][t.children(p)[0]] = drawn[r];
                    if (withoutReplacement && maxChildren > 1) {
                        q[r] = row(probs, r);
                        int support = 0;
                        for (float x : q[r]) if (x > 0) support++;
                        if (support < t.children(p).length) {
                            for (int v = 0; v < vocab; v++) q[r][v] = 0.999f * q[r][v] + 0.001f / vocab;
                            MemorySegment.copy(q[r], 0, probs.segment(), ValueLayout.JAVA_FLOAT, (long) r * vocab * 4,
                                    vocab);
                            redraw.add(r);
                        }
                    }
                    MemorySegment.copy(probs.segment(), (long) r * vocab * 4, draftProbs.segment(),
                            ((long) seqIdx * n + p + 1) * vocab * 4, (long) vocab * 4);
                }
                if (!redraw.isEmpty()) {
                    float[] in = new float[redraw.size() * vocab];
                    long[] s2 = new long[redraw.size()];
                    for (int x = 0; x < redraw.size(); x++) {
                        int r = redraw.get(x);
                        logOf(q[r], in, x * vocab);
                        s2[x] = streams[r];
                    }
                    {
                        int[] again = Sampler.sample(buffers.of(SCRATCH, in, redraw.size(), vocab),
                                SamplingParams.temperature(1f), seed, s2);
                        for (int x = 0; x < redraw.size(); x++) {
                            int r = redraw.get(x);
                            tokens[r / perSequence][t.children(parentNodes[r])[0]] = again[x];
                        }
                    }
                }
            }
            // the other children
            for (int c = 1; c < maxChildren; c++) {
                List<Integer> which = new ArrayList<>();
                for (int r = 0; r < rows; r++) if (t.children(parentNodes[r]).length > c) which.add(r);
                int k = which.size();
                float[] in = new float[k * vocab];
                long[] streams = new long[k];
                int[][] hist = history == null || withoutReplacement ? null : new int[k][];
                for (int x = 0; x < k; x++) {
                    int r = which.get(x), seqIdx = r / perSequence;
                    int[] sib = t.children(parentNodes[r]);
                    streams[x] = Decoding.stream(running.get(seqIdx).index, step, 1 + sib[c]);
                    if (withoutReplacement) {
                        logOf(q[r], in, x * vocab);
                        for (int y = 0; y < c; y++) in[x * vocab + tokens[seqIdx][sib[y]]] = Float.NEGATIVE_INFINITY;
                    } else {
                        MemorySegment.copy(logits.segment(), ValueLayout.JAVA_FLOAT, (long) r * Sampler.ld(logits) * 4,
                                in, x * vocab, vocab);
                        if (hist != null) hist[x] = history[r];
                    }
                }
                SamplingParams params = withoutReplacement ? SamplingParams.temperature(1f) : sampling;
                {
                    int[] drawn = Sampler.sample(buffers.of(SCRATCH, in, k, vocab), new SamplingParams[] {params}, seed,
                            streams, hist, null);
                    for (int x = 0; x < k; x++) {
                        int r = which.get(x);
                        tokens[r / perSequence][t.children(parentNodes[r])[c]] = drawn[x];
                    }
                }
            }
        }

        /**
         * Greedy children: the parent's most likely tokens (after the repetition penalty), best first, ties to
         * the lowest id (as {@link Sampler} breaks them).
         */
        void drawGreedy(List<State> running, DraftTree t, int[][] tokens, int[][] ancestors, Tensor logits,
                        int[] parentNodes, int perSequence) {
            boolean single = true;
            for (int p : parentNodes) single &= t.children(p).length == 1;
            if (single) { // a chain: the native argmax (after the penalty), no row copied to Java
                int rows = parentNodes.length;
                int[][] history = sampling.hasRepetitionPenalty() ? new int[rows][] : null;
                for (int r = 0; history != null && r < rows; r++)
                    history[r] = historyAt(running.get(r / perSequence), tokens[r / perSequence], ancestors,
                            parentNodes[r]);
                int[] best = Sampler.sample(logits, new SamplingParams[] {sampling}, seed, new long[rows], history, null);
                for (int r = 0; r < rows; r++) tokens[r / perSequence][t.children(parentNodes[r])[0]] = best[r];
                return;
            }
            for (int r = 0; r < parentNodes.length; r++) {
                int seqIdx = r / perSequence;
                int p = parentNodes[r];
                int[] kids = t.children(p);
                float[] x = row(logits, r);
                if (sampling.hasRepetitionPenalty()) {
                    boolean[] seen = new boolean[vocab];
                    for (int h : historyAt(running.get(seqIdx), tokens[seqIdx], ancestors, p)) {
                        if (seen[h]) continue;
                        seen[h] = true;
                        x[h] = x[h] > 0 ? x[h] / sampling.repetitionPenalty() : x[h] * sampling.repetitionPenalty();
                    }
                }
                boolean[] taken = new boolean[vocab];
                for (int c = 0; c < kids.length; c++) {
                    int best = -1;
                    for (int v = 0; v < vocab; v++)
                        if (!taken[v] && (best < 0 || x[v] > x[best])) best = v;
                    if (best < 0) best = c % vocab; // more children than tokens: repeats are harmless when greedy
                    else taken[best] = true;
                    tokens[seqIdx][kids[c]] = best;
                }
            }
        }
    }

    /** ancestors[j]: the nodes on the path from the root to j, j included, root side first. */
    static int[][] ancestors(DraftTree t) {
        int[][] a = new int[t.nodes()][];
        for (int j = 0; j < t.nodes(); j++) {
            int p = t.parent(j);
            int[] up = p < 0 ? new int[0] : a[p];
            a[j] = Arrays.copyOf(up, up.length + 1);
            a[j][up.length] = j;
        }
        return a;
    }

    private static boolean isAncestor(int[][] ancestors, int x, int of) {
        for (int y : ancestors[of]) if (y == x) return true;
        return false;
    }

    /** log q into out[off ..], -inf where q is 0: softmax of it at temperature 1 is q renormalized. */
    private static void logOf(float[] q, float[] out, int off) {
        for (int v = 0; v < q.length; v++) out[off + v] = q[v] > 0 ? (float) Math.log(q[v]) : Float.NEGATIVE_INFINITY;
    }

    /** The history of the distribution at node p (-1: the root): committed tokens, then the path to p. */
    private static int[] historyAt(State s, int[] tokens, int[][] ancestors, int p) {
        int[] anc = p < 0 ? new int[0] : ancestors[p];
        int[] extra = new int[anc.length];
        for (int y = 0; y < anc.length; y++) extra[y] = tokens[anc[y]];
        return s.historyWith(extra, extra.length);
    }

    private static float[] row(Tensor m, int r) {
        long ld = Sampler.ld(m);
        float[] out = new float[(int) m.dim(1)];
        MemorySegment.copy(m.segment(), ValueLayout.JAVA_FLOAT, (long) r * ld * 4, out, 0, out.length);
        return out;
    }

    /** Keeps positions start + keep[i] (strictly increasing) of the sequence; a prefix keep is a truncation. */
    private static void compactOrTruncate(Sequence s, long start, int[] keep) {
        boolean prefix = true;
        for (int i = 0; i < keep.length; i++) if (keep[i] != i) prefix = false;
        if (prefix) s.truncate(start + keep.length);
        else s.compact(start, keep);
    }
}
