package dev.isthmus.bench.kernels;

import dev.isthmus.bench.Data;
import dev.isthmus.bench.Shape;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The pure-Java int8 alternative, on the Vector API: {@code y[i,j] = (sum_k a[i,k] * w[j,k]) * sa[i] * sw[j]}
 * with int8 activations and weights quantized per row.
 *
 * <p>Only same-shape lane operations, the ones C2 compiles to single instructions (a shape-changing
 * {@code convertShape(B2S, ...)} is not intrinsified on JDK 25 and would box every vector): a weight row
 * is loaded as a preferred-size ByteVector and viewed as shorts, whose sign-extended low and high bytes
 * ({@code (v << 8) >> 8}, {@code v >> 8}) are the even and odd elements; the activations are widened once
 * per call into the matching even/odd short layout. Two products are summed in 16 bits (|a*w| &lt;= 127*127,
 * so two fit), then added into int32 accumulators through the ints' view of the shorts, the same trick
 * once more (the Java spelling of vpmaddwd). Weight vectors are reused across 4 activation rows (2 weight
 * rows per activation row for the M % 4 rest, e.g. decode: more would exceed C2's inlining node budget
 * and box vectors). Parallel over chunks of N.
 */
public final class VectorInt8Gemm implements GemmKernel {
    static final VectorSpecies<Byte> B = ByteVector.SPECIES_PREFERRED;
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, B.vectorShape());
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, B.vectorShape());
    /** K elements per step: one byte vector. */
    static final int STEP = B.length();
    static final int L = S.length();
    /** Rows of W per parallel task (32 x 4096 bytes stay in L2 across the activation row blocks). */
    static final int CHUNK = 32;

    private final int m, n, k, kv;
    private final byte[] a, w;
    private final float[] sa, sw;
    private final short[] aw;
    private final float[] y;
    private final Parallel par;

    public VectorInt8Gemm(Shape s, Data.Int8 aq, Data.Int8 wq, int threads) {
        if (aq.block() != s.k() || wq.block() != s.k())
            throw new IllegalArgumentException("vector-int8 takes per-row scales");
        this.m = s.m();
        this.n = s.n();
        this.k = s.k();
        this.kv = k - k % STEP;
        this.a = aq.q();
        this.sa = aq.scales();
        this.w = wq.q();
        this.sw = wq.scales();
        this.aw = new short[m * k];
        this.y = new float[m * n];
        this.par = new Parallel(threads);
    }

    /** A species description for logs, e.g. "512-bit: 64 bytes -> 2 x 32 shorts -> 16 ints". */
    public static String species() {
        return B.vectorBitSize() + "-bit: " + STEP + " bytes -> 2 x " + L + " shorts -> " + I.length() + " ints";
    }

    @Override
    public void run() {
        widenActivations();
        par.forEach((n + CHUNK - 1) / CHUNK, this::chunk);
    }

    /** aw: per row and STEP block, the L even elements then the L odd ones, as shorts; the K tail as is. */
    private void widenActivations() {
        for (int i = 0; i < m; i++) {
            int o = i * k;
            for (int t = 0; t < kv; t += STEP)
                for (int l = 0; l < L; l++) {
                    aw[o + t + l] = a[o + t + 2 * l];
                    aw[o + t + L + l] = a[o + t + 2 * l + 1];
                }
            for (int t = kv; t < k; t++) aw[o + t] = a[o + t];
        }
    }

    /** The result, row-major [m, n] (for tests). */
    public float[] result() {
        return y;
    }

    private void chunk(int c) {
        int j0 = c * CHUNK, j1 = Math.min(n, j0 + CHUNK);
        int i = 0;
        for (; i + 4 <= m; i += 4)
            for (int j = j0; j < j1; j++) block4x1(i, j);
        for (; i < m; i++) {
            int j = j0;
            for (; j + 2 <= j1; j += 2) block1x2(i, j);
            for (; j < j1; j++) block1x1(i, j);
        }
    }

    private static ShortVector even(ByteVector v) {
        return v.reinterpretAsShorts().lanewise(VectorOperators.LSHL, 8).lanewise(VectorOperators.ASHR, 8);
    }

    private static ShortVector odd(ByteVector v) {
        return v.reinterpretAsShorts().lanewise(VectorOperators.ASHR, 8);
    }

    /** acc + both sign-extended 16-bit halves of every int lane of p (p's lanes are short sums). */
    private static IntVector acc(IntVector acc, ShortVector p) {
        IntVector v = p.reinterpretAsInts();
        return acc.add(v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16))
                  .add(v.lanewise(VectorOperators.ASHR, 16));
    }

    /** Even and odd products of activation row ao (widened layout) with a weight vector, summed in 16 bits. */
    private ShortVector dot(int ao, int t, ShortVector we, ShortVector wo) {
        return ShortVector.fromArray(S, aw, ao + t).mul(we).add(ShortVector.fromArray(S, aw, ao + t + L).mul(wo));
    }

    private int tail(int ao, int wo) {
        int s = 0;
        for (int t = kv; t < k; t++) s += aw[ao + t] * w[wo + t];
        return s;
    }

    /** y[i, j] from the vector part's sum (reduced by the caller: a vector passed to a call C2 did not
     * inline would be boxed) and the K tail. */
    private void store(int i, int j, int vectorSum) {
        y[i * n + j] = (vectorSum + tail(i * k, j * k)) * sa[i] * sw[j];
    }

    private void block4x1(int i, int j) {
        int a0 = i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k, w0 = j * k;
        IntVector c0 = IntVector.zero(I), c1 = c0, c2 = c0, c3 = c0;
        for (int t = 0; t < kv; t += STEP) {
            ByteVector v = ByteVector.fromArray(B, w, w0 + t);
            ShortVector we = even(v), wo = odd(v);
            c0 = acc(c0, dot(a0, t, we, wo));
            c1 = acc(c1, dot(a1, t, we, wo));
            c2 = acc(c2, dot(a2, t, we, wo));
            c3 = acc(c3, dot(a3, t, we, wo));
        }
        store(i, j, c0.reduceLanes(VectorOperators.ADD));
        store(i + 1, j, c1.reduceLanes(VectorOperators.ADD));
        store(i + 2, j, c2.reduceLanes(VectorOperators.ADD));
        store(i + 3, j, c3.reduceLanes(VectorOperators.ADD));
    }

    private void block1x2(int i, int j) {
        int a0 = i * k, w0 = j * k, w1 = w0 + k;
        IntVector c0 = IntVector.zero(I), c1 = c0;
        for (int t = 0; t < kv; t += STEP) {
            ShortVector ae = ShortVector.fromArray(S, aw, a0 + t), ao = ShortVector.fromArray(S, aw, a0 + t + L);
            ByteVector v0 = ByteVector.fromArray(B, w, w0 + t), v1 = ByteVector.fromArray(B, w, w1 + t);
            c0 = acc(c0, ae.mul(even(v0)).add(ao.mul(odd(v0))));
            c1 = acc(c1, ae.mul(even(v1)).add(ao.mul(odd(v1))));
        }
        store(i, j, c0.reduceLanes(VectorOperators.ADD));
        store(i, j + 1, c1.reduceLanes(VectorOperators.ADD));
    }

    private void block1x1(int i, int j) {
        int a0 = i * k, w0 = j * k;
        IntVector c = IntVector.zero(I);
        for (int t = 0; t < kv; t += STEP) {
            ByteVector v = ByteVector.fromArray(B, w, w0 + t);
            c = acc(c, dot(a0, t, even(v), odd(v)));
        }
        store(i, j, c.reduceLanes(VectorOperators.ADD));
    }

    @Override
    public float output(int i, int j) {
        return y[i * n + j];
    }

    @Override
    public double tolerance() {
        return 0.03;
    }

    @Override
    public String describe() {
        return "Vector API int8, " + species() + ", " + par.threads() + " threads";
    }

    @Override
    public void close() {
        par.close();
    }
}
