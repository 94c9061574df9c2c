package dev.isthmus.bench.demo;

/** The speculative decoding demo (see {@link #main}). */
public final class Demo {
    private Demo() {}

    /** {@code n} prompts of {@code length} random tokens (seeded). */
    static int[][] prompts(int n, int length, int vocab, long seed) {
        int[][] p = new int[n][length];
        for (int i = 0; i < n; i++) {
            long s = LlamaWeights.mix64(seed * 1_000_003L + i);
            for (int j = 0; j < length; j++) {
                s = LlamaWeights.mix64(s + 0x9E3779B97F4A7C15L);
                p[i][j] = (int) Long.remainderUnsigned(s, vocab);
            }
        }
        return p;
    }
}
