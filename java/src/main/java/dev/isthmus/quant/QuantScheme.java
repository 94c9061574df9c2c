package dev.isthmus.quant;

import dev.isthmus.internal.Checks;

import java.util.Objects;

/**
 * How floats become integers: bits, symmetric or with zero points, the scale granularity (per tensor,
 * per row, per group of consecutive columns), rounding, and clipping.
 *
 * <p>The int8 symmetric, round-half-even, unclipped schemes with group 32, 64, 128 or 256 (or per row,
 * or per tensor) run on native kernels and can be multiplied ({@link #isNative()}). Every other scheme
 * runs through the Java reference path of {@link Quant}, so researchers can quantize with it,
 * dequantize, and measure its error ({@link Quant#error}).
 *
 * <pre>{@code
 * QuantScheme q8 = QuantScheme.int8PerGroup(32);                  // GGUF Q8_0's block layout
 * QuantScheme q4 = QuantScheme.int8PerGroup(64).withBits(4).asymmetric();   // reference path only
 * }</pre>
 */
public final class QuantScheme {
    /** Which elements share one scale. */
    public enum Granularity { PER_TENSOR, PER_ROW, PER_GROUP }

    /** How x / scale becomes an integer. */
    public enum Rounding { HALF_EVEN, HALF_AWAY_FROM_ZERO }

    private final int bits;
    private final boolean symmetric;
    private final Granularity granularity;
    private final int group;
    private final Rounding rounding;
    private final float clip;

    private QuantScheme(int bits, boolean symmetric, Granularity granularity, int group, Rounding rounding, float clip) {
        if (bits < 2 || bits > 8) throw new IllegalArgumentException("bits = " + bits + ", must be in [2, 8]");
        Checks.notNull(granularity, "granularity");
        Checks.notNull(rounding, "rounding");
        if (granularity == Granularity.PER_GROUP && group < 1)
            throw new IllegalArgumentException("group = " + group + ", must be >= 1 for PER_GROUP");
        if (!(clip > 0f && clip <= 1f)) throw new IllegalArgumentException("clip = " + clip + ", must be in (0, 1]");
        this.bits = bits;
        this.symmetric = symmetric;
        this.granularity = granularity;
        this.group = granularity == Granularity.PER_GROUP ? group : 0;
        this.rounding = rounding;
        this.clip = clip;
    }

    /** int8, symmetric, one scale for the whole tensor. */
    public static QuantScheme int8PerTensor() {
        return new QuantScheme(8, true, Granularity.PER_TENSOR, 0, Rounding.HALF_EVEN, 1f);
    }

    /** int8, symmetric, one scale per row (per token for activations, per output channel for weights). */
    public static QuantScheme int8PerRow() {
        return new QuantScheme(8, true, Granularity.PER_ROW, 0, Rounding.HALF_EVEN, 1f);
    }

    /** int8, symmetric, one scale per group of {@code group} consecutive columns of a row. */
    public static QuantScheme int8PerGroup(int group) {
        return new QuantScheme(8, true, Granularity.PER_GROUP, group, Rounding.HALF_EVEN, 1f);
    }

    public QuantScheme withBits(int bits) {
        return new QuantScheme(bits, symmetric, granularity, group, rounding, clip);
    }

    /** Unsigned levels [0, 2^bits - 1] with a zero point per scale. */
    public QuantScheme asymmetric() {
        return new QuantScheme(bits, false, granularity, group, rounding, clip);
    }

    public QuantScheme withRounding(Rounding rounding) {
        return new QuantScheme(bits, symmetric, granularity, group, rounding, clip);
    }

    /** Scales cover {@code clip * max|x|}; larger values saturate (clip in (0, 1]). */
    public QuantScheme withClip(float clip) {
        return new QuantScheme(bits, symmetric, granularity, group, rounding, clip);
    }

    public int bits() {
        return bits;
    }

    public boolean symmetric() {
        return symmetric;
    }

    public Granularity granularity() {
        return granularity;
    }

    /** Group size for PER_GROUP, else 0. */
    public int group() {
        return group;
    }

    public Rounding rounding() {
        return rounding;
    }

    public float clip() {
        return clip;
    }

    /** Largest level of a symmetric scheme: 2^(bits-1) - 1 (127 for int8; -128 is never used). */
    public int maxLevel() {
        return symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    }

    /** True when native kernels serve this scheme (quantize, pack, matmul). */
    public boolean isNative() {
        return bits == 8 && symmetric && rounding == Rounding.HALF_EVEN && clip == 1f
                && (granularity != Granularity.PER_GROUP || group == 32 || group == 64 || group == 128 || group == 256);
    }

    /**
     * Scales (and zero points) for a [rows, cols] tensor.
     *
     * @throws IllegalArgumentException for rows or cols {@code < 1}, or a count that overflows a long
     */
    public long scaleCount(long rows, long cols) {
        if (rows < 1 || cols < 1)
            throw new IllegalArgumentException("rows = " + rows + ", cols = " + cols + ": both must be >= 1");
        return switch (granularity) {
            case PER_TENSOR -> 1;
            case PER_ROW -> rows;
            case PER_GROUP -> {
                long perRow = cols / group + (cols % group == 0 ? 0 : 1);
                if (perRow > Long.MAX_VALUE / rows)
                    throw new IllegalArgumentException("rows = " + rows + " times " + perRow + " groups per row overflows");
                yield rows * perRow;
            }
        };
    }

    /** ISTHMUS_SCALE_* of this granularity. */
    int nativeGranularity() {
        return granularity.ordinal();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof QuantScheme s && s.bits == bits && s.symmetric == symmetric && s.granularity == granularity
                && s.group == group && s.rounding == rounding && s.clip == clip;
    }

    @Override
    public int hashCode() {
        return Objects.hash(bits, symmetric, granularity, group, rounding, clip);
    }

    @Override
    public String toString() {
        return "int" + bits + (symmetric ? " symmetric" : " asymmetric") + " "
                + (granularity == Granularity.PER_GROUP ? "per group of " + group : granularity.name().toLowerCase().replace('_', ' '))
                + (rounding == Rounding.HALF_EVEN ? "" : " " + rounding) + (clip == 1f ? "" : " clip " + clip);
    }
}
