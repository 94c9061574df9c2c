package dev.isthmus.bench.demo;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.Sequence;

import java.lang.foreign.ValueLayout;
import java.util.Locale;

/**
 * How often a draft agrees with the target, measured without a decoder: the target generates a
 * greedy continuation of a prompt, then both models read the same tokens (teacher forcing) and their
 * next-token distributions are compared position by position. The greedy agreement (same argmax) is
 * the per-token acceptance probability of greedy speculative decoding; {@code 1 - TV(p, q)} at a
 * temperature is that of speculative sampling. With per-token acceptance {@code a} (independent), a
 * chain of k drafts gives {@code (1 - a^(k+1)) / (1 - a)} tokens per target step.
 */
public final class Agreement {
    private Agreement() {}

    /** Greedy agreement and mean {@code 1 - TV} at {@code temperature}, over {@code positions} positions. */
    public record Result(double greedy, double sampled, double temperature, int positions) {
        public double tokensPerStep(int k, boolean sampling) {
            double a = sampling ? sampled : greedy;
            return a >= 1 ? k + 1 : (1 - Math.pow(a, k + 1)) / (1 - a);
        }

        @Override
        public String toString() {
            return String.format(Locale.ROOT, "greedy agreement %.1f%%, 1 - TV at T = %.1f: %.1f%% (%d positions)",
                    100 * greedy, temperature, 100 * sampled, positions);
        }
    }

    /** Over each prompt: {@code generate} greedy target tokens, then compare target and draft on them. */
    public static Result measure(LlamaModel target, LlamaModel draft, int[][] prompts, int generate, double temperature) {
        int v = target.vocabSize();
        long same = 0, n = 0;
        double overlap = 0;
        for (int[] prompt : prompts) {
            int[] seq = greedy(target, prompt, generate);
            int from = prompt.length - 1, rows = generate;   // positions whose next token was generated
            int[] logitRows = new int[rows];
            for (int i = 0; i < rows; i++) logitRows[i] = from + i;
            float[] pt = logits(target, seq, logitRows), pd = logits(draft, seq, logitRows);
            for (int r = 0; r < rows; r++) {
                int at = argmax(pt, r * v, v), ad = argmax(pd, r * v, v);
                if (at == ad) same++;
                overlap += 1 - tv(pt, pd, r * v, v, temperature);
                n++;
            }
        }
        return new Result((double) same / n, overlap / n, temperature, (int) n);
    }

    /** prompt followed by {@code generate} greedy tokens of {@code m} (token by token). */
    static int[] greedy(LlamaModel m, int[] prompt, int generate) {
        int v = m.vocabSize();
        int[] out = java.util.Arrays.copyOf(prompt, prompt.length + generate);
        try (Sequence s = m.cache().newSequence(); Tensor logits = Tensor.allocate(DType.F32, 1, v)) {
            int[] in = prompt;
            for (int g = 0; g < generate; g++) {
                Batch b = Batch.of(s, in.length);
                m.cache().extend(b);
                m.forward(b, in, b.positions(), null, new int[] {in.length - 1}, logits);
                int next = argmax(logits.segment().toArray(ValueLayout.JAVA_FLOAT), 0, v);
                out[prompt.length + g] = next;
                in = new int[] {next};
            }
        }
        return out;
    }

    /** Logits of {@code rows} after one forward over all of {@code tokens}. */
    static float[] logits(LlamaModel m, int[] tokens, int[] rows) {
        try (Sequence s = m.cache().newSequence(); Tensor logits = Tensor.allocate(DType.F32, rows.length, m.vocabSize())) {
            Batch b = Batch.of(s, tokens.length);
            m.cache().extend(b);
            m.forward(b, tokens, b.positions(), null, rows, logits);
            return logits.toFloatArray();
        }
    }

    static int argmax(float[] x, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (x[off + i] > x[off + best]) best = i;
        return best;
    }

    /** Total variation distance of softmax(a / T) and softmax(b / T). */
    static double tv(float[] a, float[] b, int off, int n, double t) {
        double[] p = softmax(a, off, n, t), q = softmax(b, off, n, t);
        double d = 0;
        for (int i = 0; i < n; i++) d += Math.abs(p[i] - q[i]);
        return d / 2;
    }

    static double[] softmax(float[] x, int off, int n, double t) {
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        for (int i = 0; i < n; i++) max = Math.max(max, x[off + i]);
        double[] p = new double[n];
        for (int i = 0; i < n; i++) sum += p[i] = Math.exp((x[off + i] - max) / t);
        for (int i = 0; i < n; i++) p[i] /= sum;
        return p;
    }

    /**
     * {@code Agreement PRESET GAINS DRAFTS [PROMPTS GENERATE T]}: agreement of each draft (comma list of
     * {@link Drafts.Spec}) with the target, for each branch gain (comma list); logit scale 4.
     */
    public static void main(String[] args) {
        LlamaConfig c = LlamaConfig.preset(args[0]);
        int prompts = args.length > 3 ? Integer.parseInt(args[3]) : 4, gen = args.length > 4 ? Integer.parseInt(args[4]) : 32;
        double t = args.length > 5 ? Double.parseDouble(args[5]) : 0.8;
        for (String g : args[1].split(",")) {
            String[] gl = g.split("/");
            LlamaWeights.Init init = new LlamaWeights.Init(Double.parseDouble(gl[0]), gl.length > 1 ? Double.parseDouble(gl[1]) : 4);
            long t0 = System.nanoTime();
            try (LlamaWeights w = LlamaWeights.generate(c, init); LlamaModel target = LlamaModel.target(w, 2)) {
                System.out.printf(Locale.ROOT, "%s, %s: weights in %.1f s%n", c, init, (System.nanoTime() - t0) / 1e9);
                int[][] ps = prompts(prompts, 32, c.vocab(), 1);
                for (String d : args[2].split(",")) {
                    try (LlamaModel draft = Drafts.build(Drafts.Spec.parse(d, c.layers()), w, 2)) {
                        Result r = measure(target, draft, ps, gen, t);
                        System.out.printf(Locale.ROOT, "  %-20s %5.1f MB  %s; k=4: %.2f tokens/step greedy, %.2f sampled%n",
                                d, draft.weightBytes() / 1e6, r, r.tokensPerStep(4, false), r.tokensPerStep(4, true));
                    }
                }
            }
        }
    }
    /** {@code n} prompts of {@code length} random tokens (seeded). */
    public static int[][] prompts(int n, int length, int vocab, long seed) {
        int[][] p = new int[n][length];
        for (int i = 0; i < n; i++) {
            long s = LlamaWeights.mix64(seed * 1_000_003L + i);
            for (int j = 0; j < length; j++) {
                s = LlamaWeights.mix64(s + 0x9E3779B97F4A7C15L);
                p[i][j] = (int) Long.remainderUnsigned(s, vocab);
            }
        }
        return p;
    }
}
