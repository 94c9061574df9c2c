package dev.isthmus.speculative;

/**
 * Counters and timings of one {@code generate} call. Steps are counted per sequence: one forward pass
 * over a batch of 3 sequences counts 3 target steps, so {@link #tokensPerTargetStep()} is 1 for plain
 * autoregressive decoding and {@code 1 +} the mean accepted draft tokens for speculative decoding, whatever
 * the batch size. Prefill passes are not counted as steps, but their time is in the nanos.
 *
 * <pre>{@code
 * Generation g = decoder.generate(prompts, 128);
 * DecodeStats s = g.stats();
 * System.out.printf("accepted %.0f%%, %.2f tokens per target step, %.1f tokens/s%n",
 *         100 * s.acceptanceRate(), s.tokensPerTargetStep(), s.tokensPerSecond());
 * }</pre>
 *
 * @param targetSteps         target forward passes after prefill, counted per sequence
 * @param draftSteps          draft forward passes after prefill, counted per sequence (a tree drafts level
 *                            by level: one pass per level)
 * @param draftTokensProposed draft tokens (tree nodes) handed to verification, summed over sequences
 * @param draftTokensAccepted of those, how many were accepted
 * @param tokensEmitted       new tokens returned, summed over sequences
 * @param targetNanos         wall time inside the target's forward passes (prefill included)
 * @param draftNanos          wall time inside the draft's forward passes and the sampling of draft tokens
 *                            (prefill included)
 * @param verifyNanos         wall time inside verification (or, autoregressive, sampling the target)
 * @param totalNanos          wall time of the whole call
 */
public record DecodeStats(long targetSteps, long draftSteps, long draftTokensProposed, long draftTokensAccepted,
                          long tokensEmitted, long targetNanos, long draftNanos, long verifyNanos, long totalNanos) {

    /** Accepted over proposed draft tokens; 0 when none were proposed (autoregressive decoding). */
    public double acceptanceRate() {
        return draftTokensProposed == 0 ? 0 : (double) draftTokensAccepted / draftTokensProposed;
    }

    /** Emitted tokens per (per-sequence) target step; 0 when there was no step. */
    public double tokensPerTargetStep() {
        return targetSteps == 0 ? 0 : (double) tokensEmitted / targetSteps;
    }

    /** Emitted tokens per second of {@link #totalNanos()}; 0 when no time was measured. */
    public double tokensPerSecond() {
        return totalNanos <= 0 ? 0 : tokensEmitted * 1e9 / totalNanos;
    }
}
