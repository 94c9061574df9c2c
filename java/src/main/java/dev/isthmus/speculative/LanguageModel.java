package dev.isthmus.speculative;

import dev.isthmus.Tensor;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.KvCache;

/**
 * A decoder-only language model as {@code SpeculativeDecoder} drives it: the model keeps its keys and
 * values in {@link #cache()}, and {@link #forward} runs it over new tokens whose slots the caller has
 * already made with {@code cache().extend(batch)}. The decoder owns the cache bookkeeping (extend,
 * truncate, compact); the model only writes the new tokens' K/V and computes logits.
 *
 * <p>Implementations must be deterministic: the same tokens against the same cache contents give the
 * same logits, whatever else is in the batch. Greedy speculative decoding is then token-for-token equal
 * to greedy decoding with the target alone.
 *
 * <pre>{@code
 * final class MyModel implements LanguageModel {
 *     private final KvCache cache = KvCache.create(config);          // one per model
 *     public int vocabSize() { return vocab; }
 *     public KvCache cache() { return cache; }
 *     public void forward(Batch batch, int[] tokens, long[] positions, int[] treeParents, int[] logitRows,
 *                         Tensor logits) {
 *         // embed tokens; for each layer: Q, K, V projections, then
 *         //   cache.write(layer, batch, k, v, rope, positions);        // K rotated at its position
 *         //   Rope.apply(q, qHeads, positions, rope);
 *         //   cache.attention(layer, batch, q, q, params, treeParents); // the tree mask when given
 *         // final norm; logits of the rows in logitRows (all rows when null) into `logits`
 *     }
 * }
 * }</pre>
 */
public interface LanguageModel {

    /** Number of tokens in the vocabulary (the width of a logits row). */
    int vocabSize();

    /** The KV cache this model reads and writes; sequences of a batch belong to it. */
    KvCache cache();

    /**
     * Runs the model over the new tokens of {@code batch}: for each sequence {@code i}, its last
     * {@code batch.qLen(i)} slots (made by {@code cache().extend(batch)} before the call) receive these
     * tokens' keys and values, and the requested rows of logits are written.
     *
     * @param batch       sequences of {@link #cache()} and how many new tokens each has
     * @param tokens      {@code [batch.tokens()]} the new tokens, stacked in batch order
     * @param positions   {@code [batch.tokens()]} the RoPE position of each new token:
     *                    {@code batch.positions()} for a chain; prefix length + depth in a token tree
     * @param treeParents {@code [batch.tokens()]} or {@code null} (causal): for each new token, the index
     *                    of its parent among the same sequence's new tokens, {@code -1} for the cached
     *                    prefix (the tree attention mask; see {@code KvCache.attention})
     * @param logitRows   ascending indices into the batch's new tokens whose logits are wanted, or
     *                    {@code null} for all of them
     * @param logits      {@code [logitRows.length or batch.tokens(), vocabSize()]} F32, written
     */
    void forward(Batch batch, int[] tokens, long[] positions, int[] treeParents, int[] logitRows,
                 Tensor logits);
}
