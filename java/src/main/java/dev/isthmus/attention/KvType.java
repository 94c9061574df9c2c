package dev.isthmus.attention;

import dev.isthmus.bindings.Isthmus;

/**
 * How the KV cache stores K and V. Values are written as f32 and read (by attention and
 * {@link KvCache#read}) as f32; the type decides the rounding in between and the pool's size.
 *
 * <pre>{@code
 * KvConfig c = KvConfig.builder().layers(32).kvHeads(8).headDim(128)
 *         .type(KvType.BF16).numBlocks(4096).maxSequences(16).maxSequenceLength(8192).build();
 * long bytesPerToken = 2L * c.layers() * c.kvHeads() * c.headDim() * c.type().bytesPerElement();
 * }</pre>
 */
public enum KvType {
    /** 32-bit float: stored exactly. NaN and infinite values are refused (by every type: the cache holds finite values). */
    F32(4),
    /** IEEE half: round to nearest even on write; values that would round to infinity ({@code |x| >= 65520}) are refused. */
    F16(2),
    /** bfloat16: round to nearest even on write (f32's range, 8 mantissa bits); values that would round to
     *  infinity ({@code |x| >= 0x1.ffp127}) are refused. */
    BF16(2),
    /**
     * int8 with one f32 scale per (token, KV head): {@code q = round_half_even(x / s)},
     * {@code s = max|x| / 127}, read back as {@code q * s}. NaN and infinite values are refused.
     */
    INT8(1);

    private final int bytes;

    KvType(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes per stored element, not counting INT8's scales (4 bytes per token, head and K or V). */
    public int bytesPerElement() {
        return bytes;
    }

    /** The ISTHMUS_KV_* code. */
    int nativeCode() {
        return switch (this) {
            case F32 -> Isthmus.ISTHMUS_KV_F32();
            case F16 -> Isthmus.ISTHMUS_KV_F16();
            case BF16 -> Isthmus.ISTHMUS_KV_BF16();
            case INT8 -> Isthmus.ISTHMUS_KV_S8();
        };
    }
}
