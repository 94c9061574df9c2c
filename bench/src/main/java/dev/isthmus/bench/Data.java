package dev.isthmus.bench;

import java.util.SplittableRandom;

/**
 * Deterministic inputs, the quantizations the pure-Java and Jlama baselines use, and the f64 reference
 * every implementation is checked against before it is timed.
 */
public final class Data {
    private Data() {}

    /** Activations x [M, K], uniform in [-1, 1). */
    public static float[] activations(Shape s) {
        return uniform((long) s.m() * s.k(), 0x5EED_0001L ^ s.m());
    }

    /** Weights W [N, K], uniform in [-1, 1) (the same for every M). */
    public static float[] weights(Shape s) {
        return uniform((long) s.n() * s.k(), 0x5EED_0002L ^ ((long) s.n() << 20) ^ s.k());
    }

    static float[] uniform(long count, long seed) {
        float[] a = new float[Math.toIntExact(count)];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < a.length; i++) a[i] = (float) (r.nextDouble() * 2 - 1);
        return a;
    }

    /** {@code sum_k x[i,k] * w[j,k]} in f64. */
    public static double reference(float[] x, float[] w, int k, int i, int j) {
        double s = 0;
        int xo = i * k, wo = j * k;
        for (int t = 0; t < k; t++) s += (double) x[xo + t] * w[wo + t];
        return s;
    }

    /** Int8 values and one f32 scale per block of {@code block} consecutive elements of a row. */
    public record Int8(byte[] q, float[] scales, int rows, int cols, int block) {
        public float dequant(int r, int c) {
            return q[r * cols + c] * scales[r * (cols / block) + c / block];
        }
    }

    /** Symmetric int8, scale max|x| / 127 per block of {@code block} columns (block = cols: per row), round half even. */
    public static Int8 quantizeInt8(float[] x, int rows, int cols, int block) {
        if (cols % block != 0) throw new IllegalArgumentException("cols " + cols + " not a multiple of block " + block);
        byte[] q = new byte[rows * cols];
        float[] s = new float[rows * (cols / block)];
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < cols / block; b++) {
                int o = r * cols + b * block;
                float amax = 0;
                for (int t = 0; t < block; t++) amax = Math.max(amax, Math.abs(x[o + t]));
                float scale = amax / 127f;
                s[r * (cols / block) + b] = scale;
                for (int t = 0; t < block; t++)
                    q[o + t] = scale == 0 ? 0 : (byte) Math.max(-127, Math.min(127, Math.rint(x[o + t] / scale)));
            }
        return new Int8(q, s, rows, cols, block);
    }

    /** Per row: {@link #quantizeInt8(float[], int, int, int)} with one block per row. */
    public static Int8 quantizePerRow(float[] x, int rows, int cols) {
        return quantizeInt8(x, rows, cols, cols);
    }

    /**
     * Jlama's Q4 layout: per row, blocks of 32 elements in 16 bytes; element t < 16 of a block is the low
     * nibble of byte t, element t >= 16 the high nibble of byte t - 16, each stored as level + 8 (levels
     * -8..7), with one f32 scale per block ({@code max|x| / 7}).
     */
    public record Q4(byte[] packed, float[] scales, int rows, int cols) {
        public int level(int r, int c) {
            int blk = c / 32, t = c % 32;
            byte b = packed[r * (cols / 2) + blk * 16 + (t < 16 ? t : t - 16)];
            return (t < 16 ? (b & 0xF) : ((b >> 4) & 0xF)) - 8;
        }

        public float dequant(int r, int c) {
            return level(r, c) * scales[r * (cols / 32) + c / 32];
        }
    }

    public static Q4 quantizeQ4(float[] x, int rows, int cols) {
        if (cols % 32 != 0) throw new IllegalArgumentException("cols " + cols + " not a multiple of 32");
        byte[] p = new byte[rows * cols / 2];
        float[] s = new float[rows * (cols / 32)];
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < cols / 32; b++) {
                int o = r * cols + b * 32;
                float amax = 0;
                for (int t = 0; t < 32; t++) amax = Math.max(amax, Math.abs(x[o + t]));
                float scale = amax / 7f;
                s[r * (cols / 32) + b] = scale;
                int po = r * (cols / 2) + b * 16;
                for (int t = 0; t < 16; t++) {
                    int lo = level(x[o + t], scale), hi = level(x[o + 16 + t], scale);
                    p[po + t] = (byte) ((lo + 8) | ((hi + 8) << 4));
                }
            }
        return new Q4(p, s, rows, cols);
    }

    private static int level(float v, float scale) {
        return scale == 0 ? 0 : (int) Math.max(-8, Math.min(7, Math.rint(v / scale)));
    }
}
