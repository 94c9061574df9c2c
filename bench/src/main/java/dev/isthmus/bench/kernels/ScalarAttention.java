package dev.isthmus.bench.kernels;

/**
 * The scalar reference attention, in f64, two-pass softmax: what the Vector API kernel and isthmus are
 * checked against. Query row i of a sequence with {@code kvLen} keys sits at position
 * {@code kvLen - qLen + i} and attends, causally, to keys 0 .. that position; query head h reads KV head
 * {@code h / (qHeads / kvHeads)}.
 *
 * <pre>
 *   q   [qLen,  qHeads  * d]
 *   k,v [kvLen, kvHeads * d]
 *   out [qLen,  qHeads  * d]   out[i, h] = sum_j softmax_j(scale * q[i, h] . k[j, g]) * v[j, g],  j <= kvLen - qLen + i
 * </pre>
 */
public final class ScalarAttention {
    /** Element (row, col) of a row-major matrix, wherever it lives. */
    @FunctionalInterface
    public interface Matrix {
        float at(int row, int col);

        static Matrix of(float[] a, int cols) {
            return (r, c) -> a[r * cols + c];
        }
    }

    private ScalarAttention() {}

    /** out[i, h, 0..d) in f64. */
    public static double[] row(Matrix q, Matrix k, Matrix v, int qLen, int kvLen, int qHeads, int kvHeads, int d,
                               double scale, int i, int h) {
        if (qHeads % kvHeads != 0) throw new IllegalArgumentException("qHeads " + qHeads + " not a multiple of kvHeads " + kvHeads);
        if (qLen > kvLen) throw new IllegalArgumentException("qLen " + qLen + " > kvLen " + kvLen);
        int g = h / (qHeads / kvHeads);
        int last = kvLen - qLen + i;
        double[] qi = new double[d];
        for (int t = 0; t < d; t++) qi[t] = q.at(i, h * d + t);
        double[] s = new double[last + 1];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j <= last; j++) {
            double dot = 0;
            for (int t = 0; t < d; t++) dot += qi[t] * k.at(j, g * d + t);
            s[j] = scale * dot;
            max = Math.max(max, s[j]);
        }
        double sum = 0;
        for (int j = 0; j <= last; j++) {
            s[j] = Math.exp(s[j] - max);
            sum += s[j];
        }
        double[] out = new double[d];
        for (int j = 0; j <= last; j++)
            for (int t = 0; t < d; t++) out[t] += s[j] * v.at(j, g * d + t);
        for (int t = 0; t < d; t++) out[t] /= sum;
        return out;
    }

    /** The whole output [qLen, qHeads * d], rounded to f32. */
    public static float[] attention(float[] q, float[] k, float[] v, int qLen, int kvLen, int qHeads, int kvHeads, int d, double scale) {
        Matrix qm = Matrix.of(q, qHeads * d), km = Matrix.of(k, kvHeads * d), vm = Matrix.of(v, kvHeads * d);
        float[] out = new float[qLen * qHeads * d];
        for (int i = 0; i < qLen; i++)
            for (int h = 0; h < qHeads; h++) {
                double[] r = row(qm, km, vm, qLen, kvLen, qHeads, kvHeads, d, scale, i, h);
                for (int t = 0; t < d; t++) out[(i * qHeads + h) * d + t] = (float) r[t];
            }
        return out;
    }
}
