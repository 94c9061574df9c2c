package dev.isthmus.attention;

import dev.isthmus.Tensor;

/**
 * What {@link KvCache#attention} computes besides Q, K and V: for query head {@code h} (reading KV head
 * {@code h / (queryHeads / kvHeads)}) and each visible key, {@code s = scale * (q . k)}, with a softcap
 * {@code s = softcap * tanh(s / softcap)}, then {@code out = sum softmax(s) * v}.
 *
 * <pre>{@code
 * AttentionParams p = AttentionParams.of(32, 128);              // 32 query heads, scale 1/sqrt(128)
 * AttentionParams gemma = AttentionParams.of(8, 256)
 *         .withScale(1f / 16).withSoftcap(50f).withWindow(4096); // capped logits, sliding window
 * AttentionParams withLse = p.withLse(lse);                     // also write log-sum-exp [T, 32]
 * }</pre>
 *
 * @param queryHeads query heads, a multiple of the cache's kvHeads (GQA; MQA when kvHeads = 1)
 * @param scale      multiplies {@code q . k}: finite and {@code > 0}, usually {@code 1 / sqrt(headDim)}
 * @param softcap    0 for none, else finite and {@code > 0} (Gemma 2 uses 50)
 * @param window     0 for none, else each query sees its {@code window} newest keys (itself included)
 * @param lse        F32 {@code [T, queryHeads]} contiguous, written with the natural log-sum-exp of
 *                   {@code s} for each token and head; or null
 */
public record AttentionParams(int queryHeads, float scale, float softcap, int window, Tensor lse) {

    public AttentionParams {
        if (queryHeads < 1) throw new IllegalArgumentException("queryHeads must be >= 1, got " + queryHeads);
        if (!(scale > 0) || !Float.isFinite(scale))
            throw new IllegalArgumentException("scale must be finite and > 0, got " + scale);
        if (!(softcap >= 0) || !Float.isFinite(softcap))
            throw new IllegalArgumentException("softcap must be 0 (none) or finite and > 0, got " + softcap);
        if (window < 0) throw new IllegalArgumentException("window must be 0 (none) or >= 1, got " + window);
    }

    /** Scale {@code 1 / sqrt(headDim)}, no softcap, no window, no log-sum-exp output. */
    public static AttentionParams of(int queryHeads, int headDim) {
        if (headDim < 1) throw new IllegalArgumentException("headDim must be >= 1, got " + headDim);
        return new AttentionParams(queryHeads, (float) (1 / Math.sqrt(headDim)), 0f, 0, null);
    }

    public AttentionParams withScale(float scale) {
        return new AttentionParams(queryHeads, scale, softcap, window, lse);
    }

    /** 0 removes the cap. */
    public AttentionParams withSoftcap(float softcap) {
        return new AttentionParams(queryHeads, scale, softcap, window, lse);
    }

    /** 0 removes the window. */
    public AttentionParams withWindow(int window) {
        return new AttentionParams(queryHeads, scale, softcap, window, lse);
    }

    /** null stops writing it. */
    public AttentionParams withLse(Tensor lse) {
        return new AttentionParams(queryHeads, scale, softcap, window, lse);
    }
}
