package dev.isthmus.bench;

/** A GEMM shape {@code y[M,N] = x[M,K] . W[N,K]^T}, written "MxNxK" (the JMH parameter). */
public record Shape(int m, int n, int k) {
    public Shape {
        if (m < 1 || n < 1 || k < 1) throw new IllegalArgumentException("shape " + m + "x" + n + "x" + k + ": dimensions must be >= 1");
    }

    /** Parses "MxNxK", e.g. "8x4096x4096". */
    public static Shape parse(String s) {
        String[] p = s.trim().toLowerCase(java.util.Locale.ROOT).split("x");
        if (p.length != 3) throw new IllegalArgumentException("shape '" + s + "' is not MxNxK");
        try {
            return new Shape(Integer.parseInt(p[0]), Integer.parseInt(p[1]), Integer.parseInt(p[2]));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("shape '" + s + "' is not MxNxK", e);
        }
    }

    /** Multiply-adds times two: the operation count of one GEMM. */
    public double ops() {
        return 2.0 * m * n * k;
    }

    @Override
    public String toString() {
        return m + "x" + n + "x" + k;
    }
}
