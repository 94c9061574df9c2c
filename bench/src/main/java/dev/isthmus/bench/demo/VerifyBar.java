package dev.isthmus.bench.demo;

import dev.isthmus.DType;
import dev.isthmus.Isthmus;
import dev.isthmus.Tensor;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.Sequence;
import dev.isthmus.speculative.DraftTree;
import dev.isthmus.speculative.SamplingParams;
import dev.isthmus.speculative.Sampler;
import dev.isthmus.speculative.Verifier;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The verification bar: "verification + sampling at V = 128K, k = 4, batch 8 costs under 5% of one target
 * forward step". The target is the {@code bar} preset (Llama-3.2-1B shape, vocab 128256); 8 sequences
 * are prefilled with {@code --bar-context} random tokens each; then, timed in the same process, each
 * repeated {@code --bar-reps} times (median, min-max):
 * <ul>
 *   <li>one target forward step: the 8 sequences x 5 tokens (the root and 4 draft tokens) with all 40
 *       logit rows, as the verification step of speculative decoding runs it (the cache is truncated back
 *       after each repetition);</li>
 *   <li>sampling: the draft's 4 steps of {@link Sampler#sample} over [8, V] logits, writing the
 *       probabilities the verifier reads (T = 0.8), and greedy (argmax);</li>
 *   <li>verification: {@link Verifier#verify} of a chain of 4 over the target's [40, V] logits and the
 *       draft's [32, V] probabilities (sampling), and greedy.</li>
 * </ul>
 * The logits are real: the target's for the step, and the draft's from another step of the same target
 * over different tokens (a draft that disagrees: every walk stops at the first token), or the target's own
 * rows (a draft that agrees: every walk goes to the leaf and draws the bonus token).
 */
final class VerifyBar {
    private VerifyBar() {}

    static final int BATCH = 8, K = 4;

    static void run(Demo.Options o) {
        LlamaConfig c = LlamaConfig.preset(o.preset().equals("tiny") ? "bar" : o.preset())
                .withMaxSeqLen(o.barContext() + 3 * (K + 1) + 16);
        int v = c.vocab(), rows = BATCH * (K + 1), reps = o.barReps();
        System.out.println("isthmus verification bar: " + Isthmus.describe());
        long t0 = System.nanoTime();
        try (LlamaWeights w = LlamaWeights.generate(c, new LlamaWeights.Init(o.gain(), o.logitScale()));
             LlamaModel target = LlamaModel.target(w, BATCH + 1);
             Tensor targetLogits = Tensor.allocate(DType.F32, rows, v);
             Tensor draftSource = Tensor.allocate(DType.F32, rows, v);
             Tensor draftLogits = Tensor.allocate(DType.F32, BATCH * K, v);
             Tensor draftProbs = Tensor.allocate(DType.F32, BATCH * K, v);
             Tensor stepLogits = Tensor.allocate(DType.F32, BATCH, v);
             Tensor one = Tensor.allocate(DType.F32, 1, v)) {
            System.out.printf(Locale.ROOT, "target %s (weights in %.1f s)%n", c, (System.nanoTime() - t0) / 1e9);
            List<Sequence> seqs = new ArrayList<>();
            int[][] prompts = Demo.prompts(BATCH, o.barContext(), v, o.seed());
            long t1 = System.nanoTime();
            for (int b = 0; b < BATCH; b++) {
                Sequence s = target.cache().newSequence();
                seqs.add(s);
                Batch pb = Batch.of(s, o.barContext());
                target.cache().extend(pb);
                target.forward(pb, prompts[b], pb.positions(), null, new int[] {o.barContext() - 1}, one);
            }
            System.out.printf(Locale.ROOT, "prefilled %d sequences x %d tokens in %.1f s%n", BATCH, o.barContext(),
                    (System.nanoTime() - t1) / 1e9);
            Batch.Builder bb = Batch.builder();
            for (Sequence s : seqs) bb.add(s, K + 1);
            Batch step = bb.build();
            int[][] stepTokens = {Demo.prompts(1, rows, v, o.seed() + 1)[0], Demo.prompts(1, rows, v, o.seed() + 2)[0]};

            // the draft's logits: the target's over other tokens (rows b*5 + j, j < 4 -> draft row b*4 + j)
            forwardStep(target, step, seqs, stepTokens[1], draftSource);
            for (int b = 0; b < BATCH; b++)
                for (int j = 0; j < K; j++)
                    java.lang.foreign.MemorySegment.copy(draftSource.segment(), (long) (b * (K + 1) + j) * v * 4,
                            draftLogits.segment(), (long) (b * K + j) * v * 4, (long) v * 4);

            double[] forward = new double[reps];
            for (int r = 0; r < reps + 1; r++) {      // first one is warm-up
                if (r == 1) target.times().reset();
                long a = System.nanoTime();
                forwardStep(target, step, seqs, stepTokens[0], targetLogits);
                if (r > 0) forward[r - 1] = (System.nanoTime() - a) / 1e6;
            }

            // a draft that agrees: the target's own rows b*5 + j (every token accepted, the walk goes to the leaf)
            double[] agreeSample = new double[reps], agreeVerify = new double[reps];
            int[] agreeAccepted = new int[K + 1];
            try (Tensor agreeing = Tensor.allocate(DType.F32, BATCH * K, v)) {
                for (int b = 0; b < BATCH; b++)
                    for (int j = 0; j < K; j++)
                        java.lang.foreign.MemorySegment.copy(targetLogits.segment(), (long) (b * (K + 1) + j) * v * 4,
                                agreeing.segment(), (long) (b * K + j) * v * 4, (long) v * 4);
                timeSampling(agreeing, draftProbs, targetLogits, o.seed() + 99, reps, agreeSample, agreeVerify,
                        agreeAccepted, v);
            }

            SamplingParams sampling = SamplingParams.temperature(0.8f), greedy = SamplingParams.greedy();
            DraftTree chain = DraftTree.chain(K);
            long[] streams = new long[BATCH];
            for (int b = 0; b < BATCH; b++) streams[b] = b;
            double[] sampleS = new double[reps], sampleG = new double[reps], verifyS = new double[reps], verifyG = new double[reps];
            int[] accepted = new int[K + 1];
            for (int r = 0; r < reps + 1; r++) {
                long seed = o.seed() * 7919 + r;
                // draft-side sampling: 4 steps of [8, V] logits -> tokens and probabilities
                int[][] draftTokens = new int[BATCH][K];
                long a = System.nanoTime();
                for (int j = 0; j < K; j++) {
                    Tensor lj = view(draftLogits, j, v), pj = view(draftProbs, j, v);
                    int[] tok = Sampler.sample(lj, new SamplingParams[] {sampling}, seed, streams(j), null, pj);
                    for (int b = 0; b < BATCH; b++) draftTokens[b][j] = tok[b];
                }
                long b1 = System.nanoTime();
                Verifier.Result res = Verifier.verify(chain, draftTokens, draftProbs, targetLogits, sampling, false, seed,
                        streams, false);
                long c1 = System.nanoTime();
                int[][] greedyTokens = new int[BATCH][K];
                for (int j = 0; j < K; j++) {
                    int[] tok = Sampler.sample(view(draftLogits, j, v), greedy, seed, streams(j));
                    for (int b = 0; b < BATCH; b++) greedyTokens[b][j] = tok[b];
                }
                long d1 = System.nanoTime();
                Verifier.verify(chain, greedyTokens, null, targetLogits, greedy, true, seed, streams, false);
                long e1 = System.nanoTime();
                if (r > 0) {
                    sampleS[r - 1] = (b1 - a) / 1e6;
                    verifyS[r - 1] = (c1 - b1) / 1e6;
                    sampleG[r - 1] = (d1 - c1) / 1e6;
                    verifyG[r - 1] = (e1 - d1) / 1e6;
                    for (int x : res.accepted()) accepted[x]++;
                }
            }
            double f = ForwardTiming.median(forward);
            System.out.printf(Locale.ROOT, "%nV = %d, k = %d (chain), batch %d, context %d, %d repetitions (median, min-max)%n",
                    v, K, BATCH, o.barContext(), reps);
            System.out.printf(Locale.ROOT, "target forward step (8 x 5 tokens, 40 logit rows): %8.2f ms (%s)%n", f, ForwardTiming.spread(forward));
            System.out.println("  its kernels: " + target.times());
            row("sampling T=0.8: 4 x sample [8, V] with probabilities", sampleS, f);
            row("sampling T=0.8: verify [40, V] logits vs [32, V] probs", verifyS, f);
            row("sampling T=0.8: total", sum(sampleS, verifyS), f);
            row("sampling T=0.8, agreeing draft: 4 x sample [8, V]", agreeSample, f);
            row("sampling T=0.8, agreeing draft: verify", agreeVerify, f);
            row("sampling T=0.8, agreeing draft: total", sum(agreeSample, agreeVerify), f);
            row("greedy: 4 x sample [8, V] (argmax)", sampleG, f);
            row("greedy: verify [40, V] logits", verifyG, f);
            row("greedy: total", sum(sampleG, verifyG), f);
            System.out.println("accepted draft tokens per sequence, histogram 0..4 over repetitions x 8 sequences: draft = "
                    + "another step's logits " + Arrays.toString(accepted) + ", agreeing draft " + Arrays.toString(agreeAccepted));
            for (Sequence s : seqs) s.close();
        }
    }

    /** Draft sampling (4 x [8, V] with probabilities) then sampling verification, reps + 1 times (first: warm-up). */
    private static void timeSampling(Tensor draftLogits, Tensor draftProbs, Tensor targetLogits, long seed0, int reps,
                                     double[] sample, double[] verify, int[] accepted, int v) {
        SamplingParams sampling = SamplingParams.temperature(0.8f);
        DraftTree chain = DraftTree.chain(K);
        long[] streams = new long[BATCH];
        for (int b = 0; b < BATCH; b++) streams[b] = b;
        for (int r = 0; r < reps + 1; r++) {
            long seed = seed0 * 7919 + r;
            int[][] draftTokens = new int[BATCH][K];
            long a = System.nanoTime();
            for (int j = 0; j < K; j++) {
                int[] tok = Sampler.sample(view(draftLogits, j, v), new SamplingParams[] {sampling}, seed, streams(j), null,
                        view(draftProbs, j, v));
                for (int b = 0; b < BATCH; b++) draftTokens[b][j] = tok[b];
            }
            long b1 = System.nanoTime();
            Verifier.Result res = Verifier.verify(chain, draftTokens, draftProbs, targetLogits, sampling, false, seed, streams,
                    false);
            long c1 = System.nanoTime();
            if (r > 0) {
                sample[r - 1] = (b1 - a) / 1e6;
                verify[r - 1] = (c1 - b1) / 1e6;
                for (int x : res.accepted()) accepted[x]++;
            }
        }
    }

    private static long[] streams(int step) {
        long[] s = new long[BATCH];
        for (int b = 0; b < BATCH; b++) s[b] = (long) b << 32 | step;
        return s;
    }

    private static void row(String what, double[] ms, double forward) {
        double m = ForwardTiming.median(ms);
        System.out.printf(Locale.ROOT, "%-58s %8.3f ms (%s) = %5.2f%% of the forward step%n", what, m, ForwardTiming.spread(ms),
                100 * m / forward);
    }

    /** Rows b * K + j of a [BATCH * K, v] tensor: the draft's step j. */
    private static Tensor view(Tensor t, int j, int v) {
        return Tensor.wrap(t.segment().asSlice((long) j * v * 4), DType.F32, new long[] {BATCH, v}, new long[] {(long) K * v, 1});
    }

    private static void forwardStep(LlamaModel target, Batch step, List<Sequence> seqs, int[] tokens, Tensor logits) {
        target.cache().extend(step);
        target.forward(step, tokens, step.positions(), null, null, logits);
        for (Sequence s : seqs) s.truncate(s.length() - (K + 1));
    }

    private static double[] sum(double[] a, double[] b) {
        double[] s = new double[a.length];
        for (int i = 0; i < a.length; i++) s[i] = a[i] + b[i];
        return s;
    }
}
