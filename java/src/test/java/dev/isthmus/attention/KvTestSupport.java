package dev.isthmus.attention;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Shared pieces of the attention tests: random data, the storage roundings, the double references. */
final class KvTestSupport {
    private KvTestSupport() {}

    /** The ISA variants this build and CPU support. */
    static List<Isa> isas() {
        List<Isa> out = new ArrayList<>();
        for (Isa i : Isa.values()) if (i.compareTo(Isthmus.supportedIsa()) <= 0) out.add(i);
        return out;
    }

    /** Gaussian values (never all zero: a zero input hides indexing errors). */
    static float[] gaussian(Random r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * scale);
        return a;
    }

    /** float -> IEEE half -> float, round to nearest even (overflow to infinity), as the F16 cache stores. */
    static float f16(float x) {
        return Float.float16ToFloat(Float.floatToFloat16(x));
    }

    /** float -> bfloat16 -> float, round to nearest even, as the BF16 cache stores. */
    static float bf16(float x) {
        if (Float.isNaN(x)) return x;
        int b = Float.floatToRawIntBits(x);
        b += 0x7FFF + ((b >>> 16) & 1);
        return Float.intBitsToFloat(b & 0xFFFF0000);
    }

    /**
     * What an INT8 cache gives back for one (token, head) vector: {@code s = max|x| / 127},
     * {@code q = round_half_even(x / s)}, read as {@code q * s} (all in f32).
     */
    static void int8(float[] x, int from, int n, float[] out) {
        float amax = 0;
        for (int i = 0; i < n; i++) amax = Math.max(amax, Math.abs(x[from + i]));
        float s = amax / 127f;
        for (int i = 0; i < n; i++) {
            int q = s == 0 ? 0 : (int) Math.rint(x[from + i] / s); // an int8: no -0
            out[from + i] = q * s;
        }
    }

    /** Rows [tokens, heads * headDim] as the cache of this type stores and reads them back. */
    static float[] stored(KvType type, float[] x, int heads, int headDim) {
        float[] out = new float[x.length];
        switch (type) {
            case F32 -> System.arraycopy(x, 0, out, 0, x.length);
            case F16 -> { for (int i = 0; i < x.length; i++) out[i] = f16(x[i]); }
            case BF16 -> { for (int i = 0; i < x.length; i++) out[i] = bf16(x[i]); }
            case INT8 -> { for (int o = 0; o < x.length; o += headDim) int8(x, o, headDim, out); }
        }
        return out;
    }

    /** Positions [start, start + count) of one layer, K and V, read back as f32 rows [count, kvHeads * headDim]. */
    static float[][] readBack(KvCache cache, int layer, Sequence s, long start, long count) {
        KvConfig c = cache.config();
        try (Tensor k = Tensor.allocate(DType.F32, count, (long) c.kvHeads() * c.headDim());
             Tensor v = Tensor.allocate(DType.F32, count, (long) c.kvHeads() * c.headDim())) {
            cache.read(layer, s, start, count, k, v);
            return new float[][] {k.toFloatArray(), v.toFloatArray()};
        }
    }

    /**
     * Double-precision attention that materializes every softmax: rows {@code row0 .. row0 + qLen - 1}
     * of {@code q} [T, qHeads * headDim] are the last qLen positions of a sequence of {@code length}
     * tokens whose K and V ([length, kvHeads * headDim]) are given; writes out [T, qHeads * headDim]
     * and lse [T, qHeads] at the same rows.
     */
    static void reference(float[] q, int row0, int qLen, int length, float[] k, float[] v, int qHeads, int kvHeads,
                          int headDim, float scale, float softcap, int window, double[] out, double[] lse) {
        reference(q, row0, qLen, length, k, v, qHeads, kvHeads, headDim, scale, softcap, window, out, lse, false);
    }

    /**
     * True when the active kernel rounds q to int8 for q.k: INT8 KV, the AVX-512 variant and blocks of at
     * least 16 tokens (isthmus.h, "Numerics of ISTHMUS_KV_S8 attention").
     */
    static boolean roundsQueryToInt8(KvType type, int blockSize) {
        return type == KvType.INT8 && blockSize >= 16 && dev.isthmus.Isthmus.isa() == Isa.AVX512;
    }

    /**
     * As above; with {@code q8} the reference models that documented rounding exactly (q * scale in f32,
     * sq = max|q * scale| / 127, qq = rne(q * scale * (127 / max)) clamped to +-127, logit = sq * qq . k), so
     * the kernel is still held to the tight tolerance.
     */
    static void reference(float[] q, int row0, int qLen, int length, float[] k, float[] v, int qHeads, int kvHeads,
                          int headDim, float scale, float softcap, int window, double[] out, double[] lse,
                          boolean q8) {
        int group = qHeads / kvHeads, qCols = qHeads * headDim, kvCols = kvHeads * headDim;
        double[] s = new double[length];
        for (int t = 0; t < qLen; t++) {
            int row = row0 + t, p = length - qLen + t;
            int lo = window > 0 ? Math.max(0, p - window + 1) : 0;
            for (int h = 0; h < qHeads; h++) {
                int g = h / group, qo = row * qCols + h * headDim;
                double m = Double.NEGATIVE_INFINITY;
                float[] qq = null;
                float sq = 0;
                if (q8) {
                    qq = new float[headDim];
                    float amax = 0;
                    for (int d = 0; d < headDim; d++) {
                        qq[d] = q[qo + d] * scale;
                        amax = Math.max(amax, Math.abs(qq[d]));
                    }
                    sq = amax / 127.0f;
                    float inv = amax > 0 ? 127.0f / amax : 0.0f;
                    for (int d = 0; d < headDim; d++) qq[d] = (float) Math.max(-127, Math.min(127, Math.rint(qq[d] * inv)));
                }
                for (int j = lo; j <= p; j++) {
                    double dot = 0;
                    int ko = j * kvCols + g * headDim;
                    double x;
                    if (q8) {
                        for (int d = 0; d < headDim; d++) dot += (double) qq[d] * k[ko + d];
                        x = (double) sq * dot;
                    } else {
                        for (int d = 0; d < headDim; d++) dot += (double) q[qo + d] * k[ko + d];
                        x = (double) scale * dot;
                    }
                    if (softcap > 0) x = softcap * Math.tanh(x / softcap);
                    s[j] = x;
                    m = Math.max(m, x);
                }
                double sum = 0;
                for (int j = lo; j <= p; j++) {
                    s[j] = Math.exp(s[j] - m);
                    sum += s[j];
                }
                for (int d = 0; d < headDim; d++) {
                    double acc = 0;
                    for (int j = lo; j <= p; j++) acc += s[j] * v[j * kvCols + g * headDim + d];
                    out[qo + d] = acc / sum;
                }
                if (lse != null) lse[row * qHeads + h] = m + Math.log(sum);
            }
        }
    }

    /** Copies a row-major array into an owned tensor of the given shape. */
    static Tensor tensor(float[] data, long... shape) {
        return Tensor.of(data, shape);
    }
}
