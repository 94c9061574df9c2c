package dev.isthmus.bench;

import dev.isthmus.bench.kernels.ScalarAttention;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Deterministic attention inputs with no storage: element (row, col) of Q, K or V of a (layer, sequence)
 * is a hash of those coordinates, uniform in [-1, 1). The cache is filled from it and the checks
 * recompute any element they need, so a 2 GiB cache needs no 2 GiB Java copy to be verified.
 * Rows are token positions; columns are head * head_dim + dim.
 */
public final class AttentionData {
    public static final long Q = 0x51L, K = 0x4BL, V = 0x56L;

    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    private AttentionData() {}

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** The SplitMix64 start of one row; element col is mix(rowKey + (col + 1) * GOLDEN). */
    static long rowKey(long stream, int layer, int seq, long row) {
        return mix(mix(mix(stream * GOLDEN + layer) + seq) + row);
    }

    private static float toFloat(long z) {
        return (z >>> 40) * 0x1.0p-23f - 1f;
    }

    /** Element (row, col) of {@code stream} (Q, K or V) of sequence {@code seq} in {@code layer}. */
    public static float value(long stream, int layer, int seq, long row, int col) {
        return toFloat(mix(rowKey(stream, layer, seq, row) + (col + 1L) * GOLDEN));
    }

    /**
     * Rows {@code row0 + r} of a sequence as a {@link ScalarAttention.Matrix}, hashing each row's start
     * once for a run of reads in the same row (not thread-safe).
     */
    public static ScalarAttention.Matrix matrix(long stream, int layer, int seq, long row0) {
        return new ScalarAttention.Matrix() {
            int row = -1;
            long key;

            @Override
            public float at(int r, int col) {
                if (r != row) {
                    key = rowKey(stream, layer, seq, row0 + r);
                    row = r;
                }
                return toFloat(mix(key + (col + 1L) * GOLDEN));
            }
        };
    }

    /** Writes rows [row0, row0 + rows) of a sequence as f32 into {@code seg} from float index {@code at}, {@code cols} per row. */
    public static void fill(MemorySegment seg, long at, long stream, int layer, int seq, long row0, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            long key = rowKey(stream, layer, seq, row0 + r);
            long o = at + (long) r * cols;
            for (int c = 0; c < cols; c++)
                seg.setAtIndex(ValueLayout.JAVA_FLOAT, o + c, toFloat(mix(key + (c + 1L) * GOLDEN)));
        }
    }

    /** Rows [row0, row0 + rows) of a sequence as a row-major float[rows * cols]. */
    public static float[] array(long stream, int layer, int seq, long row0, int rows, int cols) {
        float[] a = new float[Math.multiplyExact(rows, cols)];
        for (int r = 0; r < rows; r++) {
            long key = rowKey(stream, layer, seq, row0 + r);
            for (int c = 0; c < cols; c++) a[r * cols + c] = toFloat(mix(key + (c + 1L) * GOLDEN));
        }
        return a;
    }
}
