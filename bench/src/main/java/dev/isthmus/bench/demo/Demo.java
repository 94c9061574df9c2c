package dev.isthmus.bench.demo;

import dev.isthmus.Isthmus;
import dev.isthmus.speculative.AutoregressiveDecoder;
import dev.isthmus.speculative.DecodeStats;
import dev.isthmus.speculative.DraftTree;
import dev.isthmus.speculative.Generation;
import dev.isthmus.speculative.SamplingParams;
import dev.isthmus.speculative.SpeculativeDecoder;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The end-to-end speculative decoding demo: a Llama-architecture target built from isthmus ops
 * ({@link LlamaModel}, seeded random int8 weights), a draft made from it ({@link Drafts}), and the same
 * prompts decoded by the target alone ({@link AutoregressiveDecoder}) and speculatively
 * ({@link SpeculativeDecoder}), greedy and sampled. Prints tokens/s of both, the speedup, the acceptance
 * rate, tokens per target step and where the time goes; for greedy, checks that the two outputs are equal
 * token for token. {@code bench/demo.sh --help} lists the options; {@code --bar} runs the verification
 * bar instead ({@link VerifyBar}).
 */
public final class Demo {
    private Demo() {}

    /** The demo's options. */
    record Options(String preset, String draft, int k, int adaptiveMin, int adaptiveMax, int[] tree, float temperature,
                   int tokens, int batch, int promptLength, long seed, double gain, double logitScale, int runs,
                   boolean greedyOnly, boolean samplingOnly, boolean bar, int barContext, int barReps) {

        static Options defaults() {
            return new Options("tiny", null, 4, 0, 0, null, 0.8f, 128, 1, 32, 1, LlamaWeights.Init.DEFAULT.branchGain(),
                    LlamaWeights.Init.DEFAULT.logitScale(), 3, false, false, false, 512, 7);
        }
    }

    static String usage() {
        return """
                Usage: bench/demo.sh [options]   (java ... dev.isthmus.bench.demo.Demo)
                  --preset NAME        tiny (default; seconds), small (TinyLlama-1.1B shape, GQA 32/8, ~1.1 GB int8),
                                       bar (Llama-3.2-1B shape, vocab 128256)
                  --draft SPEC         skip:L        the target's first/last/evenly spread L layers, dense
                                       pruned:L:S    those L layers with int8 CSR GEMMs pruned to sparsity S
                                       pruned24:L    those L layers with int8 2:4 GEMMs
                                       (default skip:2 for tiny and small)
                  --k N                draft tokens per step, a chain (default 4)
                  --adaptive MIN:MAX   adaptive draft length instead of --k
                  --tree A,B,..        a draft tree, A children of the root, B of each of those, ...
                  --temperature T      the sampling run's temperature (default 0.8)
                  --greedy-only, --sampling-only   run one of the two
                  --tokens N           new tokens per sequence (default 128)
                  --batch N            sequences decoded together (default 1)
                  --prompt N           prompt length, random tokens (default 32)
                  --seed S             sampling seed and prompt seed (default 1)
                  --gain G             the weights' residual branch gain (default 0.15; acceptance depends on it,
                                       see LlamaWeights)
                  --logit-scale S      std of the logits (default 4)
                  --runs N             timed runs of each decoder, medians reported (default 3; one warm-up run first)
                  --bar                the verification bar instead: verify + sample at V = 128K, k = 4, batch 8
                                       against one target forward step (8 x 5 tokens) of the bar preset
                  --bar-context N      the bar's context per sequence (default 512); --bar-reps N (default 7)
                  --help
                """;
    }

