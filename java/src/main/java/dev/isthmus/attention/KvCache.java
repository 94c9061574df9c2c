package dev.isthmus.attention;

import dev.isthmus.DType;
import dev.isthmus.IsthmusException;
import dev.isthmus.Tensor;
import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_attention_args;
import dev.isthmus.bindings.isthmus_kv_read_args;
import dev.isthmus.bindings.isthmus_kv_stats;
import dev.isthmus.bindings.isthmus_kv_write_args;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Native;
import dev.isthmus.internal.Resources;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A paged KV cache for the attention layers of one model, and the attention that reads it. Blocks of
 * {@link KvConfig#blockSize()} tokens come from a fixed pool; each {@link Sequence} has a block table,
 * shared by all layers; {@link Sequence#fork() forks} share blocks and copy a shared partial block when
 * either side extends into it. All memory (pool and bookkeeping, 64-byte aligned) is allocated once by
 * {@link #create} and freed by {@link #close()}.
 *
 * <p>A decoding step, per batch of sequences: {@link #extend} makes room for the batch's new tokens;
 * for each layer, {@link #write} stores their K and V (rotating K with RoPE on the way),
 * {@link Rope#apply} rotates Q, and {@link #attention} lets each new token attend to its sequence's
 * tokens up to and including itself (causal). Prefill is the same step with the whole prompt:
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
 * <p><b>Threads.</b> {@link #write}, {@link #read}, {@link #attention}, {@link #stats} and the
 * queries of {@link Sequence} run concurrently with each other (writes to distinct sequences); the
 * sequence operations ({@link #newSequence}, {@link #fork}, {@link #extend}, {@link Sequence#truncate},
 * {@link Sequence#compact}, {@link Sequence#close}) change the bookkeeping and wait until those calls return
 * (a read-write lock).
 * {@link #close()} fails with {@link IllegalStateException} while another thread is inside a call,
 * and every call after it fails the same way.
 *
 * <p><b>Errors.</b> Wrong shapes, dtypes, layers, freed sequences, closed tensors: an
 * {@link IllegalArgumentException} or {@link IllegalStateException} naming the argument, before any
 * native code runs. A full pool: an {@link IsthmusException} with status
 * {@link IsthmusException#CAPACITY}, the cache unchanged.
 */
public final class KvCache implements AutoCloseable {
    private final KvConfig config;
    private final Arena arena;
    private final MemorySegment state;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** Live sequences by id (guarded by lock). */
    private final Sequence[] live;
    private volatile boolean closed;

    /** The accounting record ({@link dev.isthmus.Isthmus#memoryStats()}). */
    private final Resources.Handle handle;

    private KvCache(KvConfig config, Arena arena, MemorySegment state, long bytes) {
        this.config = config;
        this.arena = arena;
        this.state = state;
        this.live = new Sequence[config.maxSequences()];
        String what = toString();
        this.handle = Resources.open(this, "KvCache", bytes, () -> what);
    }

    /**
     * Allocates the pool ({@link KvConfig#poolBytes()}) and the bookkeeping, and initializes an empty
     * cache. The pool comes from the C allocator untouched (not zeroed: a position holds unspecified values
     * until it is written), so the library can ask for transparent huge pages before its first write; an
     * {@code Arena} allocation zeroes, which maps 4 KB pages, and decode then pays a TLB miss every few KB.
     * Both are freed by {@link #close()}.
     *
     * @throws IsthmusException if the library refuses the configuration (e.g. a pool too large to address)
     * @throws OutOfMemoryError if the pool cannot be allocated
     */
    public static KvCache create(KvConfig config) {
        Checks.notNull(config, "config");
        long[] sizes = config.sizes();
        Arena arena = Arena.ofShared();
        try (Arena call = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(Math.max(sizes[0], 1), 64);
            MemorySegment pool = untouched(Math.max(sizes[1], 1), arena);
            Native.check(Isthmus.isthmus_kv_init(config.toNative(call), state, sizes[0], pool, sizes[1]),
                    "KvCache.create");
            return new KvCache(config, arena, state, state.byteSize() + pool.byteSize());
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    private static final MethodHandle ALIGNED_ALLOC, FREE;
    static {
        Linker linker = Linker.nativeLinker();
        SymbolLookup libc = linker.defaultLookup();
        ALIGNED_ALLOC = linker.downcallHandle(libc.find("aligned_alloc").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
        FREE = linker.downcallHandle(libc.find("free").orElseThrow(), FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));
    }

    /** bytes (rounded up to 2 MiB, a multiple of the alignment) from aligned_alloc, freed when arena closes. */
    private static MemorySegment untouched(long bytes, Arena arena) {
        long size = (bytes + (1L << 21) - 1) & -(1L << 21);
        MemorySegment raw;
        try {
            raw = (MemorySegment) ALIGNED_ALLOC.invokeExact(1L << 21, size);
        } catch (Throwable t) {
            throw new IllegalStateException("KvCache: aligned_alloc failed", t);
        }
        if (raw.equals(MemorySegment.NULL))
            throw new OutOfMemoryError("KvCache: cannot allocate " + bytes + " bytes for the KV pool");
        return raw.reinterpret(bytes, arena, seg -> {
            try {
                FREE.invokeExact(seg);
            } catch (Throwable t) {
                throw new IllegalStateException("KvCache: free failed", t);
            }
        });
    }

    public KvConfig config() {
        return config;
    }

    /** False once {@link #close()} has freed the cache. */
    public boolean isOpen() {
        return !closed;
    }

    // ------------------------------------------------------------------ sequence operations (write lock)

    /**
     * A new empty sequence.
     *
     * @throws IsthmusException with status {@link IsthmusException#CAPACITY} when all maxSequences slots are in use
     */
    public Sequence newSequence() {
        Lock l = enter(lock.writeLock());
        try (Arena call = Arena.ofConfined()) {
            MemorySegment id = call.allocate(ValueLayout.JAVA_INT);
            Native.check(Isthmus.isthmus_kv_seq_create(state, id), "KvCache.newSequence");
            return register(id.get(ValueLayout.JAVA_INT, 0));
        } finally {
            l.unlock();
        }
    }

    /**
     * A new sequence holding {@code parent}'s tokens: their blocks are shared (reference-counted), and a
     * shared partial last block is copied, in every layer, when either sequence first extends into it.
     *
     * @throws IsthmusException with status {@link IsthmusException#CAPACITY} when all maxSequences slots are in use
     */
    public Sequence fork(Sequence parent) {
        Lock l = enter(lock.writeLock());
        try (Arena call = Arena.ofConfined()) {
            checkLive(parent, "parent");
            MemorySegment id = call.allocate(ValueLayout.JAVA_INT);
            Native.check(Isthmus.isthmus_kv_seq_fork(state, parent.id(), id), "KvCache.fork");
            return register(id.get(ValueLayout.JAVA_INT, 0));
        } finally {
            l.unlock();
        }
    }

    private Sequence register(int id) {
        if (id < 0 || id >= live.length || live[id] != null)
            throw new IsthmusException("KvCache", IsthmusException.INTERNAL, "the library returned sequence id " + id
                    + ", which is " + (id < 0 || id >= live.length ? "out of range" : "already live"));
        Sequence s = new Sequence(this, id);
        live[id] = s;
        return s;
    }

    /**
     * Grows each sequence of the batch by its qLen: afterwards, the batch's tokens are the newest
     * positions of their sequences, ready for {@link #write}. All or nothing: when one sequence cannot
     * grow, the ones already extended are truncated back, so every length is as before (a partial last
     * block that was shared with a fork may stay copied).
     *
     * @throws IllegalArgumentException if a sequence appears twice (extend it once by the sum)
     * @throws IsthmusException         with status {@link IsthmusException#CAPACITY} when the pool has too few
     *                                  free blocks or a sequence would pass maxSequenceLength
     */
    public void extend(Batch batch) {
        Lock l = enter(lock.writeLock());
        try (Arena call = Arena.ofConfined()) {
            checkBatch(batch, true, false, call);
            long[] before = new long[batch.size()];
            for (int i = 0; i < batch.size(); i++) {
                int id = batch.sequence(i).id();
                before[i] = length(id, call);
                try {
                    Native.check(Isthmus.isthmus_kv_seq_extend(state, id, batch.qLen(i)), "KvCache.extend");
                } catch (IsthmusException e) {
                    for (int j = i - 1; j >= 0; j--) {
                        int status = Isthmus.isthmus_kv_seq_truncate(state, batch.sequence(j).id(), before[j]);
                        if (status != Isthmus.ISTHMUS_OK())
                            e.addSuppressed(new IsthmusException("KvCache.extend rollback of " + batch.sequence(j),
                                    status, Isthmus.isthmus_last_error().getString(0)));
                    }
                    throw e;
                }
            }
        } finally {
            l.unlock();
        }
    }

    void extend(Sequence s, long n) {
        Lock l = enter(lock.writeLock());
        try {
            checkLive(s, "sequence");
            if (n < 1) throw new IllegalArgumentException("n must be >= 1, got " + n + " for " + s);
            Native.check(Isthmus.isthmus_kv_seq_extend(state, s.id(), n), "Sequence.extend");
        } finally {
            l.unlock();
        }
    }

    void truncate(Sequence s, long length) {
        Lock l = enter(lock.writeLock());
        try (Arena call = Arena.ofConfined()) {
            checkLive(s, "sequence");
            long now = length(s.id(), call);
            if (length < 0 || length > now)
                throw new IllegalArgumentException("length " + length + " is outside [0, " + now + "], the range "
                        + s + " can be truncated to");
            Native.check(Isthmus.isthmus_kv_seq_truncate(state, s.id(), length), "Sequence.truncate");
        } finally {
            l.unlock();
        }
    }

    void compact(Sequence s, long start, int[] keep) {
        Lock l = enter(lock.writeLock());
        try (Arena call = Arena.ofConfined()) {
            checkLive(s, "sequence");
            Checks.notNull(keep, "keep");
            long now = length(s.id(), call);
            if (start < 0 || start > now)
                throw new IllegalArgumentException("start " + start + " is outside [0, " + now + "], the positions of "
                        + s);
            if (keep.length > now - start)
                throw new IllegalArgumentException("keep has " + keep.length + " entries but " + s + " holds only "
                        + (now - start) + " positions from start " + start);
            for (int i = 0; i < keep.length; i++) {
                if (keep[i] < 0 || keep[i] >= now - start)
                    throw new IllegalArgumentException("keep[" + i + "] = " + keep[i] + " is outside [0, " + (now - start)
                            + "), the positions of " + s + " from start " + start + " (length " + now + ")");
                if (i > 0 && keep[i] <= keep[i - 1])
                    throw new IllegalArgumentException("keep[" + i + "] = " + keep[i] + " follows keep[" + (i - 1) + "] = "
                            + keep[i - 1] + ": keep must be strictly increasing");
            }
            MemorySegment k = keep.length == 0 ? MemorySegment.NULL : call.allocateFrom(ValueLayout.JAVA_INT, keep);
            Native.check(Isthmus.isthmus_kv_seq_compact(state, s.id(), start, k, keep.length), "Sequence.compact");
        } finally {
            l.unlock();
        }
    }

    void free(Sequence s) {
        if (s.freed || closed) return;
        lock.writeLock().lock();
        try {
            if (s.freed || closed) return;
            Native.check(Isthmus.isthmus_kv_seq_free(state, s.id()), "Sequence.close");
            live[s.id()] = null;
            s.freed = true;
        } finally {
            lock.writeLock().unlock();
        }
    }

    // ------------------------------------------------------------------ queries (read lock)

    long length(Sequence s) {
        Lock l = enter(lock.readLock());
        try (Arena call = Arena.ofConfined()) {
            checkLive(s, "sequence");
            return length(s.id(), call);
        } finally {
            l.unlock();
        }
    }

    int[] blocks(Sequence s) {
        Lock l = enter(lock.readLock());
        try (Arena call = Arena.ofConfined()) {
            checkLive(s, "sequence");
            long len = length(s.id(), call);
            long capacity = Math.max(1, (len + config.blockSize() - 1) / config.blockSize());
            MemorySegment ids = call.allocate(ValueLayout.JAVA_INT, capacity);
            MemorySegment count = call.allocate(ValueLayout.JAVA_LONG);
            Native.check(Isthmus.isthmus_kv_seq_blocks(state, s.id(), ids, capacity, count), "Sequence.blocks");
            long n = Math.min(capacity, count.get(ValueLayout.JAVA_LONG, 0));
            return ids.asSlice(0, n * 4).toArray(ValueLayout.JAVA_INT);
        } finally {
            l.unlock();
        }
    }

    long[] positions(Batch batch) {
        Lock l = enter(lock.readLock());
        try (Arena call = Arena.ofConfined()) {
            long[] len = checkBatch(batch, false, true, call);
            long[] pos = new long[Math.toIntExact(batch.tokens())];
            int t = 0;
            for (int i = 0; i < batch.size(); i++)
                for (long p = len[i] - batch.qLen(i); p < len[i]; p++) pos[t++] = p;
            return pos;
        } finally {
            l.unlock();
        }
    }

    /** Pool accounting: free and used blocks, live sequences, blocks shared by forks, tokens held. */
    public record Stats(int freeBlocks, int usedBlocks, int liveSequences, int sharedBlocks, long tokens) {}

    public Stats stats() {
        Lock l = enter(lock.readLock());
        try (Arena call = Arena.ofConfined()) {
            MemorySegment s = isthmus_kv_stats.allocate(call);
            Native.check(Isthmus.isthmus_kv_get_stats(state, s), "KvCache.stats");
            return new Stats(isthmus_kv_stats.free_blocks(s), isthmus_kv_stats.used_blocks(s),
                    isthmus_kv_stats.live_seqs(s), isthmus_kv_stats.shared_blocks(s), isthmus_kv_stats.tokens(s));
        } finally {
            l.unlock();
        }
    }

    // ------------------------------------------------------------------ data (read lock)

    /**
     * Stores the K and V of the batch's tokens (the newest qLen positions of each sequence, made by
     * {@link #extend}) in {@code layer}, rotating K with {@code rope} at its position first (V never).
     * Sequences must be distinct. Writes to distinct sequences may run on many threads at once.
     *
     * @param k    F32 {@code [T, kvHeads * headDim]} or {@code [T, kvHeads, headDim]}, T = batch.tokens();
     *             rows may be strided (a view of a fused QKV buffer)
     * @param v    as k
     * @param rope {@link Rope#NONE} to store K as given
     * @throws IllegalArgumentException also for NaN or infinite values in k or v (every {@link KvType}: the cache
     *                                  holds finite values only; nothing is written), for values an F16 or BF16
     *                                  cache would round to infinity ({@code |x| >= 65520}, {@code >= 0x1.ffp127}),
     *                                  and for positions in a
     *                                  block still shared with a fork (only {@link #extend} makes positions a
     *                                  sequence's own)
     */
    public void write(int layer, Batch batch, Tensor k, Tensor v, Rope rope) {
        write(layer, batch, k, v, rope, null);
    }

    /**
     * As {@link #write(int, Batch, Tensor, Tensor, Rope)}, rotating K row {@code r} at {@code positions[r]}
     * instead of at its slot in the sequence. A token tree (speculative decoding) stores node {@code j} at slot
     * {@code prefix + j} but rotates it at {@code prefix + depth(j)}, so that {@link Sequence#compact} leaves an
     * accepted path with the rotation it would have had as plain tokens.
     *
     * @param positions one RoPE position per row of the batch ({@code batch.tokens()} entries, each in
     *                  {@code [0, 2^40]}), or null for the slots (the 5-argument form); ignored with
     *                  {@link Rope#NONE} apart from these checks
     * @throws IllegalArgumentException for a positions array of the wrong length or with an entry out of range,
     *                                  naming the index, besides the cases of the 5-argument form
     */
    public void write(int layer, Batch batch, Tensor k, Tensor v, Rope rope, long[] positions) {
        Lock l = enter(lock.readLock());
        try (Arena call = Arena.ofConfined()) {
            checkLayer(layer);
            int[] ids = checkBatchIds(batch, true, call);
            long t = batch.tokens();
            long ldk = Checks.headRows(k, "k", t, config.kvHeads(), config.headDim());
            long ldv = Checks.headRows(v, "v", t, config.kvHeads(), config.headDim());
            Checks.notNull(rope, "rope");
            rope.check(config.headDim(), "the cache");
            if (positions != null) {
                if (positions.length != t)
                    throw new IllegalArgumentException("positions has " + positions.length + " entries but batch " + batch
                            + " has " + t + " tokens (one RoPE position per row)");
                for (int r = 0; r < positions.length; r++)
                    if (positions[r] < 0 || positions[r] > (1L << 40))
                        throw new IllegalArgumentException("positions[" + r + "] = " + positions[r]
                                + " is outside [0, 2^40]");
            }
            try (Tensor.Lease lk = k.lease(); Tensor.Lease lv = v.lease()) {
                MemorySegment a = isthmus_kv_write_args.allocate(call);
                isthmus_kv_write_args.kv(a, state);
                isthmus_kv_write_args.layer(a, layer);
                isthmus_kv_write_args.n_seqs(a, batch.size());
                isthmus_kv_write_args.seqs(a, call.allocateFrom(ValueLayout.JAVA_INT, ids));
                isthmus_kv_write_args.n_tokens(a, call.allocateFrom(ValueLayout.JAVA_INT, batch.qLensArray()));
                isthmus_kv_write_args.k(a, k.segment());
                isthmus_kv_write_args.ldk(a, ldk);
                isthmus_kv_write_args.v(a, v.segment());
                isthmus_kv_write_args.ldv(a, ldv);
                rope.toNative(isthmus_kv_write_args.rope(a));
                isthmus_kv_write_args.positions(a, positions == null ? MemorySegment.NULL
                        : call.allocateFrom(ValueLayout.JAVA_LONG, positions));
                int status = Isthmus.isthmus_kv_write(a);
                if (status != Isthmus.ISTHMUS_OK()) {
                    String msg = Isthmus.isthmus_last_error().getString(0);
                    if (status == Isthmus.ISTHMUS_ERR_INVALID_ARGUMENT() && msg.contains("shared with a fork"))
                        throw new IllegalArgumentException("batch " + batch + ": " + msg + " (extend the sequence, which "
                                + "copies a shared block, before writing)");
                    Native.checkInput(status, "KvCache.write", "k " + Checks.shape(k) + " or v " + Checks.shape(v),
                            "NaN", "infinit", "rounds to inf");
                }
            }
        } finally {
            l.unlock();
        }
    }

    /**
     * Reads positions {@code [start, start + count)} of {@code sequence} in {@code layer} back as f32 (as
     * attention sees them: rounded to F16 / BF16, or dequantized from INT8). K comes back rotated if it
     * was written with RoPE.
     *
     * @param k F32 {@code [count, kvHeads * headDim]} or {@code [count, kvHeads, headDim]} to fill, or null
     * @param v as k, or null (not both)
     */
    public void read(int layer, Sequence sequence, long start, long count, Tensor k, Tensor v) {
        Lock l = enter(lock.readLock());
        try (Arena call = Arena.ofConfined()) {
            checkLayer(layer);
            checkLive(sequence, "sequence");
            if (k == null && v == null) throw new IllegalArgumentException("k and v are both null: nothing to read into");
            long len = length(sequence.id(), call);
            if (start < 0 || count < 1 || start > len - count)
                throw new IllegalArgumentException("positions [" + start + ", " + start + " + " + count + ") are not "
                        + "within the " + len + " tokens of " + sequence + " (count must be >= 1)");
            long cols = (long) config.kvHeads() * config.headDim();
            long ldk = 0, ldv = 0;
            if (k != null) {
                ldk = Checks.headRows(k, "k", count, config.kvHeads(), config.headDim());
                Checks.writable(k, "k");
            }
            if (v != null) {
                ldv = Checks.headRows(v, "v", count, config.kvHeads(), config.headDim());
                Checks.writable(v, "v");
            }
            if (k != null && v != null) Checks.noRowOverlap(v, "v", ldv, cols, k, "k", ldk, cols);
            try (Tensor.Lease lk = lease(k); Tensor.Lease lv = lease(v)) {
                MemorySegment a = isthmus_kv_read_args.allocate(call);
                isthmus_kv_read_args.kv(a, state);
                isthmus_kv_read_args.layer(a, layer);
                isthmus_kv_read_args.seq(a, sequence.id());
                isthmus_kv_read_args.start(a, start);
                isthmus_kv_read_args.count(a, count);
                isthmus_kv_read_args.k(a, k == null ? MemorySegment.NULL : k.segment());
                isthmus_kv_read_args.ldk(a, k == null ? cols : ldk);
                isthmus_kv_read_args.v(a, v == null ? MemorySegment.NULL : v.segment());
                isthmus_kv_read_args.ldv(a, v == null ? cols : ldv);
                Native.check(Isthmus.isthmus_kv_read(a), "KvCache.read");
            }
        } finally {
            l.unlock();
        }
    }

    /**
     * Causal attention of the batch's tokens against their sequences in {@code layer}: the token at
     * position {@code p} of a sequence attends to its positions {@code lo..p} ({@code lo = 0}, or
     * {@code p - window + 1} with a window), query head {@code h} reading KV head
     * {@code h / (queryHeads / kvHeads)}. The batch's K and V must have been written. A sequence may
     * appear more than once.
     *
     * @param q      F32 {@code [T, queryHeads * headDim]} or {@code [T, queryHeads, headDim]}, T = batch.tokens();
     *               rows may be strided
     * @param out    as q, written; may be q itself (same memory and row stride), otherwise must not overlap it
     * @param params query heads, scale, softcap, window, optional log-sum-exp output
     * @throws IllegalArgumentException also for a NaN or infinite value in q, naming its row, head and dimension
     */
    public void attention(int layer, Batch batch, Tensor q, Tensor out, AttentionParams params) {
        attention(layer, batch, q, out, params, null);
    }

    /** Most tokens one sequence may bring with a tree mask (ISTHMUS_TREE_MAX_NODES). */
    public static final int TREE_MAX_NODES = 256;

    /**
     * As {@link #attention(int, Batch, Tensor, Tensor, AttentionParams)}, with a token-tree mask (speculative
     * decoding): for the {@code u}-th new token of a batch entry ({@code u = 0..qLen-1}, row {@code r} of the
     * batch), {@code treeParents[r]} is the index {@code u'} of its parent among the same entry's new tokens
     * ({@code -1 <= u' < u}; {@code -1}: attached to the cached prefix). The token then sees every key before
     * the entry's new tokens, the keys of its ancestors and its own key. A chain ({@code u' = u - 1}) is the
     * causal mask, with bit-identical results.
     *
     * @param treeParents {@code batch.tokens()} parents in row order, or null for the causal mask (the
     *                    5-argument form)
     * @throws IllegalArgumentException for a treeParents array of the wrong length, a parent outside
     *                                  {@code [-1, u-1]} (naming the index, the entry and its sequence), an entry
     *                                  with more than {@link #TREE_MAX_NODES} tokens, or a window with a tree;
     *                                  besides the cases of the 5-argument form
     */
    public void attention(int layer, Batch batch, Tensor q, Tensor out, AttentionParams params, int[] treeParents) {
        Lock l = enter(lock.readLock());
        try (Arena call = Arena.ofConfined()) {
            checkLayer(layer);
            Checks.notNull(params, "params");
            int qHeads = params.queryHeads();
            if (qHeads % config.kvHeads() != 0)
                throw new IllegalArgumentException("params.queryHeads = " + qHeads + " is not a multiple of the cache's"
                        + " kvHeads = " + config.kvHeads());
            int[] ids = checkBatchIds(batch, false, call);
            long t = batch.tokens();
            if (treeParents != null) checkTree(batch, treeParents, params);
            long cols = (long) qHeads * config.headDim();
            long ldq = Checks.headRows(q, "q", t, qHeads, config.headDim());
            long ldo = Checks.headRows(out, "out", t, qHeads, config.headDim());
            Checks.writable(out, "out");
            boolean inPlace = out.segment().address() == q.segment().address() && ldo == ldq;
            if (!inPlace) Checks.noRowOverlap(out, "out", ldo, cols, q, "q", ldq, cols);
            Tensor lse = params.lse();
            if (lse != null) {
                Checks.usable(lse, "params.lse");
                if (lse.dtype() != DType.F32 || lse.rank() != 2 || lse.dim(0) != t || lse.dim(1) != qHeads
                        || !lse.isContiguous())
                    throw new IllegalArgumentException("params.lse must be F32[" + t + ", " + qHeads + "] contiguous but is "
                            + Checks.shape(lse) + (lse.isContiguous() ? "" : " strides " + Arrays.toString(lse.strides())));
                Checks.writable(lse, "params.lse");
                Checks.noOverlap(lse, "params.lse", q, "q");
                Checks.noOverlap(lse, "params.lse", out, "out");
            }
            try (Tensor.Lease lq = q.lease(); Tensor.Lease lo = out.lease(); Tensor.Lease ll = lease(lse)) {
                MemorySegment a = isthmus_attention_args.allocate(call);
                isthmus_attention_args.kv(a, state);
                isthmus_attention_args.layer(a, layer);
                isthmus_attention_args.n_seqs(a, batch.size());
                isthmus_attention_args.seqs(a, call.allocateFrom(ValueLayout.JAVA_INT, ids));
                isthmus_attention_args.q_lens(a, call.allocateFrom(ValueLayout.JAVA_INT, batch.qLensArray()));
                isthmus_attention_args.q_heads(a, qHeads);
                isthmus_attention_args.q(a, q.segment());
                isthmus_attention_args.ldq(a, ldq);
                isthmus_attention_args.out(a, out.segment());
                isthmus_attention_args.ldo(a, ldo);
                isthmus_attention_args.lse(a, lse == null ? MemorySegment.NULL : lse.segment());
                isthmus_attention_args.scale(a, params.scale());
                isthmus_attention_args.softcap(a, params.softcap());
                isthmus_attention_args.window(a, params.window());
                isthmus_attention_args.tree_parents(a, treeParents == null ? MemorySegment.NULL
                        : call.allocateFrom(ValueLayout.JAVA_INT, treeParents));
                Native.checkInput(Isthmus.isthmus_attention(a), "KvCache.attention", "q " + Checks.shape(q),
                        "NaN and infinite queries");
            }
        } finally {
            l.unlock();
        }
    }

    // ------------------------------------------------------------------ lifetime

    /**
     * Frees the pool and every sequence. Idempotent.
     *
     * @throws IllegalStateException if another thread is inside a call on this cache right now
     */
    @Override
    public void close() {
        if (closed) return;
        if (!lock.writeLock().tryLock())
            throw new IllegalStateException(this + " is in use by another thread: close it after its calls return");
        try {
            if (closed) return;
            closed = true;
            for (int i = 0; i < live.length; i++) {
                if (live[i] != null) live[i].freed = true;
                live[i] = null;
            }
            arena.close();
            handle.close();
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public String toString() {
        return "KvCache[" + config.layers() + " layers x " + config.kvHeads() + " KV heads x " + config.headDim() + ", "
                + config.type() + ", " + config.numBlocks() + " blocks of " + config.blockSize() + "]";
    }

    // ------------------------------------------------------------------ checks

    /** Takes the lock; fails (releasing it) if the cache is closed. */
    private Lock enter(Lock l) {
        l.lock();
        if (closed) {
            l.unlock();
            throw new IllegalStateException(this + " is closed");
        }
        return l;
    }

    private void checkLayer(int layer) {
        if (layer < 0 || layer >= config.layers())
            throw new IllegalArgumentException("layer " + layer + " is out of range [0, " + config.layers() + ")");
    }

    private void checkLive(Sequence s, String name) {
        if (s == null) throw new IllegalArgumentException(name + " is null");
        if (s.cache() != this)
            throw new IllegalArgumentException(name + " (" + s + ") belongs to another cache, " + s.cache() + ", not to "
                    + this);
        if (s.freed || live[s.id()] != s) throw new IllegalStateException(name + " (sequence " + s.id() + ") was freed");
    }

    /** Checks the batch's sequences; returns their lengths. */
    private long[] checkBatch(Batch batch, boolean distinct, boolean qLenWithinLength, Arena call) {
        if (batch == null) throw new IllegalArgumentException("batch is null");
        if (batch.cache() != this)
            throw new IllegalArgumentException("batch " + batch + " belongs to another cache, " + batch.cache()
                    + ", not to " + this);
        long[] len = new long[batch.size()];
        boolean[] seen = distinct ? new boolean[live.length] : null;
        for (int i = 0; i < batch.size(); i++) {
            Sequence s = batch.sequence(i);
            checkLive(s, "batch entry " + i);
            if (distinct) {
                if (seen[s.id()])
                    throw new IllegalArgumentException("batch " + batch + " names " + s + " twice: sequences must be "
                            + "distinct here");
                seen[s.id()] = true;
            }
            len[i] = length(s.id(), call);
            if (qLenWithinLength && batch.qLen(i) > len[i])
                throw new IllegalArgumentException("batch entry " + i + ": qLen " + batch.qLen(i) + " exceeds the length "
                        + len[i] + " of " + s + " (extend it first)");
        }
        return len;
    }

    private static void checkTree(Batch batch, int[] parents, AttentionParams params) {
        if (parents.length != batch.tokens())
            throw new IllegalArgumentException("treeParents has " + parents.length + " entries but batch " + batch + " has "
                    + batch.tokens() + " tokens (one parent per row)");
        if (params.window() != 0)
            throw new IllegalArgumentException("params.window = " + params.window() + " with treeParents: a token tree "
                    + "needs no window (0)");
        int row = 0;
        for (int i = 0; i < batch.size(); i++) {
            int qLen = batch.qLen(i);
            if (qLen > TREE_MAX_NODES)
                throw new IllegalArgumentException("batch entry " + i + " (" + batch.sequence(i) + ") has qLen " + qLen
                        + " > " + TREE_MAX_NODES + ", the most tokens a tree mask takes per sequence");
            for (int u = 0; u < qLen; u++, row++)
                if (parents[row] < -1 || parents[row] >= u)
                    throw new IllegalArgumentException("treeParents[" + row + "] = " + parents[row] + " (token " + u
                            + " of batch entry " + i + ", " + batch.sequence(i) + ") must be in [-1, " + (u - 1)
                            + "]: a parent comes before its child");
        }
    }

    private int[] checkBatchIds(Batch batch, boolean distinct, Arena call) {
        checkBatch(batch, distinct, true, call);
        int[] ids = new int[batch.size()];
        for (int i = 0; i < ids.length; i++) ids[i] = batch.sequence(i).id();
        return ids;
    }

    private long length(int id, Arena call) {
        MemorySegment len = call.allocate(ValueLayout.JAVA_LONG);
        Native.check(Isthmus.isthmus_kv_seq_length(state, id, len), "KvCache.length");
        return len.get(ValueLayout.JAVA_LONG, 0);
    }

    private static Tensor.Lease lease(Tensor t) {
        return t == null ? Tensor.Lease.NONE : t.lease();
    }
}
