package dev.isthmus.bench.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.util.Arrays;

/**
 * The pure-Java attention alternative, on the Vector API, f32: causal, GQA, online softmax (flash
 * attention's recurrence; no [q, kv] matrix), for one sequence whose newest {@code qLen} tokens are the
 * queries. Same contract as {@link ScalarAttention}:
 *
 * <pre>
 *   q   [qLen,  qHeads  * d]   query i at position kvLen - qLen + i
 *   k,v [kvLen, kvHeads * d]
 *   out [qLen,  qHeads  * d]
 * </pre>
 *
 * <p>How it runs: parallel over KV heads (each task serves the {@code qHeads / kvHeads} query heads of its
 * KV head, so that head's K and V stay in cache across them). A task first transposes its head's K into
 * {@code kt[d][kvPad]} (part of every call: an O(kvLen * d) pass next to O(qLen * kvLen * d) work), so
 * that 16 scores of one query row are {@code d} broadcast FMAs with no horizontal sums. Query rows go in
 * blocks of {@value #R}, keys in tiles of {@value #BK}: scores into an R x BK scratch (two vectors of
 * keys x R rows = 8 register accumulators: 2 loads and R broadcasts per 8 FMAs), the running max and sum
 * updated per tile (vector {@code EXP}), then P.V accumulated two {@code d}-slices x R rows at a time, the
 * output rows kept in an R x d scratch that stays in L1. Tiles past the block's last query's position are
 * skipped; the diagonal tile is masked. {@code d} must be a multiple of the species' length. (One
 * accumulator per row, 4 in all, measured 33 GFLOP/s at prefill 512 on 2 Zen 4 cores; 8 measured 50.)
 */
public final class VectorAttention implements AttentionKernel {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    /** Query rows per block. */
    static final int R = 4;
    /** Keys per tile (a multiple of L). */
    static final int BK = 64;

    private final int qLen, kvLen, qHeads, kvHeads, d, group, qCols, kvCols, kvPad;
    private final float scale;
    private final float[] q, k, v, out;
    /** Per KV head: K^T [d][kvPad] (keys past kvLen stay 0), scores [R][BK], output rows [R][d], m and l [R]. */
    private final float[][] kt, scores, acc, stats;
    private final Parallel par;

    public VectorAttention(int qLen, int kvLen, int qHeads, int kvHeads, int d, float scale,
                           float[] q, float[] k, float[] v, int threads) {
        if (qLen < 1 || kvLen < qLen) throw new IllegalArgumentException("need 1 <= qLen <= kvLen, got " + qLen + ", " + kvLen);
        if (kvHeads < 1 || qHeads % kvHeads != 0) throw new IllegalArgumentException("qHeads " + qHeads + " not a multiple of kvHeads " + kvHeads);
        if (d < L || d % L != 0) throw new IllegalArgumentException("head dim " + d + " not a multiple of the vector length " + L);
        this.qLen = qLen;
        this.kvLen = kvLen;
        this.qHeads = qHeads;
        this.kvHeads = kvHeads;
        this.d = d;
        this.group = qHeads / kvHeads;
        this.qCols = qHeads * d;
        this.kvCols = kvHeads * d;
        this.kvPad = (kvLen + BK - 1) / BK * BK;
        this.scale = scale;
        if (q.length != qLen * qCols || k.length != kvLen * kvCols || v.length != kvLen * kvCols)
            throw new IllegalArgumentException("q, k, v lengths " + q.length + ", " + k.length + ", " + v.length + " do not match the shapes");
        this.q = q;
        this.k = k;
        this.v = v;
        this.out = new float[qLen * qCols];
        this.kt = new float[kvHeads][d * kvPad];
        this.scores = new float[kvHeads][R * BK];
        this.acc = new float[kvHeads][R * d];
        this.stats = new float[kvHeads][2 * R];
        this.par = new Parallel(threads);
    }

    /** A species description for logs, e.g. "512-bit: 16 floats". */
    public static String species() {
        return F.vectorBitSize() + "-bit: " + L + " floats";
    }

    @Override
    public void run() {
        par.forEach(kvHeads, this::kvHead);
    }

    /** The result [qLen, qHeads * d]. */
    public float[] result() {
        return out;
    }

    private void kvHead(int g) {
        float[] t = kt[g];
        int ko = g * d;
        for (int j = 0; j < kvLen; j++) {
            int row = j * kvCols + ko;
            for (int x = 0; x < d; x++) t[x * kvPad + j] = k[row + x];
        }
        for (int h = g * group; h < (g + 1) * group; h++)
            for (int i0 = 0; i0 < qLen; i0 += R) block(g, h, i0);
    }

