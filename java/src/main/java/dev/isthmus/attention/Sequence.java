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
