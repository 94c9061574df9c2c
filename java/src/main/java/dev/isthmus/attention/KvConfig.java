package dev.isthmus.attention;

import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_kv_config;
import dev.isthmus.internal.Native;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;

/**
 * The shape of a {@link KvCache}: {@code layers} attention layers of {@code kvHeads} heads of
 * {@code headDim}, stored as {@code type} in a pool of {@code numBlocks} blocks of {@code blockSize}
 * tokens, shared by at most {@code maxSequences} sequences of at most {@code maxSequenceLength} tokens.
 * A block holds its tokens for every layer, so one block table serves all layers.
 *
 * <pre>{@code
 * KvConfig config = KvConfig.builder()           // Llama 3 8B: 32 layers, 8 KV heads of 128
 *         .layers(32).kvHeads(8).headDim(128)
 *         .numBlocks(2048)                       // 2048 blocks of 16 tokens (the default block size)
 *         .maxSequences(16).maxSequenceLength(8192)
 *         .build();                              // KvType.F16 unless .type(...) says otherwise
 * System.out.println(config.poolBytes() + " bytes of K/V");
 * }</pre>
 *
 * @param layers            attention layers, >= 1
 * @param kvHeads           K/V heads per layer, >= 1 (query heads are a multiple of it)
 * @param headDim           a multiple of 16 from 16 to {@value #MAX_HEAD_DIM}
 * @param blockSize         tokens per block, a power of two from 1 to {@value #MAX_BLOCK_SIZE}
 * @param type              how K and V are stored
 * @param numBlocks         blocks in the pool, >= 1
 * @param maxSequences      sequence slots, >= 1
 * @param maxSequenceLength tokens one sequence may hold, 1 to {@value #MAX_SEQUENCE_LENGTH}
 */