    /** Query rows i0 .. i0 + R - 1 (the last one repeated past qLen, its results dropped) of query head h. */
    private void block(int g, int h, int i0) {
        float[] t = kt[g], s = scores[g], o = acc[g], st = stats[g];
        int off = kvLen - qLen;
        int i1 = Math.min(i0 + 1, qLen - 1), i2 = Math.min(i0 + 2, qLen - 1), i3 = Math.min(i0 + 3, qLen - 1);
        int q0 = i0 * qCols + h * d, q1 = i1 * qCols + h * d, q2 = i2 * qCols + h * d, q3 = i3 * qCols + h * d;
        int last = off + i3; // the block's last key (position of its last row)
        int vo = g * d;
        Arrays.fill(o, 0f);
        for (int r = 0; r < R; r++) {
            st[r] = Float.NEGATIVE_INFINITY; // running max
            st[R + r] = 0f;                  // running sum
        }
        for (int j0 = 0; j0 <= last; j0 += BK) {
            int jn = Math.min(BK, last + 1 - j0);          // keys of this tile that any row may see
            int jv = (jn + L - 1) / L * L;                  // rounded up: K^T is padded with zeros
            // ---- scores, R rows x jv keys: 2 x L keys at a time (8 accumulators), then L
            int cs = 0;
            for (; cs + 2 * L <= jv; cs += 2 * L) {
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                int ti = j0 + cs;
                for (int x = 0; x < d; x++, ti += kvPad) {
                    FloatVector ka = FloatVector.fromArray(F, t, ti), kb = FloatVector.fromArray(F, t, ti + L);
                    FloatVector e0 = FloatVector.broadcast(F, q[q0 + x]), e1 = FloatVector.broadcast(F, q[q1 + x]),
                            e2 = FloatVector.broadcast(F, q[q2 + x]), e3 = FloatVector.broadcast(F, q[q3 + x]);
                    a0 = ka.fma(e0, a0);
                    a1 = ka.fma(e1, a1);
                    a2 = ka.fma(e2, a2);
                    a3 = ka.fma(e3, a3);
                    b0 = kb.fma(e0, b0);
                    b1 = kb.fma(e1, b1);
                    b2 = kb.fma(e2, b2);
                    b3 = kb.fma(e3, b3);
                }
                a0.mul(scale).intoArray(s, cs);
                a1.mul(scale).intoArray(s, BK + cs);
                a2.mul(scale).intoArray(s, 2 * BK + cs);
                a3.mul(scale).intoArray(s, 3 * BK + cs);
                b0.mul(scale).intoArray(s, cs + L);
                b1.mul(scale).intoArray(s, BK + cs + L);
                b2.mul(scale).intoArray(s, 2 * BK + cs + L);
                b3.mul(scale).intoArray(s, 3 * BK + cs + L);
            }
            for (; cs < jv; cs += L) {
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                int ti = j0 + cs;
                for (int x = 0; x < d; x++, ti += kvPad) {
                    FloatVector kv = FloatVector.fromArray(F, t, ti);
                    a0 = kv.fma(FloatVector.broadcast(F, q[q0 + x]), a0);
                    a1 = kv.fma(FloatVector.broadcast(F, q[q1 + x]), a1);
                    a2 = kv.fma(FloatVector.broadcast(F, q[q2 + x]), a2);
                    a3 = kv.fma(FloatVector.broadcast(F, q[q3 + x]), a3);
                }
                a0.mul(scale).intoArray(s, cs);
                a1.mul(scale).intoArray(s, BK + cs);
                a2.mul(scale).intoArray(s, 2 * BK + cs);
                a3.mul(scale).intoArray(s, 3 * BK + cs);
            }
            // ---- causal mask, online softmax: s becomes p, o is rescaled by exp(m_old - m_new)
            for (int r = 0; r < R; r++) {
                int pos = off + Math.min(i0 + r, qLen - 1);
                int so = r * BK;
                for (int c = Math.max(0, pos + 1 - j0); c < jv; c++) s[so + c] = Float.NEGATIVE_INFINITY;
                FloatVector mx = FloatVector.fromArray(F, s, so);
                for (int c = L; c < jv; c += L) mx = mx.max(FloatVector.fromArray(F, s, so + c));
                float mOld = st[r], mNew = Math.max(mOld, mx.reduceLanes(VectorOperators.MAX));
                FloatVector sum = FloatVector.zero(F);
                for (int c = 0; c < jv; c += L) {
                    FloatVector p = FloatVector.fromArray(F, s, so + c).sub(mNew).lanewise(VectorOperators.EXP);
                    p.intoArray(s, so + c);
                    sum = sum.add(p);
                }
                float alpha = (float) Math.exp(mOld - mNew); // 0 on the first tile (mOld = -inf)
                st[r] = mNew;
                st[R + r] = st[R + r] * alpha + sum.reduceLanes(VectorOperators.ADD);
                if (alpha != 1f) {
                    int oo = r * d;
                    for (int x = 0; x < d; x += L) FloatVector.fromArray(F, o, oo + x).mul(alpha).intoArray(o, oo + x);
                }
            }
            // ---- o += P . V over the tile's jn keys: two d-slices at a time (8 accumulators), then one
            int x = 0;
            for (; x + 2 * L <= d; x += 2 * L) {
                FloatVector a0 = FloatVector.fromArray(F, o, x), a1 = FloatVector.fromArray(F, o, d + x),
                        a2 = FloatVector.fromArray(F, o, 2 * d + x), a3 = FloatVector.fromArray(F, o, 3 * d + x);
                FloatVector b0 = FloatVector.fromArray(F, o, x + L), b1 = FloatVector.fromArray(F, o, d + x + L),
                        b2 = FloatVector.fromArray(F, o, 2 * d + x + L), b3 = FloatVector.fromArray(F, o, 3 * d + x + L);
                int vi = j0 * kvCols + vo + x;
                for (int cc = 0; cc < jn; cc++, vi += kvCols) {
                    FloatVector va = FloatVector.fromArray(F, v, vi), vb = FloatVector.fromArray(F, v, vi + L);
                    FloatVector p0 = FloatVector.broadcast(F, s[cc]), p1 = FloatVector.broadcast(F, s[BK + cc]),
                            p2 = FloatVector.broadcast(F, s[2 * BK + cc]), p3 = FloatVector.broadcast(F, s[3 * BK + cc]);
                    a0 = va.fma(p0, a0);
                    a1 = va.fma(p1, a1);
                    a2 = va.fma(p2, a2);
                    a3 = va.fma(p3, a3);
                    b0 = vb.fma(p0, b0);
                    b1 = vb.fma(p1, b1);
                    b2 = vb.fma(p2, b2);
                    b3 = vb.fma(p3, b3);
                }
                a0.intoArray(o, x);
                a1.intoArray(o, d + x);
                a2.intoArray(o, 2 * d + x);
                a3.intoArray(o, 3 * d + x);
                b0.intoArray(o, x + L);
                b1.intoArray(o, d + x + L);
                b2.intoArray(o, 2 * d + x + L);
                b3.intoArray(o, 3 * d + x + L);
            }
            for (; x < d; x += L) {
                FloatVector a0 = FloatVector.fromArray(F, o, x), a1 = FloatVector.fromArray(F, o, d + x),
                        a2 = FloatVector.fromArray(F, o, 2 * d + x), a3 = FloatVector.fromArray(F, o, 3 * d + x);
                int vi = j0 * kvCols + vo + x;
                for (int c = 0; c < jn; c++, vi += kvCols) {
                    FloatVector vv = FloatVector.fromArray(F, v, vi);
                    a0 = vv.fma(FloatVector.broadcast(F, s[c]), a0);
                    a1 = vv.fma(FloatVector.broadcast(F, s[BK + c]), a1);
                    a2 = vv.fma(FloatVector.broadcast(F, s[2 * BK + c]), a2);
                    a3 = vv.fma(FloatVector.broadcast(F, s[3 * BK + c]), a3);
                }
                a0.intoArray(o, x);
                a1.intoArray(o, d + x);
                a2.intoArray(o, 2 * d + x);
                a3.intoArray(o, 3 * d + x);
            }
        }
        for (int r = 0; r < R && i0 + r < qLen; r++) {
            float inv = 1f / st[R + r];
            int oo = r * d, dst = (i0 + r) * qCols + h * d;
            for (int x = 0; x < d; x += L) FloatVector.fromArray(F, o, oo + x).mul(inv).intoArray(out, dst + x);
        }
    }

    @Override
    public float output(int token, int col) {
        return out[token * qCols + col];
    }

    @Override
    public double tolerance() {
        return 1e-4;
    }

    @Override
    public String describe() {
        return "Vector API f32 attention, " + species() + ", " + R + " query rows x " + BK + "-key tiles, " + par.threads()
                + " threads over " + kvHeads + " KV heads (" + group + " query heads each)";
    }

    @Override
    public void close() {
        par.close();
    }
}
