package dev.isthmus.speculative;

import dev.isthmus.bindings.isthmus_sampling_params;

import java.lang.foreign.MemorySegment;

/**
 * How a distribution over the vocabulary is made from a row of logits, applied in this order
 * (isthmus.h, {@code isthmus_sampling_params}):
 * <ol>
 *   <li>repetition penalty (CTRL / Hugging Face): each distinct token of the row's history has its logit
 *       divided by the penalty when positive, multiplied by it otherwise ({@code 1}: off);</li>
 *   <li>temperature: logits / temperature; {@code 0} is greedy (the argmax, ties to the lowest token id;
 *       the filters below are then ignored and the distribution is one-hot);</li>
 *   <li>top-k ({@code 0}: off): keeps the tokens whose logit is {@code >=} the k-th largest (ties kept);</li>
 *   <li>top-p ({@code 1}: off): of those, the smallest set of most probable tokens whose probability
 *       (renormalized after top-k) sums to {@code >= topP}, and tokens tied with the last one kept;</li>
 *   <li>min-p ({@code 0}: off): of those, the tokens with probability {@code >= minP *} the largest.</li>
 * </ol>
 * The distribution is the softmax over the kept tokens. Immutable; the {@code with...} methods return copies.
 *
 * <pre>{@code
 * SamplingParams greedy = SamplingParams.greedy();
 * SamplingParams nucleus = SamplingParams.temperature(0.8f).withTopP(0.95f);
 * SamplingParams chat = SamplingParams.temperature(0.7f).withTopK(40).withMinP(0.05f)
 *         .withRepetitionPenalty(1.1f);
 * }</pre>
 *
 * @param temperature       finite, {@code >= 0}; {@code 0} is greedy
 * @param topK              {@code >= 0}; {@code 0} is off
 * @param topP              in {@code (0, 1]}; {@code 1} is off
 * @param minP              in {@code [0, 1)}; {@code 0} is off
 * @param repetitionPenalty finite, {@code > 0}; {@code 1} is off
 */
public record SamplingParams(float temperature, int topK, float topP, float minP, float repetitionPenalty) {

    public SamplingParams {
        if (!(temperature >= 0) || !Float.isFinite(temperature))
            throw new IllegalArgumentException("temperature must be finite and >= 0 (0: greedy), got " + temperature);
        if (topK < 0) throw new IllegalArgumentException("topK must be >= 0 (0: off), got " + topK);
        if (!(topP > 0 && topP <= 1))
            throw new IllegalArgumentException("topP must be in (0, 1] (1: off), got " + topP);
        if (!(minP >= 0 && minP < 1))
            throw new IllegalArgumentException("minP must be in [0, 1) (0: off), got " + minP);
        if (!(repetitionPenalty > 0) || !Float.isFinite(repetitionPenalty))
            throw new IllegalArgumentException("repetitionPenalty must be finite and > 0 (1: off), got "
                    + repetitionPenalty);
    }

    /** Temperature 0: always the most likely token (ties to the lowest id). */
    public static SamplingParams greedy() {
        return new SamplingParams(0f, 0, 1f, 0f, 1f);
    }

    /** Plain sampling from softmax(logits / t), no filters ({@code t = 0} is greedy). */
    public static SamplingParams temperature(float t) {
        return new SamplingParams(t, 0, 1f, 0f, 1f);
    }

    /** The same with top-k ({@code 0}: off). */
    public SamplingParams withTopK(int k) {
        return new SamplingParams(temperature, k, topP, minP, repetitionPenalty);
    }

    /** The same with top-p ({@code 1}: off). */
    public SamplingParams withTopP(float p) {
        return new SamplingParams(temperature, topK, p, minP, repetitionPenalty);
    }

    /** The same with min-p ({@code 0}: off). */
    public SamplingParams withMinP(float p) {
        return new SamplingParams(temperature, topK, topP, p, repetitionPenalty);
    }

    /** The same with a repetition penalty ({@code 1}: off). */
    public SamplingParams withRepetitionPenalty(float r) {
        return new SamplingParams(temperature, topK, topP, minP, r);
    }

    /** True for temperature 0. */
    public boolean isGreedy() {
        return temperature == 0f;
    }

    /** True when a repetition penalty is set (a history changes the distribution). */
    public boolean hasRepetitionPenalty() {
        return repetitionPenalty != 1f;
    }

    /** Writes these values into a native {@code isthmus_sampling_params} struct. */
    void toNative(MemorySegment p) {
        isthmus_sampling_params.temperature(p, temperature);
        isthmus_sampling_params.top_k(p, topK);
        isthmus_sampling_params.top_p(p, topP);
        isthmus_sampling_params.min_p(p, minP);
        isthmus_sampling_params.repetition_penalty(p, repetitionPenalty);
        isthmus_sampling_params.reserved(p, 0);
    }
}
