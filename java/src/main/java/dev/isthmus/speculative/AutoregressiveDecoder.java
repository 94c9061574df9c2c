package dev.isthmus.speculative;

import dev.isthmus.Tensor;
import dev.isthmus.attention.Batch;
import dev.isthmus.speculative.Decoding.State;

import java.util.ArrayList;
import java.util.List;

/**
 * Plain decoding with the target model alone, one token per forward pass: the baseline that
 * {@link SpeculativeDecoder} is measured against, with the same {@link Generation} and {@link DecodeStats}.
 * Greedy speculative decoding gives exactly this decoder's greedy tokens.
 *
 * <pre>{@code
 * Generation base = AutoregressiveDecoder.of(target, SamplingParams.greedy(), 0).generate(prompts, 128);
 * Generation fast = SpeculativeDecoder.builder(target, draft).draftLength(4).build().generate(prompts, 128);
 * assert Arrays.equals(base.tokens().get(0), fast.tokens().get(0));
 * double speedup = fast.stats().tokensPerSecond() / base.stats().tokensPerSecond();
 * }</pre>
 *
 * <p>Prefill writes every prompt token but the last; each step feeds the last committed token of every
 * unfinished sequence (one batch), samples the next token with {@link Sampler} (stream = sequence index,
 * step, slot 0; the history is the committed tokens when a repetition penalty is set), and appends it. So
 * after each step the cache holds every committed token but the last, as in {@link SpeculativeDecoder}.
 * Sequences are closed at the end, also on failure.
 */
public final class AutoregressiveDecoder {
    private final LanguageModel model;
    private final SamplingParams sampling;
    private final long seed;
    Decoding.StepListener listener;   // tests

    private AutoregressiveDecoder(LanguageModel model, SamplingParams sampling, long seed) {
        this.model = model;
        this.sampling = sampling;
        this.seed = seed;
    }

    /**
     * A decoder of {@code model} sampling with {@code sampling} under Philox key {@code seed}.
     *
     * @throws IllegalArgumentException if model or sampling is null
     */
    public static AutoregressiveDecoder of(LanguageModel model, SamplingParams sampling, long seed) {
        if (model == null) throw new IllegalArgumentException("model is null");
        if (sampling == null) throw new IllegalArgumentException("sampling is null");
        if (model.vocabSize() < 1 || model.vocabSize() > Sampler.MAX_VOCAB)
            throw new IllegalArgumentException("model.vocabSize() = " + model.vocabSize() + " is not in [1, "
                    + Sampler.MAX_VOCAB + "]");
        return new AutoregressiveDecoder(model, sampling, seed);
    }

    /**
     * Decodes {@code maxNewTokens} new tokens for each prompt, all prompts as one batch.
     *
     * @throws IllegalArgumentException          for bad prompts
     * @throws dev.isthmus.IsthmusException when the cache is full
     */
    public Generation generate(List<int[]> prompts, int maxNewTokens) {
        int vocab = model.vocabSize();
        Decoding.checkPrompts(prompts, vocab, maxNewTokens);
        long start = System.nanoTime();
        long steps = 0, emitted = 0, modelNanos = 0, sampleNanos = 0;
        List<State> states = new ArrayList<>();
        Throwable failure = null;
        Decoding.Buffers buffers = new Decoding.Buffers(1);
        try {
            for (int i = 0; i < prompts.size(); i++) {
                State s = new State(i, prompts.get(i));
                states.add(s);
                s.target = model.cache().newSequence();
            }
            if (maxNewTokens > 0) modelNanos += Decoding.prefill(model, states, false, buffers, 0);
            for (int step = 0; ; step++) {
                List<State> running = new ArrayList<>();
                for (State s : states) if (s.generated() < maxNewTokens) running.add(s);
                if (running.isEmpty()) break;
                int b = running.size();
                Batch.Builder bb = Batch.builder();
                int[] tokens = new int[b];
                long[] streams = new long[b];
                int[][] history = sampling.hasRepetitionPenalty() ? new int[b][] : null;
                for (int i = 0; i < b; i++) {
                    State s = running.get(i);
                    bb.add(s.target, 1);
                    tokens[i] = s.last();
                    streams[i] = Decoding.stream(s.index, step, 0);
                    if (history != null) history[i] = s.committed();
                }
                Batch batch = bb.build();
                model.cache().extend(batch);
                long[] pos = batch.positions();
                Tensor logits = buffers.matrix(0, b, vocab);
                long t0 = System.nanoTime();
                model.forward(batch, tokens, pos, null, null, logits);
                long t1 = System.nanoTime();
                int[] next = Sampler.sample(logits, new SamplingParams[] {sampling}, seed, streams, history, null);
                modelNanos += t1 - t0;
                sampleNanos += System.nanoTime() - t1;
                steps += b;
                List<State> still = new ArrayList<>();
                for (int i = 0; i < b; i++) {
                    State s = running.get(i);
                    s.append(next[i]);
                    emitted++;
                    if (s.generated() < maxNewTokens) still.add(s);
                }
                if (listener != null) listener.afterStep(step, still);
            }
        } catch (RuntimeException | Error e) {
            failure = e;
            throw e;
        } finally {
            Decoding.release(states, failure, buffers);
        }
        List<int[]> out = new ArrayList<>();
        for (State s : states) out.add(s.newTokens());
        return new Generation(out, new DecodeStats(steps, 0, 0, 0, emitted, modelNanos, 0, sampleNanos,
                System.nanoTime() - start));
    }
}