public record KvConfig(int layers, int kvHeads, int headDim, int blockSize, KvType type, int numBlocks,
                       int maxSequences, int maxSequenceLength) {

    /** Largest head dimension (ISTHMUS_KV_MAX_HEAD_DIM). */
    public static final int MAX_HEAD_DIM = 512;
    /** Largest block size (ISTHMUS_KV_MAX_BLOCK_SIZE). */
    public static final int MAX_BLOCK_SIZE = 256;
    /** Largest maxSequenceLength (ISTHMUS_KV_MAX_SEQ_LEN). */
    public static final int MAX_SEQUENCE_LENGTH = 1 << 24;
    /** The block size the builder uses unless told otherwise. */
    public static final int DEFAULT_BLOCK_SIZE = 16;

    public KvConfig {
        atLeastOne(layers, "layers");
        atLeastOne(kvHeads, "kvHeads");
        if (headDim < 16 || headDim > MAX_HEAD_DIM || headDim % 16 != 0)
            throw new IllegalArgumentException("headDim must be a multiple of 16 from 16 to " + MAX_HEAD_DIM + ", got "
                    + headDim);
        if (blockSize < 1 || blockSize > MAX_BLOCK_SIZE || Integer.bitCount(blockSize) != 1)
            throw new IllegalArgumentException("blockSize must be a power of two from 1 to " + MAX_BLOCK_SIZE + ", got "
                    + blockSize);
        if (type == null) throw new IllegalArgumentException("type is null");
        atLeastOne(numBlocks, "numBlocks");
        atLeastOne(maxSequences, "maxSequences");
        if (maxSequenceLength < 1 || maxSequenceLength > MAX_SEQUENCE_LENGTH)
            throw new IllegalArgumentException("maxSequenceLength must be from 1 to " + MAX_SEQUENCE_LENGTH + ", got "
                    + maxSequenceLength);
    }

    private static void atLeastOne(int value, String name) {
        if (value < 1) throw new IllegalArgumentException(name + " must be >= 1, got " + value);
    }

    /** A builder: blockSize 16 and type {@link KvType#F16} by default, every other field required. */
    public static Builder builder() {
        return new Builder();
    }

    /** Bytes of the K/V pool this configuration needs (asks the library: isthmus_kv_sizes). */
    public long poolBytes() {
        return sizes()[1];
    }

    /** Bytes of the cache's bookkeeping (block tables, reference counts, free list). */
    public long stateBytes() {
        return sizes()[0];
    }

    /** Tokens the pool holds when no block is shared: {@code numBlocks * blockSize}. */
    public long tokenCapacity() {
        return (long) numBlocks * blockSize;
    }

    /** {state bytes, pool bytes}; an IsthmusException if the library refuses the configuration (e.g. too big). */
    long[] sizes() {
        Native.ensureLoaded();
        try (Arena call = Arena.ofConfined()) {
            MemorySegment c = toNative(call);
            MemorySegment state = call.allocate(ValueLayout.JAVA_LONG);
            MemorySegment pool = call.allocate(ValueLayout.JAVA_LONG);
            Native.check(Isthmus.isthmus_kv_sizes(c, state, pool), "KvConfig.sizes");
            return new long[] {state.get(ValueLayout.JAVA_LONG, 0), pool.get(ValueLayout.JAVA_LONG, 0)};
        }
    }

    /** The isthmus_kv_config struct. */
    MemorySegment toNative(SegmentAllocator allocator) {
        MemorySegment c = isthmus_kv_config.allocate(allocator);
        isthmus_kv_config.layers(c, layers);
        isthmus_kv_config.kv_heads(c, kvHeads);
        isthmus_kv_config.head_dim(c, headDim);
        isthmus_kv_config.block_size(c, blockSize);
        isthmus_kv_config.dtype(c, type.nativeCode());
        isthmus_kv_config.num_blocks(c, numBlocks);
        isthmus_kv_config.max_seqs(c, maxSequences);
        isthmus_kv_config.max_seq_len(c, maxSequenceLength);
        return c;
    }

    /** Collects the fields; {@link #build()} validates them as the record's constructor does. */
    public static final class Builder {
        private int layers, kvHeads, headDim, numBlocks, maxSequences, maxSequenceLength;
        private int blockSize = DEFAULT_BLOCK_SIZE;
        private KvType type = KvType.F16;
        private boolean hasLayers, hasKvHeads, hasHeadDim, hasNumBlocks, hasMaxSequences, hasMaxSequenceLength;

        private Builder() {}

        public Builder layers(int layers) {
            this.layers = layers;
            hasLayers = true;
            return this;
        }

        public Builder kvHeads(int kvHeads) {
            this.kvHeads = kvHeads;
            hasKvHeads = true;
            return this;
        }

        public Builder headDim(int headDim) {
            this.headDim = headDim;
            hasHeadDim = true;
            return this;
        }

        /** Tokens per block (default 16). */
        public Builder blockSize(int blockSize) {
            this.blockSize = blockSize;
            return this;
        }

        /** Storage type (default {@link KvType#F16}). */
        public Builder type(KvType type) {
            this.type = type;
            return this;
        }

        public Builder numBlocks(int numBlocks) {
            this.numBlocks = numBlocks;
            hasNumBlocks = true;
            return this;
        }

        public Builder maxSequences(int maxSequences) {
            this.maxSequences = maxSequences;
            hasMaxSequences = true;
            return this;
        }

        public Builder maxSequenceLength(int maxSequenceLength) {
            this.maxSequenceLength = maxSequenceLength;
            hasMaxSequenceLength = true;
            return this;
        }

        /**
         * @throws IllegalStateException    if a required field was not set
         * @throws IllegalArgumentException if a field is out of range
         */
        public KvConfig build() {
            StringBuilder missing = new StringBuilder();
            if (!hasLayers) missing.append(", layers");
            if (!hasKvHeads) missing.append(", kvHeads");
            if (!hasHeadDim) missing.append(", headDim");
            if (!hasNumBlocks) missing.append(", numBlocks");
            if (!hasMaxSequences) missing.append(", maxSequences");
            if (!hasMaxSequenceLength) missing.append(", maxSequenceLength");
            if (!missing.isEmpty())
                throw new IllegalStateException("KvConfig.builder(): required field(s) not set: " + missing.substring(2));
            return new KvConfig(layers, kvHeads, headDim, blockSize, type, numBlocks, maxSequences, maxSequenceLength);
        }
    }
}
