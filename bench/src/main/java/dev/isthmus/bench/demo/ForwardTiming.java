package dev.isthmus.bench.demo;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.Sequence;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The cost model behind the demo's speedup: one forward of the target at {@code batch} sequences x q
 * tokens (q = 1: a decode step; q = k + 1: a verification step) and of a draft at q = 1, after a prompt,
 * median of repetitions, with the kernel split. {@code ForwardTiming PRESET DRAFT BATCH CONTEXT [REPS]}.
 */
public final class ForwardTiming {
    private ForwardTiming() {}

    public static void main(String[] args) {
        LlamaConfig c = LlamaConfig.preset(args[0]);
        String draftSpec = args[1];
        int batch = Integer.parseInt(args[2]), context = Integer.parseInt(args[3]);
        int reps = args.length > 4 ? Integer.parseInt(args[4]) : 9;
        c = c.withMaxSeqLen(context + 64);
        try (LlamaWeights w = LlamaWeights.generate(c);
             LlamaModel target = LlamaModel.target(w, batch + 1);
             LlamaModel draft = Drafts.build(Drafts.Spec.parse(draftSpec, c.layers()), w, batch + 1)) {
            System.out.println("target " + c + "\ndraft " + draftSpec + ": " + draft);
            double t1 = 0;
            for (LlamaModel m : new LlamaModel[] {target, draft}) {
                List<Sequence> seqs = new ArrayList<>();
                int[][] prompts = Agreement.prompts(batch, context, c.vocab(), 1);
                try (Tensor one = Tensor.allocate(DType.F32, 1, c.vocab())) {
                    for (int b = 0; b < batch; b++) {
                        Sequence s = m.cache().newSequence();
                        seqs.add(s);
                        Batch pb = Batch.of(s, context);
                        m.cache().extend(pb);
                        m.forward(pb, prompts[b], pb.positions(), null, new int[] {context - 1}, one);
                    }
                }
                for (int q : m == target ? new int[] {1, 2, 3, 5, 9} : new int[] {1, 2}) {
                    Batch.Builder bb = Batch.builder();
                    for (Sequence s : seqs) bb.add(s, q);
                    Batch step = bb.build();
                    int[] tokens = Agreement.prompts(1, batch * q, c.vocab(), 3)[0];
                    double[] ms = new double[reps];
                    try (Tensor logits = Tensor.allocate(DType.F32, (long) batch * q, c.vocab())) {
                        for (int r = -2; r < reps; r++) {
                            if (r == 0) m.times().reset();
                            long a = System.nanoTime();
                            m.cache().extend(step);
                            m.forward(step, tokens, step.positions(), null, null, logits);
                            for (Sequence s : seqs) s.truncate(s.length() - q);
                            if (r >= 0) ms[r] = (System.nanoTime() - a) / 1e6;
                        }
                    }
                    double med = median(ms);
                    if (m == target && q == 1) t1 = med;
                    System.out.printf(Locale.ROOT, "%-6s batch %d x q %d: %8.2f ms (%s), %.2f x target q=1; %s%n",
                            m == target ? "target" : "draft", batch, q, med, spread(ms), med / t1, m.times());
                }
                for (Sequence s : seqs) s.close();
            }
        }
    }

    static double median(double[] x) {
        double[] s = x.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    static String spread(double[] x) {
        double[] s = x.clone();
        Arrays.sort(s);
        return String.format(Locale.ROOT, "%.3f-%.3f", s[0], s[s.length - 1]);
    }
}
