package dev.isthmus.speculative;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_sample_args;
import dev.isthmus.bindings.isthmus_sampling_params;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Native;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Draws one token per row of logits ({@code isthmus_sample}): the row's distribution is made as
 * {@link SamplingParams} says, and the token is drawn from it by inverse CDF with a uniform from a
 * Philox4x32-10 counter stream. Row {@code r} uses draw 0 of stream {@code streams[r]} under key
 * {@code seed}, so a row's token depends only on (its logits, its params, its history, seed, its stream):
 * not on the other rows of the batch, the thread count or the ISA variant (bit-identical everywhere).
 * Name streams after what a row is, e.g. {@code sequence << 32 | step}, to make a run reproducible.
 *
 * <pre>{@code
 * try (Tensor logits = Tensor.of(rowsOfLogits, rows, vocab)) {                  // F32 [rows, vocab]
 *     int[] next = Sampler.sample(logits, SamplingParams.temperature(0.8f).withTopP(0.9f),
 *             42L, new long[] {0, 1, 2});                                        // one stream per row
 *     int[] greedy = Sampler.sample(logits, SamplingParams.greedy(), 0, new long[3]);
 *     double u = Sampler.uniform(42L, 0, 0);      // the uniform row 0 used above, in [0, 1)
 * }
 * }</pre>
 *
 * <p>Bad inputs ({@link IllegalArgumentException} naming the argument): a non-F32 or non-matrix logits
 * tensor, streams or params of the wrong length, history tokens out of range, a probsOut of the wrong
 * shape or overlapping logits, NaN or {@code +inf} logits, a row with every logit {@code -inf}.
 */
public final class Sampler {
    private Sampler() {}

    /** Largest vocabulary (ISTHMUS_MAX_VOCAB). */
    public static final int MAX_VOCAB = 1 << 24;

    /**
     * One token per row of {@code logits}, every row with the same params and no history.
     *
     * @param logits  F32 {@code [rows, vocab]}, rows contiguous (any row stride)
     * @param params  how to turn a row into a distribution
     * @param seed    the Philox key
     * @param streams {@code [rows]}: the stream of each row
     * @return {@code [rows]} token ids
     */
    public static int[] sample(Tensor logits, SamplingParams params, long seed, long[] streams) {
        Checks.notNull(params, "params");
        return sample(logits, new SamplingParams[] {params}, seed, streams, null, null);
    }

