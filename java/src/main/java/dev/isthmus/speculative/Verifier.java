package dev.isthmus.speculative;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_dist;
import dev.isthmus.bindings.isthmus_verify_args;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Native;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Decides which draft tokens the target accepts ({@code isthmus_verify}), for a batch of {@code B}
 * sequences that each proposed a {@link DraftTree} of {@code T} tokens.
 *
 * <p><b>Rows.</b> For sequence {@code b}: the target's row {@code b * (T + 1)} is its next-token
 * distribution at the root (the last committed token) and row {@code b * (T + 1) + j + 1} the one after
 * the path to node {@code j} (one target forward over root + nodes with the tree mask gives them all);
 * the draft's row {@code b * T} is the distribution the root's children were drawn from and row
 * {@code b * T + j + 1} the one node {@code j}'s children were drawn from (rows of leaves are not read).
 *
 * <p><b>Sampling</b> ({@code greedy = false}): from the root, child {@code c} is accepted with probability
 * {@code min(1, p(c) / q(c))}; on rejection the target's {@code p} becomes {@code norm(max(0, p - q))} (and,
 * with children drawn without replacement, {@code q} loses {@code c}) and the next child is tried; when no
 * child is accepted, or at a leaf, one token is drawn from the current {@code p}. The emitted tokens are
 * then distributed exactly as the target's own samples (Leviathan et al. 2023; Chen et al. 2023;
 * SpecInfer and Sequoia for trees). Uniforms come from stream {@code streams[b]}, draws numbered in the
 * order they are used, so a result is reproducible from (seed, streams).
 * <b>Greedy</b>: the emitted token is the target row's argmax; the child holding it is accepted, else the
 * walk stops. The draft distributions are not read (pass null).
 *
 * <pre>{@code
 * DraftTree tree = DraftTree.chain(4);
 * int[][] draftTokens = {{5, 9, 2, 7}};                       // B = 1 sequence, T = 4 tokens
 * // draftProbs F32 [B * 4, V] from Sampler.sample(..., probsOut); targetLogits F32 [B * 5, V]
 * Verifier.Result r = Verifier.verify(tree, draftTokens, draftProbs, targetLogits,
 *         SamplingParams.temperature(0.8f), false, seed, new long[] {stream}, false);
 * int a = r.accepted()[0];                                     // 0..4 draft tokens kept
 * int[] emitted = r.tokens()[0];                               // a accepted tokens, then one more
 * }</pre>
 */
public final class Verifier {
    private Verifier() {}

    /**
     * What verification decided, per sequence {@code b}.
     *
     * @param accepted {@code [B]}: how many draft tokens were accepted (0 to the tree's depth)
     * @param tokens   {@code [B][accepted[b] + 1]}: the accepted draft tokens, then the one emitted token
     *                 (the residual sample after a rejection, or the target's bonus token after a leaf)
     * @param path     {@code [B][accepted[b]]}: the tree nodes accepted, root to leaf (for a chain
     *                 {@code 0, 1, ...}); keep root + these when compacting a KV cache
     */
    public record Result(int[] accepted, int[][] tokens, int[][] path) {}

    /**
     * Rows of distributions over the vocabulary: probabilities (entries {@code >= 0} and finite, each row
     * renormalized by its sum, which must be positive) or logits turned into probabilities by
     * {@link SamplingParams} exactly as {@link Sampler} does (with a repetition penalty of 1: for a penalty,
     * pass the probabilities {@link Sampler#sample(Tensor, SamplingParams[], long, long[], int[][], Tensor)}
     * writes with the history instead).
     *
     * @param data   F32 {@code [rows, vocab]}, rows contiguous
     * @param logits true when {@code data} holds logits
     * @param params with logits: how to make them a distribution; ignored (may be null) for probabilities
     */
    public record Distribution(Tensor data, boolean logits, SamplingParams params) {
        public Distribution {
            if (data == null) throw new IllegalArgumentException("data is null");
            if (logits) {
                if (params == null) throw new IllegalArgumentException("params is null (logits need them)");
                if (params.hasRepetitionPenalty())
                    throw new IllegalArgumentException("params.repetitionPenalty must be 1 for logits here, got "
                            + params.repetitionPenalty() + ": pass the probabilities Sampler.sample writes with the "
                            + "history (probsOut) instead");
            }
        }

        /** Probability rows (from {@link Sampler}'s probsOut, or your own). */
        public static Distribution probs(Tensor data) {
            return new Distribution(data, false, null);
        }

        /** Logit rows, made into distributions by {@code params}. */
        public static Distribution logits(Tensor data, SamplingParams params) {
            return new Distribution(data, true, params);
        }
    }

