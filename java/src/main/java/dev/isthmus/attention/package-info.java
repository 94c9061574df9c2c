/**
 * Attention over a paged KV cache, with rotary position embedding.
 *
 * <p>{@link dev.isthmus.attention.KvConfig} sizes a {@link dev.isthmus.attention.KvCache}: a pool of
 * fixed-size blocks holding K and V ({@link dev.isthmus.attention.KvType}: F32, F16, BF16 or INT8) for
 * every layer, shared by {@link dev.isthmus.attention.Sequence}s through block tables (forks share
 * blocks, copy on write). A {@link dev.isthmus.attention.Batch} names the newest tokens of several
 * sequences; for each layer {@link dev.isthmus.attention.KvCache#write} stores their K and V (K rotated
 * by a {@link dev.isthmus.attention.Rope}), {@link dev.isthmus.attention.Rope#apply} rotates Q, and
 * {@link dev.isthmus.attention.KvCache#attention} computes causal attention (GQA, softcap, sliding
 * window, log-sum-exp; {@link dev.isthmus.attention.AttentionParams}).
 *
 * <p>A decode loop: prefill a prompt, then one token per step; roll back a rejected speculative
 * suffix with {@code truncate}, branch beams with {@code fork}:
 *
 * <pre>{@code
 * KvConfig config = KvConfig.builder()
 *         .layers(layers).kvHeads(kvHeads).headDim(headDim)
 *         .numBlocks(256).maxSequences(4).maxSequenceLength(1024)
 *         .build();                                                 // blocks of 16 tokens, stored as F16
 * Rope rope = Rope.half(500_000);                                   // Llama 3
 * AttentionParams params = AttentionParams.of(qHeads, headDim);     // GQA: qHeads = kvHeads * group
 * try (KvCache cache = KvCache.create(config);
 *      Sequence seq = cache.newSequence()) {
 *     Batch batch = Batch.of(seq, prompt.length);                   // prefill: the whole prompt at once
 *     int[] input = prompt;
 *     for (int step = 0; step < steps; step++) {
 *         cache.extend(batch);                                      // room for the new tokens
 *         long[] pos = batch.positions();                           // where they are in the sequence
 *         try (Tensor q = Tensor.allocate(DType.F32, batch.tokens(), qHeads * headDim);
 *              Tensor k = Tensor.allocate(DType.F32, batch.tokens(), kvHeads * headDim);
 *              Tensor v = Tensor.allocate(DType.F32, batch.tokens(), kvHeads * headDim)) {
 *             model.embed(input);
 *             for (int layer = 0; layer < layers; layer++) {
 *                 model.qkv(layer, q, k, v);                        // your projections
 *                 cache.write(layer, batch, k, v, rope);            // K rotated at its positions, stored
 *                 Rope.apply(q, qHeads, pos, rope);                 // Q rotated the same way
 *                 cache.attention(layer, batch, q, q, params);      // out may be q itself
 *                 model.mix(layer, q);                              // output projection, MLP, ...
 *             }
 *         }
 *         input = new int[] {model.sample()};
 *         batch = Batch.of(seq, 1);                                 // decode: one token per step
 *     }
 *     seq.truncate(seq.length() - 2);                               // roll back a rejected 2-token suffix
 *     try (Sequence beam = seq.fork()) {                            // a beam: shares seq's blocks
 *         Batch both = Batch.builder().add(seq, 1).add(beam, 1).build();
 *         cache.extend(both);                                       // copies the shared partial block
 *         // ... write and attend as above, with 2 rows: one per beam
 *     }
 * }
 * }</pre>
 *
 * A full pool is an {@link dev.isthmus.IsthmusException} whose
 * {@link dev.isthmus.IsthmusException#status() status} is {@link dev.isthmus.IsthmusException#CAPACITY}
 * (the cache unchanged): free or truncate sequences, or preempt one, and retry.
 */
package dev.isthmus.attention;
