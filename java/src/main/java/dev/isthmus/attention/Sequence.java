package dev.isthmus.attention;

/**
 * A sequence of a {@link KvCache}: a handle (the cache and a native slot id) to a block table that
 * holds the K and V of its tokens in every layer. Its methods are the cache's sequence operations:
 * they change the cache's bookkeeping and wait for calls on other threads to return (see
 * {@link KvCache} on threads).
 *
 * <pre>{@code
 * try (Sequence seq = cache.newSequence()) {
 *     seq.extend(prompt.length);                // room for the prompt (then write K/V into it)
 *     ...
 *     seq.truncate(seq.length() - rejected);    // roll back a rejected speculative suffix
 *     try (Sequence beam = seq.fork()) { ... }  // shares the prefix's blocks, copies on write
 * }                                             // close() frees its blocks
 * }</pre>
 *
 * Using a sequence after {@link #close()} is an {@link IllegalStateException}; passing it to another
 * cache is an {@link IllegalArgumentException}.
 */
public final class Sequence implements AutoCloseable {
    private final KvCache cache;
    private final int id;
    /** Set (under the cache's write lock) when freed, or when the cache closed. */
    volatile boolean freed;

    Sequence(KvCache cache, int id) {
        this.cache = cache;
        this.id = id;
    }

    /** The native slot id (0 to maxSequences - 1); reused by a later sequence once this one is freed. */
    public int id() {
        return id;
    }

    /** The cache this sequence belongs to. */
    public KvCache cache() {
        return cache;
    }

    /** Tokens the sequence holds (positions 0 to length - 1). */
    public long length() {
        return cache.length(this);
    }

    /**
     * Grows the sequence by {@code n >= 1} positions, whose K/V are unspecified until
     * {@link KvCache#write} fills them. All or nothing.
     *
     * @throws dev.isthmus.IsthmusException with status {@link dev.isthmus.IsthmusException#CAPACITY} when
     *         the pool has too few free blocks or the sequence would pass maxSequenceLength
     */
    public void extend(long n) {
        cache.extend(this, n);
    }

    /** Shortens the sequence to {@code length} tokens (0 to the current length), releasing unneeded blocks. */
    public void truncate(long length) {
        cache.truncate(this, length);
    }

    /**
     * Keeps {@code keep.length} of the positions from {@code start} on and drops the rest, in every layer:
     * position {@code start + keep[i]} moves to {@code start + i}, then the sequence is truncated to
     * {@code start + keep.length}. This is how the accepted path of a verified token tree is kept: the nodes
     * were written in tree order after {@code start} (with {@link KvCache#write(int, Batch, dev.isthmus.Tensor,
     * dev.isthmus.Tensor, Rope, long[]) RoPE positions} at their depths), and keeping the root and the path
     * leaves them where plain decoding would have put them. Blocks written into that are shared with a fork are
     * copied first, so a fork never sees the change. An empty {@code keep} is a truncation to {@code start}.
     *
     * <pre>{@code
     * // root at prefix, then 6 tree nodes at prefix + 1 .. prefix + 6; nodes 1 and 4 (slots 2 and 5) accepted
     * seq.compact(prefix, new int[] {0, 2, 5});   // root, node 1, node 4 -> prefix, prefix + 1, prefix + 2
     * }</pre>
     *
     * @param start first position that may move ({@code 0..length()})
     * @param keep  offsets from {@code start}, strictly increasing, each in {@code [0, length() - start)}
     * @throws IllegalArgumentException naming the offending index for a bad start or keep
     * @throws dev.isthmus.IsthmusException with status {@link dev.isthmus.IsthmusException#CAPACITY} when the
     *         blocks shared with a fork cannot be copied (too few free blocks); the cache is then unchanged
     */
    public void compact(long start, int[] keep) {
        cache.compact(this, start, keep);
    }

    /** A new sequence holding this one's tokens: blocks are shared, and a shared partial block is copied on extend. */
    public Sequence fork() {
        return cache.fork(this);
    }

    /** The ids of the pool blocks holding this sequence's tokens, in order. */
    public int[] blocks() {
        return cache.blocks(this);
    }

    /** False once closed (or once its cache closed). */
    public boolean isOpen() {
        return !freed;
    }

    /** Frees the sequence and releases its blocks. Idempotent; does nothing once the cache is closed. */
    @Override
    public void close() {
        cache.free(this);
    }

    @Override
    public String toString() {
        return "sequence " + id + (freed ? " (freed)" : "");
    }
}