    /**
     * Verifies with the draft given as probabilities and the target as logits.
     *
     * @param tree               the shape every sequence's draft has ({@code T = tree.nodes()})
     * @param draftTokens        {@code [B][T]} token of each node; siblings distinct with withoutReplacement
     * @param draft              F32 {@code [B * T, V]} probabilities the tokens were drawn from, or null when greedy
     * @param targetLogits       F32 {@code [B * (T + 1), V]}
     * @param targetParams       how target logits become distributions (repetition penalty 1); with greedy
     *                           only the argmax counts
     * @param greedy             accept the draft token that is the target's argmax
     * @param seed               the Philox key
     * @param streams            {@code [B]} one stream per sequence
     * @param withoutReplacement how siblings were drawn: distinct tokens, each from the draft distribution
     *                           renormalized without the ones before (true), or independently (false)
     * @throws IllegalArgumentException naming the argument for a null, a wrong dtype, shape or length, a heap tensor,
     *                                  a token out of range or repeated siblings without replacement
     * @throws IllegalStateException    for a closed tensor or one confined to another thread
     */
    public static Result verify(DraftTree tree, int[][] draftTokens, Tensor draft, Tensor targetLogits,
                                SamplingParams targetParams, boolean greedy, long seed, long[] streams,
                                boolean withoutReplacement) {
        Checks.matrix(targetLogits, "targetLogits", DType.F32); // named as the caller knows it (below: "target")
        Checks.notNull(targetParams, "targetParams");
        if (draft != null) Checks.matrix(draft, "draft", DType.F32);
        if (!greedy && draft == null)
            throw new IllegalArgumentException("draft is null: sampling verification needs the draft probabilities");
        return verify(tree, draftTokens, draft == null ? null : Distribution.probs(draft),
                Distribution.logits(targetLogits, targetParams), greedy, seed, streams, withoutReplacement);
    }

