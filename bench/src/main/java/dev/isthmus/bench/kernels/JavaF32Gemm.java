package dev.isthmus.bench.kernels;

import dev.isthmus.bench.Shape;

/**
 * The plain Java baseline: an f32 triple loop {@code y[i,j] = sum_k x[i*K+k] * w[j*K+k]}, parallel over
 * chunks of N (a parallel IntStream in a pool of {@code threads} workers). C2 does not vectorize the f32
 * reduction (it would reorder the sum), so this is what straightforward Java gets.
 */
public final class JavaF32Gemm implements GemmKernel {
    /** Rows of W per parallel task. */
    static final int CHUNK = 16;

    private final Shape s;
    private final float[] x, w, y;
    private final Parallel par;

    public JavaF32Gemm(Shape s, float[] x, float[] w, int threads) {
        this.s = s;
        this.x = x;
        this.w = w;
        this.y = new float[s.m() * s.n()];
        this.par = new Parallel(threads);
    }

    /** Columns [j0, j1) of y = x . w^T (row-major, y is [m, n]). */
    public static void gemm(float[] x, float[] w, float[] y, int m, int n, int k, int j0, int j1) {
        for (int j = j0; j < j1; j++) {
            int wo = j * k;
            for (int i = 0; i < m; i++) {
                int xo = i * k;
                float sum = 0;
                for (int t = 0; t < k; t++) sum += x[xo + t] * w[wo + t];
                y[i * n + j] = sum;
            }
        }
    }

    @Override
    public void run() {
        int n = s.n();
        par.forEach((n + CHUNK - 1) / CHUNK, c -> gemm(x, w, y, s.m(), n, s.k(), c * CHUNK, Math.min(n, (c + 1) * CHUNK)));
    }

    @Override
    public float output(int i, int j) {
        return y[i * s.n() + j];
    }

    @Override
    public double tolerance() {
        return 1e-4;
    }

    @Override
    public String describe() {
        return "Java f32 triple loop, " + par.threads() + " threads";
    }

    @Override
    public void close() {
        par.close();
    }
}
