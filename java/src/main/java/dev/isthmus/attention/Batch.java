package dev.isthmus.attention;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A ragged batch: an ordered list of (sequence, qLen) pairs, all of one {@link KvCache}. Each entry
 * stands for the {@code qLen} newest tokens of its sequence (positions {@code length - qLen} to
 * {@code length - 1}); their rows are stacked in this order in the {@code [T, ...]} tensors of
 * {@link KvCache#write} and {@link KvCache#attention}, {@code T = tokens()}. Immutable.
 *
 * <pre>{@code
 * Batch prefill = Batch.of(seq, promptLength);    // one sequence, its whole prompt
 * Batch decode = Batch.builder()                  // one new token for each of three sequences
 *         .add(a, 1).add(b, 1).add(c, 1).build();
 * cache.extend(decode);                           // make room, then write and attend
 * }</pre>
 */
public final class Batch {
    private final Sequence[] sequences;
    private final int[] qLens;
    private final long tokens;

    private Batch(Sequence[] sequences, int[] qLens) {
        this.sequences = sequences;
        this.qLens = qLens;
        long t = 0;
        for (int q : qLens) t += q;
        this.tokens = t;
    }

    /** The batch of one sequence's {@code qLen} newest tokens. */
    public static Batch of(Sequence sequence, int qLen) {
        return builder().add(sequence, qLen).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Number of entries. */
    public int size() {
        return sequences.length;
    }

    public Sequence sequence(int i) {
        return sequences[i];
    }

    public int qLen(int i) {
        return qLens[i];
    }

    /** T: the sum of the qLens, the rows of the batch's tensors. */
    public long tokens() {
        return tokens;
    }

    /** The cache all sequences belong to. */
    public KvCache cache() {
        return sequences[0].cache();
    }

    /**
     * The position of each of the batch's T tokens, in row order: for each entry the last {@code qLen}
     * positions of its sequence as it is now (so call it after {@link KvCache#extend}). What
     * {@link Rope#apply} needs to rotate Q.
     *
     * @throws IllegalArgumentException if a sequence is shorter than its qLen
     * @throws IllegalStateException    if a sequence was freed or the cache closed
     */
    public long[] positions() {
        return cache().positions(this);
    }

    int[] qLensArray() {
        return qLens;
    }

    @Override
    public String toString() {
        StringBuilder b = new StringBuilder("Batch[");
        for (int i = 0; i < sequences.length; i++) {
            if (i > 0) b.append(", ");
            b.append("seq ").append(sequences[i].id()).append(" x").append(qLens[i]);
        }
        return b.append(']').toString();
    }

    /** Collects entries in order. */
    public static final class Builder {
        private final List<Sequence> sequences = new ArrayList<>();
        private final List<Integer> qLens = new ArrayList<>();

        private Builder() {}

        /**
         * Appends the {@code qLen} newest tokens of {@code sequence}.
         *
         * @throws IllegalArgumentException if qLen {@code < 1}, the sequence is null or of another cache
         */
        public Builder add(Sequence sequence, int qLen) {
            if (sequence == null) throw new IllegalArgumentException("sequence is null");
            if (qLen < 1)
                throw new IllegalArgumentException("qLen must be >= 1, got " + qLen + " for sequence " + sequence.id());
            if (!sequences.isEmpty() && sequences.get(0).cache() != sequence.cache())
                throw new IllegalArgumentException("sequence " + sequence + " belongs to " + sequence.cache()
                        + ", not to " + sequences.get(0).cache() + " like the batch's first sequence");
            sequences.add(sequence);
            qLens.add(qLen);
            return this;
        }

        /** @throws IllegalArgumentException if no entry was added */
        public Batch build() {
            if (sequences.isEmpty()) throw new IllegalArgumentException("batch is empty: add at least one sequence");
            return new Batch(sequences.toArray(new Sequence[0]), qLens.stream().mapToInt(Integer::intValue).toArray());
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Batch b && Arrays.equals(sequences, b.sequences) && Arrays.equals(qLens, b.qLens);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(sequences) + Arrays.hashCode(qLens);
    }
}
