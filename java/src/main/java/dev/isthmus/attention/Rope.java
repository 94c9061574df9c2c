package dev.isthmus.attention;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_rope_args;
import dev.isthmus.bindings.isthmus_rope_params;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Native;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Rotary position embedding: pair {@code i} of a head's first {@code rotaryDim} dimensions turns by
 * {@code pos * theta^(-2i / rotaryDim)} (computed in double, rounded to f32 cos and sin), the pair being
 * {@code (2i, 2i+1)} with {@link Style#INTERLEAVED} or {@code (i, i + rotaryDim/2)} with
 * {@link Style#HALF}; then {@code y0 = fma(x0, c, -(x1 * s))}, {@code y1 = fma(x1, c, x0 * s)} in f32.
 * Dimensions from {@code rotaryDim} on are left as they are.
 *
 * <p>{@link KvCache#write} applies it to K as it stores it (fused); {@link #apply} does the same to
 * Q (or anything else) in place. Both compute exactly the same bits.
 *
 * <pre>{@code
 * Rope rope = Rope.half(500_000);                  // Llama 3 (Hugging Face layout)
 * cache.write(layer, batch, k, v, rope);           // K rotated at its positions, then stored
 * Rope.apply(q, qHeads, batch.positions(), rope);  // Q rotated in place
 * Rope neox = Rope.half(10_000).withRotaryDim(32); // GPT-NeoX style partial rotary
 * }</pre>
 *
 * @param style     which dimensions pair up, or NONE
 * @param theta     the base (10000 for Llama 2, 500000 for Llama 3): finite and {@code > 1}; it reaches
 *                  native code as a float
 * @param rotaryDim dimensions rotated per head: 0 for all of them, else even and at most the head dimension
 */
public record Rope(Style style, double theta, int rotaryDim) {

    /** Which dimensions form the rotated pairs. */
    public enum Style {
        /** No rotation. */
        NONE,
        /** Pairs {@code (2i, 2i+1)}: Meta's Llama reference code, GGUF / llama.cpp. */
        INTERLEAVED,
        /** Pairs {@code (i, i + rotaryDim/2)}: Hugging Face Llama, GPT-NeoX. */
        HALF
    }

    /** No rotation. */
    public static final Rope NONE = new Rope(Style.NONE, 0, 0);

    public Rope {
        if (style == null) throw new IllegalArgumentException("style is null");
        if (style != Style.NONE && !(theta > 1 && (float) theta > 1 && Float.isFinite((float) theta)))
            throw new IllegalArgumentException("theta must be finite and > 1, got " + theta);
        if (rotaryDim < 0 || rotaryDim % 2 != 0)
            throw new IllegalArgumentException("rotaryDim must be 0 (the whole head) or even and >= 2, got " + rotaryDim);
    }

    /** Pairs (2i, 2i+1) over the whole head. */
    public static Rope interleaved(double theta) {
        return new Rope(Style.INTERLEAVED, theta, 0);
    }

    /** Pairs (i, i + headDim/2) over the whole head. */
    public static Rope half(double theta) {
        return new Rope(Style.HALF, theta, 0);
    }

    /** The same rotation over the first {@code rotaryDim} dimensions of each head only (0: all). */
    public Rope withRotaryDim(int rotaryDim) {
        return new Rope(style, theta, rotaryDim);
    }

    /**
     * Rotates {@code x} in place: row {@code t} (a token) at position {@code positions[t]}.
     *
     * @param x         F32 {@code [tokens, heads * headDim]} or {@code [tokens, heads, headDim]}; rows may be
     *                  strided (a view of a fused QKV buffer), the heads of a row contiguous
     * @param heads     heads per row
     * @param positions one per token, each in {@code [0, 2^40]} (for a batch, {@link Batch#positions()})
     * @param rope      the rotation ({@link #NONE} leaves x as it is)
     */
    public static void apply(Tensor x, int heads, long[] positions, Rope rope) {
        Checks.notNull(x, "x");
        Checks.usable(x, "x");
        if (heads < 1) throw new IllegalArgumentException("heads must be >= 1, got " + heads);
        if (x.dtype() != DType.F32 || (x.rank() != 2 && x.rank() != 3))
            throw new IllegalArgumentException("x must be F32[tokens, heads * headDim] or F32[tokens, heads, headDim]"
                    + " but is " + Checks.shape(x));
        long headDim;
        if (x.rank() == 2) {
            if (x.dim(1) % heads != 0)
                throw new IllegalArgumentException("x " + Checks.shape(x) + " has " + x.dim(1)
                        + " columns, not a multiple of heads = " + heads);
            headDim = x.dim(1) / heads;
        } else {
            if (x.dim(1) != heads)
                throw new IllegalArgumentException("x " + Checks.shape(x) + " has " + x.dim(1) + " heads, not heads = "
                        + heads);
            headDim = x.dim(2);
        }
        long tokens = x.dim(0);
        long ld = Checks.headRows(x, "x", tokens, heads, headDim);
        Checks.writable(x, "x");
        Checks.notNull(positions, "positions");
        if (positions.length != tokens)
            throw new IllegalArgumentException("positions has " + positions.length + " entries but x " + Checks.shape(x)
                    + " has " + tokens + " tokens");
        for (int t = 0; t < positions.length; t++)
            if (positions[t] < 0 || positions[t] > (1L << 40)) // the C side's range (isthmus_rope)
                throw new IllegalArgumentException("positions[" + t + "] = " + positions[t] + " is outside [0, 2^40]");
        Checks.notNull(rope, "rope");
        rope.check(headDim, "x " + Checks.shape(x));
        if (rope.style == Style.NONE) return;
        Native.ensureLoaded();
        try (Tensor.Lease lx = x.lease(); Arena call = Arena.ofConfined()) {
            MemorySegment a = isthmus_rope_args.allocate(call);
            isthmus_rope_args.tokens(a, tokens);
            isthmus_rope_args.heads(a, heads);
            isthmus_rope_args.head_dim(a, headDim);
            isthmus_rope_args.x(a, x.segment());
            isthmus_rope_args.ldx(a, ld);
            isthmus_rope_args.positions(a, call.allocateFrom(ValueLayout.JAVA_LONG, positions));
            rope.toNative(isthmus_rope_args.rope(a));
            Native.check(Isthmus.isthmus_rope(a), "Rope.apply");
        }
    }

    /** The rotated dimensions fit a head of {@code headDim}. */
    void check(long headDim, String what) {
        if (style == Style.NONE) return;
        if (rotaryDim > headDim)
            throw new IllegalArgumentException("rope " + this + ": rotaryDim " + rotaryDim + " exceeds the head dimension "
                    + headDim + " of " + what);
        if (rotaryDim == 0 && headDim % 2 != 0)
            throw new IllegalArgumentException("rope " + this + " rotates whole heads, but " + what + " has an odd head"
                    + " dimension " + headDim + ": set an even rotaryDim");
    }

    /** Fills an isthmus_rope_params struct. */
    void toNative(MemorySegment params) {
        isthmus_rope_params.style(params, switch (style) {
            case NONE -> Isthmus.ISTHMUS_ROPE_NONE();
            case INTERLEAVED -> Isthmus.ISTHMUS_ROPE_INTERLEAVED();
            case HALF -> Isthmus.ISTHMUS_ROPE_HALF();
        });
        isthmus_rope_params.rotary_dim(params, rotaryDim);
        isthmus_rope_params.theta(params, style == Style.NONE ? 10000f : (float) theta);
    }
}