    /**
     * One token per row, with per-row params, an optional history per row (for the repetition penalty),
     * and optionally the distributions themselves.
     *
     * @param logits   F32 {@code [rows, vocab]}, rows contiguous (any row stride)
     * @param perRow   {@code [rows]} params, or one entry shared by every row
     * @param seed     the Philox key
     * @param streams  {@code [rows]}: the stream of each row
     * @param history  {@code [rows][]} the tokens each row's repetition penalty applies to (a null row is
     *                 empty), or null for none
     * @param probsOut F32 {@code [rows, vocab]} written with each row's distribution (0 for removed tokens;
     *                 what {@link Verifier} takes as probabilities), or null
     * @return {@code [rows]} token ids
     */
    public static int[] sample(Tensor logits, SamplingParams[] perRow, long seed, long[] streams, int[][] history,
                               Tensor probsOut) {
        Native.ensureLoaded(); // the bindings look symbols up in what the loader loaded
        Checks.matrix(logits, "logits", DType.F32);
        long rows = logits.dim(0), vocab = logits.dim(1);
        if (vocab > MAX_VOCAB)
            throw new IllegalArgumentException("logits " + Checks.shape(logits) + " has a vocabulary larger than "
                    + MAX_VOCAB);
        Checks.notNull(perRow, "perRow");
        if (perRow.length != 1 && perRow.length != rows)
            throw new IllegalArgumentException("perRow has " + perRow.length + " entries: it needs one per row of logits "
                    + Checks.shape(logits) + ", or a single shared one");
        for (int i = 0; i < perRow.length; i++) Checks.notNull(perRow[i], "perRow[" + i + "]");
        Checks.notNull(streams, "streams");
        if (streams.length != rows)
            throw new IllegalArgumentException("streams has " + streams.length + " entries but logits "
                    + Checks.shape(logits) + " has " + rows + " rows");
        if (history != null) checkHistory(history, (int) rows, vocab);
        long ldp = 0;
        if (probsOut != null) {
            Checks.output(probsOut, "probsOut", DType.F32);
            if (probsOut.dim(0) != rows || probsOut.dim(1) != vocab)
                throw new IllegalArgumentException("probsOut must be F32[" + rows + ", " + vocab + "] like logits but is "
                        + Checks.shape(probsOut));
            Checks.noOverlap(probsOut, "probsOut", logits, "logits");
            ldp = ld(probsOut);
        }
        int n = Math.toIntExact(rows);
        try (Arena call = Arena.ofConfined();
             Tensor.Lease ll = logits.lease();
             Tensor.Lease lp = probsOut == null ? Tensor.Lease.NONE : probsOut.lease()) {
            MemorySegment params = isthmus_sampling_params.allocateArray(perRow.length, call);
            for (int i = 0; i < perRow.length; i++) perRow[i].toNative(isthmus_sampling_params.asSlice(params, i));
            MemorySegment tokens = call.allocate(ValueLayout.JAVA_INT, n);
            MemorySegment a = isthmus_sample_args.allocate(call);
            isthmus_sample_args.rows(a, rows);
            isthmus_sample_args.vocab(a, vocab);
            isthmus_sample_args.logits(a, logits.segment());
            isthmus_sample_args.ld(a, ld(logits));
            isthmus_sample_args.params(a, params);
            isthmus_sample_args.params_per_row(a, perRow.length == 1 && rows != 1 ? 0 : 1);
            isthmus_sample_args.reserved(a, 0);
            if (history != null) {
                long[] offsets = new long[n + 1];
                for (int r = 0; r < n; r++) offsets[r + 1] = offsets[r] + (history[r] == null ? 0 : history[r].length);
                MemorySegment h = call.allocate(ValueLayout.JAVA_INT, Math.max(1, offsets[n]));
                for (int r = 0; r < n; r++)
                    if (history[r] != null && history[r].length > 0)
                        MemorySegment.copy(history[r], 0, h, ValueLayout.JAVA_INT, offsets[r] * 4, history[r].length);
                isthmus_sample_args.history(a, h);
                isthmus_sample_args.history_offsets(a, call.allocateFrom(ValueLayout.JAVA_LONG, offsets));
            } else {
                isthmus_sample_args.history(a, MemorySegment.NULL);
                isthmus_sample_args.history_offsets(a, MemorySegment.NULL);
            }
            isthmus_sample_args.seed(a, seed);
            isthmus_sample_args.streams(a, call.allocateFrom(ValueLayout.JAVA_LONG, streams));
            isthmus_sample_args.tokens(a, tokens);
            isthmus_sample_args.probs(a, probsOut == null ? MemorySegment.NULL : probsOut.segment());
            isthmus_sample_args.ldp(a, probsOut == null ? 0 : ldp);
            Native.checkInput(Isthmus.isthmus_sample(a), "Sampler.sample", "logits " + Checks.shape(logits),
                    "NaN", "nan", "inf", "finite");
            return tokens.toArray(ValueLayout.JAVA_INT);
        }
    }

    /**
     * The uniform in {@code [0, 1)} that draw {@code draw} (an unsigned 32-bit counter) of {@code stream}
     * gives under key {@code seed} ({@code isthmus_philox_uniform}): Philox4x32-10 with counter
     * {@code {lo32(stream), hi32(stream), draw, 0}}, 53 bits from the first two output words. Row {@code r}
     * of {@link #sample} uses {@code uniform(seed, streams[r], 0)}.
     */
    public static double uniform(long seed, long stream, int draw) {
        Native.ensureLoaded();
        return Isthmus.isthmus_philox_uniform(seed, stream, draw);
    }

    static long ld(Tensor t) {
        return t.dim(0) > 1 ? t.stride(0) : t.dim(1);
    }

    private static void checkHistory(int[][] history, int rows, long vocab) {
        if (history.length != rows)
            throw new IllegalArgumentException("history has " + history.length + " rows but logits has " + rows);
        for (int r = 0; r < rows; r++) {
            if (history[r] == null) continue;
            for (int i = 0; i < history[r].length; i++) {
                int t = history[r][i];
                if (t < 0 || t >= vocab)
                    throw new IllegalArgumentException("history[" + r + "][" + i + "] = " + t
                            + " is not a token id in [0, " + vocab + ")");
            }
        }
    }
}