    static Options parse(String[] argv) {
        Options o = Options.defaults();
        String preset = o.preset(), draft = null;
        int k = o.k(), amin = 0, amax = 0, tokens = o.tokens(), batch = o.batch(), prompt = o.promptLength(), runs = o.runs();
        int barContext = o.barContext(), barReps = o.barReps();
        int[] tree = null;
        float temperature = o.temperature();
        long seed = o.seed();
        double gain = o.gain(), logitScale = o.logitScale();
        boolean greedyOnly = false, samplingOnly = false, bar = false;
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i], v = null;
            int eq = a.indexOf('=');
            if (a.startsWith("--") && eq > 0) {
                v = a.substring(eq + 1);
                a = a.substring(0, eq);
            }
            switch (a) {
                case "--help", "-h" -> {
                    System.out.print(usage());
                    System.exit(0);
                }
                case "--greedy-only" -> greedyOnly = true;
                case "--sampling-only" -> samplingOnly = true;
                case "--bar" -> bar = true;
                default -> {
                    if (v == null) {
                        if (i + 1 >= argv.length) throw new IllegalArgumentException(a + " needs a value (see --help)");
                        v = argv[++i];
                    }
                    switch (a) {
                        case "--preset" -> preset = v;
                        case "--draft" -> draft = v;
                        case "--k" -> k = Integer.parseInt(v);
                        case "--adaptive" -> {
                            String[] p = v.split(":");
                            amin = Integer.parseInt(p[0]);
                            amax = Integer.parseInt(p[1]);
                        }
                        case "--tree" -> tree = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
                        case "--temperature" -> temperature = Float.parseFloat(v);
                        case "--tokens" -> tokens = Integer.parseInt(v);
                        case "--batch" -> batch = Integer.parseInt(v);
                        case "--prompt" -> prompt = Integer.parseInt(v);
                        case "--seed" -> seed = Long.parseLong(v);
                        case "--gain" -> gain = Double.parseDouble(v);
                        case "--logit-scale" -> logitScale = Double.parseDouble(v);
                        case "--runs" -> runs = Integer.parseInt(v);
                        case "--bar-context" -> barContext = Integer.parseInt(v);
                        case "--bar-reps" -> barReps = Integer.parseInt(v);
                        default -> throw new IllegalArgumentException("unknown option " + a + " (see --help)");
                    }
                }
            }
        }
        return new Options(preset, draft, k, amin, amax, tree, temperature, tokens, batch, prompt, seed, gain, logitScale,
                runs, greedyOnly, samplingOnly, bar, barContext, barReps);
    }

    public static void main(String[] args) {
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("demo: " + e.getMessage());
            System.exit(2);
            return;
        }
        if (o.bar()) {
            VerifyBar.run(o);
            return;
        }
        run(o, System.out::println);
    }

    /** One decoder's runs: the median run's stats, every run's tokens/s, the kernel split summed over runs. */
    record Measured(DecodeStats median, double[] tokensPerSecond, KernelTimes target, KernelTimes draft,
                    List<int[]> tokens) {
        double medianTps() {
            return median.tokensPerSecond();
        }

        String spread() {
            double[] s = tokensPerSecond.clone();
            Arrays.sort(s);
            return String.format(Locale.ROOT, "%.1f-%.1f", s[0], s[s.length - 1]);
        }
    }

    /** What a demo run found, per mode (for the test and the results file). */
    record ModeResult(String mode, Measured target, Measured speculative, boolean equal) {
        double speedup() {
            return speculative.medianTps() / target.medianTps();
        }
    }

    /** Runs the demo with {@code o}; prints through {@code out}; returns the results per mode. */
    static List<ModeResult> run(Options o, java.util.function.Consumer<String> out) {
        LlamaConfig base = LlamaConfig.preset(o.preset());
        int slack = Math.max(Math.max(o.k(), o.adaptiveMax()), o.tree() == null ? 0 : 64) + 8;
        LlamaConfig c = base.withMaxSeqLen(o.promptLength() + o.tokens() + slack + 16);
        LlamaWeights.Init init = new LlamaWeights.Init(o.gain(), o.logitScale());
        String draftSpec = o.draft() != null ? o.draft() : "skip:2";
        out.accept("isthmus speculative decoding demo: " + Isthmus.describe());
        long t0 = System.nanoTime();
        List<ModeResult> results = new ArrayList<>();
        try (LlamaWeights w = LlamaWeights.generate(c, init)) {
            long t1 = System.nanoTime();
            int slots = o.batch() + 1;
            try (LlamaModel target = LlamaModel.target(w, slots);
                 LlamaModel draft = Drafts.build(Drafts.Spec.parse(draftSpec, c.layers()), w, slots)) {
                out.accept(String.format(Locale.ROOT, "target %s; init %s (weights made and packed in %.1f s)", c, init,
                        (t1 - t0) / 1e9));
                out.accept(String.format(Locale.ROOT, "draft  %s: %s; %.2f of the target's bytes per forward (drafts built in %.1f s)",
                        draftSpec, draft, (double) draft.weightBytes() / target.weightBytes(), (System.nanoTime() - t1) / 1e9));
                String shape = o.tree() != null ? "tree " + Arrays.toString(o.tree())
                        : o.adaptiveMax() > 0 ? "adaptive k " + o.adaptiveMin() + ".." + o.adaptiveMax() : "k = " + o.k();
                out.accept(String.format(Locale.ROOT, "%d sequence(s) x %d new tokens after %d-token prompts, %s, %d timed runs "
                        + "(median, min-max; tokens/s include the prompt's prefill)", o.batch(), o.tokens(), o.promptLength(),
                        shape, o.runs()));
                List<int[]> prompts = Arrays.asList(prompts(o.batch(), o.promptLength(), c.vocab(), o.seed()));
                if (!o.samplingOnly())
                    results.add(mode("greedy", SamplingParams.greedy(), o, target, draft, prompts, out));
                if (!o.greedyOnly())
                    results.add(mode(String.format(Locale.ROOT, "sampling T=%.2f", o.temperature()),
                            SamplingParams.temperature(o.temperature()), o, target, draft, prompts, out));
            }
        }
        return results;
    }

    private static ModeResult mode(String name, SamplingParams p, Options o, LlamaModel target, LlamaModel draft,
                                   List<int[]> prompts, java.util.function.Consumer<String> out) {
        boolean greedy = p.isGreedy();
        AutoregressiveDecoder ar = AutoregressiveDecoder.of(target, p, o.seed());
        SpeculativeDecoder.Builder b = SpeculativeDecoder.builder(target, draft).sampling(p).seed(o.seed());
        if (o.tree() != null) b.tree(DraftTree.branching(o.tree()));
        else if (o.adaptiveMax() > 0) b.adaptiveDraftLength(o.adaptiveMin(), o.adaptiveMax());
        else b.draftLength(o.k());
        SpeculativeDecoder sd = b.build();
        // warm-up: JIT and first touch of every buffer
        int warm = Math.min(o.tokens(), 16);
        ar.generate(prompts, warm);
        sd.generate(prompts, warm);
        List<Generation> ars = new ArrayList<>(), sds = new ArrayList<>();
        KernelTimes arT = new KernelTimes(), sdT = new KernelTimes(), sdD = new KernelTimes();
        for (int r = 0; r < o.runs(); r++) {   // interleaved, so both see the same machine
            target.times().reset();
            ars.add(ar.generate(prompts, o.tokens()));
            arT.add(target.times());
            target.times().reset();
            draft.times().reset();
            sds.add(sd.generate(prompts, o.tokens()));
            sdT.add(target.times());
            sdD.add(draft.times());
        }
        Measured mt = measured(ars, arT, null), ms = measured(sds, sdT, sdD);
        boolean equal = true;
        if (greedy) {
            for (Generation g : ars) equal &= same(g.tokens(), ars.get(0).tokens());
            for (Generation g : sds) equal &= same(g.tokens(), ars.get(0).tokens());
        }
        ModeResult res = new ModeResult(name, mt, ms, equal);
        DecodeStats s = ms.median();
        out.accept("");
        out.accept(String.format(Locale.ROOT, "== %s", name));
        out.accept(String.format(Locale.ROOT, "target only : %8.1f tokens/s (%s)", mt.medianTps(), mt.spread()));
        double[] pairs = new double[o.runs()];
        for (int r = 0; r < pairs.length; r++) pairs[r] = ms.tokensPerSecond()[r] / mt.tokensPerSecond()[r];
        Arrays.sort(pairs);
        out.accept(String.format(Locale.ROOT, "speculative : %8.1f tokens/s (%s)  speedup %.2fx (ratio of medians; "
                + "paired runs %.2f-%.2fx)", ms.medianTps(), ms.spread(), res.speedup(), pairs[0], pairs[pairs.length - 1]));
        out.accept(String.format(Locale.ROOT, "acceptance %.1f%% (%d of %d draft tokens), %.2f tokens per target step, "
                        + "%d target steps, %d draft steps", 100 * s.acceptanceRate(), s.draftTokensAccepted(),
                s.draftTokensProposed(), s.tokensPerTargetStep(), s.targetSteps(), s.draftSteps()));
        out.accept(String.format(Locale.ROOT, "speculative wall time: target forward %.0f%% | draft forward + sampling %.0f%% | "
                        + "verification %.0f%% | other %.0f%%", pct(s.targetNanos(), s), pct(s.draftNanos(), s),
                pct(s.verifyNanos(), s), pct(s.totalNanos() - s.targetNanos() - s.draftNanos() - s.verifyNanos(), s)));
        out.accept("  target-only, target kernels: " + mt.target());
        out.accept("  speculative, target kernels: " + ms.target());
        out.accept("  speculative, draft kernels : " + ms.draft());
        if (greedy)
            out.accept(equal ? "greedy outputs equal token for token: yes (" + prompts.size() + " x " + o.tokens() + " tokens, "
                    + o.runs() + " runs of each)" : "greedy outputs equal token for token: NO");
        else
            out.accept("sample of the output (sequence 0, first 16 tokens): target only "
                    + Arrays.toString(Arrays.copyOf(mt.tokens().get(0), Math.min(16, o.tokens()))) + ", speculative "
                    + Arrays.toString(Arrays.copyOf(ms.tokens().get(0), Math.min(16, o.tokens()))));
        return res;
    }

    private static double pct(long part, DecodeStats s) {
        return 100.0 * part / Math.max(1, s.totalNanos());
    }

    private static Measured measured(List<Generation> runs, KernelTimes target, KernelTimes draft) {
        double[] tps = runs.stream().mapToDouble(g -> g.stats().tokensPerSecond()).toArray();
        List<Generation> sorted = new ArrayList<>(runs);
        sorted.sort((x, y) -> Double.compare(x.stats().tokensPerSecond(), y.stats().tokensPerSecond()));
        Generation med = sorted.get(sorted.size() / 2);
        return new Measured(med.stats(), tps, target, draft, runs.get(0).tokens());
    }

    private static boolean same(List<int[]> a, List<int[]> b) {
        if (a.size() != b.size()) return false;
        for (int i = 0; i < a.size(); i++) if (!Arrays.equals(a.get(i), b.get(i))) return false;
        return true;
    }

    /** {@code n} prompts of {@code length} random tokens (seeded). */
    static int[][] prompts(int n, int length, int vocab, long seed) {
        return Agreement.prompts(n, length, vocab, seed);
    }
}
