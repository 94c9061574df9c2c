package dev.isthmus.speculative;

import java.util.List;

/**
 * What a decoder's {@code generate} returns: the new tokens of each prompt (in the prompts' order, the
 * prompt itself not included, at most {@code maxNewTokens} each) and the run's {@link DecodeStats}.
 *
 * <pre>{@code
 * Generation g = decoder.generate(List.of(promptA, promptB), 64);
 * int[] continuationOfA = g.tokens().get(0);
 * double speedup = g.stats().tokensPerTargetStep();
 * }</pre>
 *
 * @param tokens new tokens per prompt (unmodifiable list)
 * @param stats  counters and timings of the run
 */
public record Generation(List<int[]> tokens, DecodeStats stats) {
    public Generation {
        if (tokens == null) throw new IllegalArgumentException("tokens is null");
        if (stats == null) throw new IllegalArgumentException("stats is null");
        tokens = List.copyOf(tokens);
    }
}
