/**
 * Speculative decoding: a small draft model proposes tokens, the target model checks them in one forward
 * pass, and the output is exactly what the target alone would give (greedy) or is distributed exactly as
 * the target's own samples (sampling).
 *
 * <ul>
 *   <li>{@link dev.isthmus.speculative.LanguageModel}: what a model provides (vocabulary, its
 *       {@link dev.isthmus.attention.KvCache}, a forward pass over new tokens);</li>
 *   <li>{@link dev.isthmus.speculative.SpeculativeDecoder} and
 *       {@link dev.isthmus.speculative.AutoregressiveDecoder}: the decoding loops, returning a
 *       {@link dev.isthmus.speculative.Generation} with {@link dev.isthmus.speculative.DecodeStats};</li>
 *   <li>{@link dev.isthmus.speculative.SamplingParams} (temperature, top-k, top-p, min-p, repetition
 *       penalty), {@link dev.isthmus.speculative.Sampler} ({@code isthmus_sample}, Philox streams),
 *       {@link dev.isthmus.speculative.DraftTree} (chains and token trees) and
 *       {@link dev.isthmus.speculative.Verifier} ({@code isthmus_verify}): the kernels underneath, usable on
 *       their own.</li>
 * </ul>
 *
 * <pre>{@code
 * LanguageModel target = ..., draft = ...;            // same vocabulary, each with its own KvCache
 * SpeculativeDecoder decoder = SpeculativeDecoder.builder(target, draft)
 *         .adaptiveDraftLength(1, 8)                  // or .draftLength(4), .tree(DraftTree.branching(2, 2, 1))
 *         .sampling(SamplingParams.temperature(0.7f).withTopP(0.9f))
 *         .seed(42)
 *         .build();
 * Generation g = decoder.generate(List.of(prompt), 256);
 * int[] text = g.tokens().get(0);
 * DecodeStats s = g.stats();                          // acceptance rate, tokens per target pass, tokens/s
 * Generation base = AutoregressiveDecoder.of(target, SamplingParams.temperature(0.7f).withTopP(0.9f), 42)
 *         .generate(List.of(prompt), 256);            // the baseline, same stats shape
 * }</pre>
 *
 * <p>Bad arguments are {@link java.lang.IllegalArgumentException}s naming the argument; a full KV cache is
 * the cache's {@link dev.isthmus.IsthmusException} (status {@code CAPACITY}) with the native message.
 */
package dev.isthmus.speculative;