    /**
     * Verifies with both sides given as {@link Distribution}s: draft {@code [B * T, V]} rows (null when
     * greedy), target {@code [B * (T + 1), V]} rows. The other arguments are as in
     * {@link #verify(DraftTree, int[][], Tensor, Tensor, SamplingParams, boolean, long, long[], boolean)}.
     */
    public static Result verify(DraftTree tree, int[][] draftTokens, Distribution draft, Distribution target,
                                boolean greedy, long seed, long[] streams, boolean withoutReplacement) {
        Native.ensureLoaded(); // the bindings look symbols up in what the loader loaded
        Checks.notNull(tree, "tree");
        Checks.notNull(target, "target");
        int t = tree.nodes();
        Checks.notNull(draftTokens, "draftTokens");
        int b = draftTokens.length;
        if (b < 1) throw new IllegalArgumentException("draftTokens is empty: verify needs at least one sequence");
        Tensor tl = target.data();
        Checks.matrix(tl, "target", DType.F32);
        long vocab = tl.dim(1);
        if (vocab > Sampler.MAX_VOCAB)
            throw new IllegalArgumentException("target " + Checks.shape(tl) + " has a vocabulary larger than "
                    + Sampler.MAX_VOCAB);
        if (tl.dim(0) != (long) b * (t + 1))
            throw new IllegalArgumentException("target must have B * (T + 1) = " + b + " * " + (t + 1) + " = "
                    + (long) b * (t + 1) + " rows (B = draftTokens.length, root + " + t + " nodes per sequence) but is "
                    + Checks.shape(tl));
        Tensor dd = null;
        if (!greedy) {
            if (draft == null)
                throw new IllegalArgumentException("draft is null: sampling verification needs the draft distributions");
            dd = draft.data();
            Checks.matrix(dd, "draft", DType.F32);
            if (dd.dim(0) != (long) b * t || dd.dim(1) != vocab)
                throw new IllegalArgumentException("draft must be F32[B * T, V] = [" + (long) b * t + ", " + vocab
                        + "] (B = draftTokens.length) but is " + Checks.shape(dd));
        }
        Checks.notNull(streams, "streams");
        if (streams.length != b)
            throw new IllegalArgumentException("streams has " + streams.length + " entries but there are " + b
                    + " sequences (draftTokens rows)");
        int[] flat = new int[b * t];
        for (int s = 0; s < b; s++) {
            int[] row = draftTokens[s];
            if (row == null) throw new IllegalArgumentException("draftTokens[" + s + "] is null");
            if (row.length != t)
                throw new IllegalArgumentException("draftTokens[" + s + "] has " + row.length + " tokens but the tree has "
                        + t + " nodes");
            for (int j = 0; j < t; j++) {
                if (row[j] < 0 || row[j] >= vocab)
                    throw new IllegalArgumentException("draftTokens[" + s + "][" + j + "] = " + row[j]
                            + " is not a token id in [0, " + vocab + ")");
            }
            if (withoutReplacement && !greedy) checkDistinctSiblings(tree, row, s);
            System.arraycopy(row, 0, flat, s * t, t);
        }
        try (Arena call = Arena.ofConfined();
             Tensor.Lease lt = tl.lease();
             Tensor.Lease ld = dd == null ? Tensor.Lease.NONE : dd.lease()) {
            MemorySegment a = isthmus_verify_args.allocate(call);
            isthmus_verify_args.batch(a, b);
            isthmus_verify_args.nodes(a, t);
            isthmus_verify_args.vocab(a, vocab);
            isthmus_verify_args.parents(a, tree.isChain() ? MemorySegment.NULL
                    : call.allocateFrom(ValueLayout.JAVA_INT, tree.parents()));
            isthmus_verify_args.tree_mode(a, withoutReplacement && !greedy ? Isthmus.ISTHMUS_TREE_WITHOUT_REPLACEMENT()
                    : Isthmus.ISTHMUS_TREE_WITH_REPLACEMENT());
            isthmus_verify_args.greedy(a, greedy ? 1 : 0);
            isthmus_verify_args.draft_tokens(a, call.allocateFrom(ValueLayout.JAVA_INT, flat));
            isthmus_verify_args.ld_tokens(a, t);
            MemorySegment nd = isthmus_verify_args.draft(a);
            if (dd == null) {
                isthmus_dist.kind(nd, Isthmus.ISTHMUS_DIST_PROBS());
                isthmus_dist.data(nd, MemorySegment.NULL);
                isthmus_dist.ld(nd, vocab);
                SamplingParams.greedy().toNative(isthmus_dist.params(nd));
            } else {
                toNative(draft, nd);
            }
            toNative(target, isthmus_verify_args.target(a));
            isthmus_verify_args.seed(a, seed);
            isthmus_verify_args.streams(a, call.allocateFrom(ValueLayout.JAVA_LONG, streams));
            MemorySegment accepted = call.allocate(ValueLayout.JAVA_INT, b);
            MemorySegment tokens = call.allocate(ValueLayout.JAVA_INT, (long) b * (t + 1));
            MemorySegment path = call.allocate(ValueLayout.JAVA_INT, (long) b * t);
            isthmus_verify_args.accepted(a, accepted);
            isthmus_verify_args.tokens(a, tokens);
            isthmus_verify_args.ld_out(a, t + 1);
            isthmus_verify_args.path(a, path);
            isthmus_verify_args.ld_path(a, t);
            Native.checkInput(Isthmus.isthmus_verify(a), "Verifier.verify",
                    "target " + Checks.shape(tl) + (dd == null ? "" : " or draft " + Checks.shape(dd)),
                    "NaN", "nan", "inf", "finite", "negative", "sum");
            int[] acc = accepted.toArray(ValueLayout.JAVA_INT);
            int[] tok = tokens.toArray(ValueLayout.JAVA_INT);
            int[] pth = path.toArray(ValueLayout.JAVA_INT);
            int[][] outTokens = new int[b][], outPath = new int[b][];
            for (int s = 0; s < b; s++) {
                int n = acc[s];
                if (n < 0 || n > tree.depth())
                    throw new dev.isthmus.IsthmusException("Verifier.verify", dev.isthmus.IsthmusException.INTERNAL,
                            "accepted[" + s + "] = " + n + " is outside [0, " + tree.depth() + "]");
                outTokens[s] = Arrays.copyOfRange(tok, s * (t + 1), s * (t + 1) + n + 1);
                outPath[s] = Arrays.copyOfRange(pth, s * t, s * t + n);
            }
            return new Result(acc, outTokens, outPath);
        }
    }

    private static void toNative(Distribution d, MemorySegment nd) {
        isthmus_dist.kind(nd, d.logits() ? Isthmus.ISTHMUS_DIST_LOGITS() : Isthmus.ISTHMUS_DIST_PROBS());
        isthmus_dist.reserved(nd, 0);
        isthmus_dist.data(nd, d.data().segment());
        isthmus_dist.ld(nd, Sampler.ld(d.data()));
        (d.logits() ? d.params() : SamplingParams.temperature(1f)).toNative(isthmus_dist.params(nd));
    }

    private static void checkDistinctSiblings(DraftTree tree, int[] row, int s) {
        for (int p = -1; p < tree.nodes(); p++) {
            int[] c = tree.children(p);
            for (int i = 1; i < c.length; i++)
                for (int k = 0; k < i; k++)
                    if (row[c[i]] == row[c[k]])
                        throw new IllegalArgumentException("draftTokens[" + s + "]: nodes " + c[k] + " and " + c[i]
                                + " are siblings holding the same token " + row[c[i]] + ", which children drawn without"
                                + " replacement cannot");
        }
    }
}
