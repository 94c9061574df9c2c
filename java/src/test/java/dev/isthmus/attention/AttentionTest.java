package dev.isthmus.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Attention against a double-precision reference that forms every softmax, over every KvType, block
 * sizes 1 / 8 / 16 / 256, head dims 64 / 80 / 128 / 256, GQA groups 1 / 4 / 8, q_len 1 / 5 / 333, ragged
 * batches (a sequence may appear twice), lengths 1, 2, odd, prime, block and split boundaries +-1 and
 * a few thousand, softcap, sliding window, log-sum-exp, strided (fused QKV) and 3-D tensors, out == q.
 *
 * <p>The reference reads K and V back through {@link KvCache#read}, so F16 / BF16 / INT8 rounding is
 * not an error; what is left is f32 arithmetic in the kernel (dot products of up to 256 terms, sums
 * over up to 3001 keys, exp, the online-softmax rescaling and the split-K merge), a few 1e-6 relative
 * at most. Tolerance: {@code |out - ref| <= 1e-3 * (1 + |ref|)} (rtol = atol = 1e-3, STYLE.md's
 * attention tolerance), far above that noise and far below what a wrong key, head or position does
 * on these sizes. The "needle" cases make single keys dominate (at split-chunk boundaries 511/512,
 * 1023/1024, ..., the window's edge and the newest position), so dropping or adding one key among
 * thousands moves the output by O(1), not O(1/length).
 */
class AttentionTest {
    static final long SEED = 20261129L;
    static final double TOL = 1e-3;

    enum Layout { PLAIN, HEADS3D, FUSED, IN_PLACE }

    record Entry(int seq, int qLen) {}

    record Case(String name, KvType type, int blockSize, int headDim, int kvHeads, int group, int[] lengths,
                Entry[] entries, float softcap, int window, boolean lse, Layout layout, double qScale,
                boolean needles) {
        @Override
        public String toString() {
            return name + " " + type + " bs=" + blockSize + " hd=" + headDim + " kvH=" + kvHeads + " group=" + group
                    + " lengths=" + Arrays.toString(lengths) + " entries=" + Arrays.toString(entries)
                    + (softcap > 0 ? " softcap=" + softcap : "") + (window > 0 ? " window=" + window : "")
                    + (lse ? " lse" : "") + " " + layout + (needles ? " needles" : "");
        }
    }

    static Entry e(int seq, int qLen) {
        return new Entry(seq, qLen);
    }

    static int[] l(int... lengths) {
        return lengths;
    }

    static Entry[] es(Entry... entries) {
        return entries;
    }

    static final List<Case> CASES = List.of(
        new Case("tiny", KvType.F32, 1, 64, 2, 1, l(1, 2, 7), es(e(0, 1), e(1, 1), e(2, 5)), 0, 0, false, Layout.PLAIN, 1, false),
        new Case("block edges", KvType.F32, 8, 80, 1, 4, l(7, 8, 9, 31), es(e(0, 5), e(1, 1), e(2, 5), e(3, 1)), 5, 0, true, Layout.HEADS3D, 3, false),
        new Case("prefill 333", KvType.F32, 16, 128, 2, 8, l(400), es(e(0, 333)), 0, 0, true, Layout.PLAIN, 1, false),
        new Case("fused long", KvType.F32, 256, 256, 1, 4, l(255, 256, 257, 3001), es(e(0, 1), e(1, 5), e(2, 1), e(3, 5)), 0, 0, false, Layout.FUSED, 1, false),
        new Case("needles", KvType.F16, 1, 128, 1, 1, l(2100), es(e(0, 5)), 0, 0, true, Layout.PLAIN, 1, true),
        new Case("window prefill", KvType.F16, 8, 64, 1, 8, l(15, 16, 17, 700), es(e(0, 1), e(1, 1), e(2, 5), e(3, 333)), 0, 100, false, Layout.IN_PLACE, 1, false),
        new Case("repeat softcap", KvType.F16, 16, 80, 2, 4, l(13, 37, 2053), es(e(0, 5), e(1, 1), e(0, 1), e(2, 5)), 30, 0, false, Layout.PLAIN, 6, false),
        new Case("split edges", KvType.F16, 256, 256, 2, 1, l(1, 511, 512, 513), es(e(0, 1), e(1, 5), e(2, 5), e(3, 1)), 0, 0, true, Layout.HEADS3D, 1, false),
        new Case("small window", KvType.BF16, 1, 256, 1, 8, l(3, 64), es(e(0, 2), e(1, 5)), 0, 7, true, Layout.PLAIN, 1, false),
        new Case("needles window", KvType.BF16, 8, 128, 2, 4, l(2100), es(e(0, 1)), 0, 600, true, Layout.PLAIN, 1, true),
        new Case("fused prefill", KvType.BF16, 16, 64, 4, 1, l(17, 31, 33, 335), es(e(0, 1), e(1, 5), e(2, 1), e(3, 333)), 5, 0, false, Layout.FUSED, 3, false),
        new Case("two long", KvType.BF16, 256, 80, 1, 4, l(1000, 97), es(e(0, 5), e(1, 5)), 0, 0, true, Layout.PLAIN, 1, false),
        new Case("int8 short", KvType.INT8, 1, 64, 1, 4, l(1, 2, 1025), es(e(0, 1), e(1, 2), e(2, 5)), 0, 0, true, Layout.HEADS3D, 1, false),
        new Case("int8 window prefill", KvType.INT8, 8, 80, 1, 8, l(9, 333, 29), es(e(0, 5), e(1, 333), e(2, 1)), 0, 16, false, Layout.IN_PLACE, 1, false),
        new Case("int8 needles", KvType.INT8, 16, 256, 1, 4, l(2100), es(e(0, 3)), 50, 0, true, Layout.PLAIN, 1, true),
        new Case("int8 repeat", KvType.INT8, 256, 128, 2, 4, l(257, 3001, 5), es(e(0, 5), e(1, 1), e(2, 5), e(1, 1)), 0, 0, true, Layout.PLAIN, 1, false),
        // just past the split (16 query tokens) and the 512-key chunk: the two paths on either side
        new Case("split threshold", KvType.F32, 16, 64, 1, 1, l(520, 1100), es(e(0, 17), e(1, 16)), 0, 0, true, Layout.PLAIN, 1, false));

    static Stream<Integer> cases() {
        return java.util.stream.IntStream.range(0, CASES.size()).boxed();
    }

    @AfterEach
    void restoreIsa() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    @ParameterizedTest(name = "{index}: case {0}")
    @MethodSource("cases")
    void matchesReference(int index) {
        run(CASES.get(index), SEED + index);
    }

    /** A case per KvType under every ISA variant this CPU has. */
    @Test
    void everyIsaVariant() {
        for (Isa isa : KvTestSupport.isas()) {
            Isthmus.setIsaCap(isa);
            for (int index : new int[] {0, 7, 8, 13}) {
                try {
                    run(CASES.get(index), SEED + 100 + index);
                } catch (AssertionError err) {
                    throw new AssertionError("ISA " + isa + ": " + err.getMessage(), err);
                }
            }
        }
    }

    /**
     * Random combinations of the same dimensions (type, block size, head dim, GQA group, lengths around
     * block and split edges, q_len, softcap, window, lse, layout), each under one of the ISA variants
     * this CPU has, in turn.
     */
    @ParameterizedTest(name = "{index}: sweep seed {0}")
    @MethodSource("sweepSeeds")
    void randomSweep(long seed) {
        List<Isa> isas = KvTestSupport.isas();
        Isa isa = isas.get((int) (seed % isas.size()));
        Isthmus.setIsaCap(isa);
        Case c = randomCase(seed);
        try {
            run(c, seed);
        } catch (AssertionError err) {
            throw new AssertionError("ISA " + isa + ": " + err.getMessage(), err);
        }
    }

    static Stream<Long> sweepSeeds() {
        return java.util.stream.LongStream.range(0, 60).mapToObj(i -> SEED * 7 + i);
    }

    static Case randomCase(long seed) {
        Random r = new Random(new java.util.SplittableRandom(seed).nextLong()); // nearby seeds, unrelated draws
        KvType type = KvType.values()[r.nextInt(4)];
        int bs = new int[] {1, 8, 16, 256}[r.nextInt(4)];
        int hd = new int[] {64, 80, 128, 256}[r.nextInt(4)];
        int group = new int[] {1, 4, 8}[r.nextInt(3)];
        int kvH = 1 + r.nextInt(2), qH = kvH * group;
        float softcap = r.nextInt(4) == 0 ? 5 : 0;
        int window = r.nextInt(4) == 0 ? new int[] {1, 7, 100, 600}[r.nextInt(4)] : 0;
        int n = 1 + r.nextInt(4);
        int[] lens = new int[n];
        List<Entry> entries = new ArrayList<>();
        long work = 0;
        for (int i = 0; i < n; i++) {
            int qLen = new int[] {1, 1, 2, 5, 5, 16, 17, 333}[r.nextInt(8)];
            if (qLen == 333 && (long) qH * hd > 1024) qLen = 17;
            int[] near = {1, 2, 3, bs - 1, bs, bs + 1, 2 * bs + 1, 37, 101, 509, 511, 512, 513, 1031, 2053};
            int len;
            do {
                len = near[r.nextInt(near.length)];
            } while (len < qLen || len < 1);
            long visible = window > 0 ? Math.min(window, len) : len;
            work += (long) qLen * visible * qH * hd;
            if (work > 100_000_000L) {
                qLen = 1;
                len = Math.max(1, Math.min(len, 513));
            }
            lens[i] = len;
            entries.add(e(i, qLen));
        }
        boolean repeat = n > 1 && r.nextInt(5) == 0;
        if (repeat) entries.add(e(0, 1 + r.nextInt(Math.min(lens[0], 5))));
        Layout layout = Layout.values()[r.nextInt(4)];
        if (repeat && layout == Layout.FUSED) layout = Layout.PLAIN;
        return new Case("sweep", type, bs, hd, kvH, group, lens, entries.toArray(new Entry[0]), softcap, window,
                r.nextBoolean(), layout, softcap > 0 ? 3 : 1, false);
    }

    static void run(Case c, long seed) {
        String where = "case [" + c + "] seed " + seed;
        Random r = new Random(seed);
        int hd = c.headDim, kvH = c.kvHeads, qH = kvH * c.group, kvCols = kvH * hd, qCols = qH * hd;
        int nSeq = c.lengths.length;
        int[] maxQ = new int[nSeq];
        for (Entry en : c.entries) maxQ[en.seq] = Math.max(maxQ[en.seq], en.qLen);
        int blocks = 1, maxLen = 1;
        for (int len : c.lengths) {
            blocks += (len + c.blockSize - 1) / c.blockSize;
            maxLen = Math.max(maxLen, len);
        }
        KvConfig cfg = KvConfig.builder().layers(2).kvHeads(kvH).headDim(hd).blockSize(c.blockSize).type(c.type)
                .numBlocks(blocks).maxSequences(nSeq).maxSequenceLength(maxLen).build();

        // K and V of every sequence in layer 1 (the one attended), and other data for layer 0
        float[][] k1 = new float[nSeq][], v1 = new float[nSeq][], k0 = new float[nSeq][], v0 = new float[nSeq][];
        float[][] dir = new float[kvH][];
        for (int g = 0; g < kvH; g++) dir[g] = KvTestSupport.gaussian(r, hd, 1);
        for (int i = 0; i < nSeq; i++) {
            int len = c.lengths[i];
            k1[i] = KvTestSupport.gaussian(r, len * kvCols, c.needles ? 0.05 : 1);
            v1[i] = KvTestSupport.gaussian(r, len * kvCols, 1);
            k0[i] = KvTestSupport.gaussian(r, len * kvCols, 1);
            v0[i] = KvTestSupport.gaussian(r, len * kvCols, 1);
            if (c.needles) for (int p : needlePositions(len, maxQ[i], c.window))
                for (int g = 0; g < kvH; g++)
                    for (int d = 0; d < hd; d++) k1[i][p * kvCols + g * hd + d] = 4 * dir[g][d];
        }

        try (KvCache cache = KvCache.create(cfg)) {
            Sequence[] seqs = new Sequence[nSeq];
            Batch.Builder pre = Batch.builder();
            boolean anyPrefix = false;
            for (int i = 0; i < nSeq; i++) {
                seqs[i] = cache.newSequence();
                if (c.lengths[i] > maxQ[i]) {
                    pre.add(seqs[i], c.lengths[i] - maxQ[i]);
                    anyPrefix = true;
                }
            }
            if (anyPrefix) {
                Batch b = pre.build();
                cache.extend(b);
                writeLayers(cache, b, seqs, new int[] {0, 1}, k0, v0, k1, v1, kvCols);
            }
            Batch.Builder nb = Batch.builder();
            for (int i = 0; i < nSeq; i++) nb.add(seqs[i], maxQ[i]);
            Batch newest = nb.build();
            cache.extend(newest);
            for (int i = 0; i < nSeq; i++) assertEquals(c.lengths[i], seqs[i].length(), where);

            Batch.Builder ab = Batch.builder();
            for (Entry en : c.entries) ab.add(seqs[en.seq], en.qLen);
            Batch batch = ab.build();
            int t = Math.toIntExact(batch.tokens());

            // Q rows of the attention batch
            float[] q = new float[t * qCols];
            for (int row = 0; row < t; row++)
                for (int h = 0; h < qH; h++)
                    for (int d = 0; d < hd; d++) {
                        int o = row * qCols + h * hd + d;
                        q[o] = c.needles ? dir[h / c.group][d] + (float) (0.05 * r.nextGaussian())
                                : (float) (c.qScale * r.nextGaussian());
                    }

            float[] outRows;
            float[] lseRows = null;
            AttentionParams params = AttentionParams.of(qH, hd).withSoftcap(c.softcap).withWindow(c.window);
            Tensor lse = c.lse ? Tensor.allocate(DType.F32, t, qH) : null;
            try {
                if (lse != null) {
                    fill(lse.segment(), Float.NaN);
                    params = params.withLse(lse);
                }
                if (c.layout == Layout.FUSED) {
                    if (!batch.equals(newest)) throw new IllegalStateException("FUSED cases attend the batch they write");
                    writeLayers(cache, newest, seqs, new int[] {0}, k0, v0, k1, v1, kvCols);
                    outRows = fused(cache, batch, seqs, q, k1, v1, c, params, where);
                } else {
                    writeLayers(cache, newest, seqs, new int[] {0, 1}, k0, v0, k1, v1, kvCols);
                    outRows = attend(cache, batch, q, c, params, qH, hd);
                }
                if (lse != null) lseRows = lse.toFloatArray();
            } finally {
                if (lse != null) lse.close();
            }

            // what the cache holds, read back: exactly the stored rounding of what was written
            double[] ref = new double[t * qCols];
            double[] refLse = new double[t * qH];
            float[][] kb = new float[nSeq][], vb = new float[nSeq][];
            for (int i = 0; i < nSeq; i++) {
                float[][] kv = KvTestSupport.readBack(cache, 1, seqs[i], 0, c.lengths[i]);
                kb[i] = kv[0];
                vb[i] = kv[1];
                assertStored(c.type, k1[i], kb[i], hd, kvCols, where + ", K of sequence " + i);
                assertStored(c.type, v1[i], vb[i], hd, kvCols, where + ", V of sequence " + i);
                float[][] kv0 = KvTestSupport.readBack(cache, 0, seqs[i], 0, c.lengths[i]);
                assertStored(c.type, k0[i], kv0[0], hd, kvCols, where + ", layer 0 K of sequence " + i);
                assertStored(c.type, v0[i], kv0[1], hd, kvCols, where + ", layer 0 V of sequence " + i);
            }
            int row0 = 0;
            for (Entry en : c.entries) {
                KvTestSupport.reference(q, row0, en.qLen, c.lengths[en.seq], kb[en.seq], vb[en.seq], qH, kvH, hd,
                        params.scale(), c.softcap, c.window, ref, refLse,
                        KvTestSupport.roundsQueryToInt8(c.type, c.blockSize));
                row0 += en.qLen;
            }
            compare(outRows, ref, c, qH, hd, "out", where);
            if (c.lse) compare(lseRows, refLse, c, qH, 1, "lse", where);
        }
    }

    /** Positions whose keys dominate: split-chunk edges, the newest keys, the window's edges. */
    static TreeSet<Integer> needlePositions(int len, int qLen, int window) {
        TreeSet<Integer> p = new TreeSet<>();
        for (int b = 512; b < len + 512; b += 512) {
            p.add(b - 1);
            p.add(b);
        }
        p.add(0);
        p.add(len - 1);
        p.add(len - 2);
        for (int t = 0; t < qLen && window > 0; t++) {
            int pos = len - qLen + t, lo = pos - window + 1;
            p.add(lo);
            p.add(lo - 1);
        }
        p.removeIf(x -> x < 0 || x >= len);
        return p;
    }

    /** Writes the batch's rows (the newest qLen positions of each entry) to the given layers. */
    static void writeLayers(KvCache cache, Batch b, Sequence[] seqs, int[] layers, float[][] k0, float[][] v0,
                            float[][] k1, float[][] v1, int kvCols) {
        for (int layer : layers) {
            float[][] ks = layer == 0 ? k0 : k1, vs = layer == 0 ? v0 : v1;
            float[] kr = rows(cache, b, seqs, ks, kvCols), vr = rows(cache, b, seqs, vs, kvCols);
            try (Tensor k = Tensor.of(kr, b.tokens(), kvCols); Tensor v = Tensor.of(vr, b.tokens(), kvCols)) {
                cache.write(layer, b, k, v, Rope.NONE);
            }
        }
    }

    /** The stacked rows of the batch's newest positions. */
    static float[] rows(KvCache cache, Batch b, Sequence[] seqs, float[][] data, int cols) {
        float[] out = new float[Math.toIntExact(b.tokens() * cols)];
        long[] pos = b.positions();
        int row = 0;
        for (int e = 0; e < b.size(); e++) {
            int i = Arrays.asList(seqs).indexOf(b.sequence(e));
            for (int j = 0; j < b.qLen(e); j++, row++)
                System.arraycopy(data[i], (int) pos[row] * cols, out, row * cols, cols);
        }
        return out;
    }

    static float[] attend(KvCache cache, Batch batch, float[] q, Case c, AttentionParams params, int qH, int hd) {
        long t = batch.tokens();
        switch (c.layout) {
            case PLAIN -> {
                try (Tensor qt = Tensor.of(q, t, (long) qH * hd); Tensor out = Tensor.allocate(DType.F32, t, (long) qH * hd)) {
                    fill(out.segment(), Float.NaN);
                    cache.attention(1, batch, qt, out, params);
                    return out.toFloatArray();
                }
            }
            case HEADS3D -> {
                try (Tensor qt = Tensor.of(q, t, qH, hd); Tensor out = Tensor.allocate(DType.F32, t, qH, hd)) {
                    fill(out.segment(), Float.NaN);
                    cache.attention(1, batch, qt, out, params);
                    return out.toFloatArray();
                }
            }
            case IN_PLACE -> {
                try (Tensor qt = Tensor.of(q, t, (long) qH * hd)) {
                    cache.attention(1, batch, qt, qt, params);
                    return qt.toFloatArray();
                }
            }
            default -> throw new IllegalArgumentException(c.layout.toString());
        }
    }

    /**
     * Q, K and V as strided views of one fused buffer [T, qCols + 2 * kvCols + pad]; out a strided view of
     * another whose padding columns must survive the call.
     */
    static float[] fused(KvCache cache, Batch batch, Sequence[] seqs, float[] q, float[][] k1, float[][] v1, Case c,
                         AttentionParams params, String where) {
        int qH = params.queryHeads(), hd = c.headDim, kvCols = c.kvHeads * hd, qCols = qH * hd;
        long t = batch.tokens();
        long ld = qCols + 2L * kvCols + 16, ldo = qCols + 8L;
        float[] kr = rows(cache, batch, seqs, k1, kvCols), vr = rows(cache, batch, seqs, v1, kvCols);
        try (Tensor qkv = Tensor.allocate(DType.F32, t, ld); Tensor ob = Tensor.allocate(DType.F32, t, ldo)) {
            MemorySegment s = qkv.segment();
            for (int row = 0; row < t; row++) {
                MemorySegment.copy(q, row * qCols, s, ValueLayout.JAVA_FLOAT, row * ld * 4, qCols);
                MemorySegment.copy(kr, row * kvCols, s, ValueLayout.JAVA_FLOAT, (row * ld + qCols) * 4, kvCols);
                MemorySegment.copy(vr, row * kvCols, s, ValueLayout.JAVA_FLOAT, (row * ld + qCols + kvCols) * 4, kvCols);
            }
            Tensor qv = Tensor.wrap(s, DType.F32, new long[] {t, qCols}, new long[] {ld, 1});
            Tensor kv = Tensor.wrap(s.asSlice(qCols * 4L), DType.F32, new long[] {t, kvCols}, new long[] {ld, 1});
            Tensor vv = Tensor.wrap(s.asSlice((qCols + kvCols) * 4L), DType.F32, new long[] {t, kvCols}, new long[] {ld, 1});
            Tensor ov = Tensor.wrap(ob.segment(), DType.F32, new long[] {t, qCols}, new long[] {ldo, 1});
            fill(ob.segment(), 12345f);
            cache.write(1, batch, kv, vv, Rope.NONE);
            cache.attention(1, batch, qv, ov, params);
            float[] all = ob.toFloatArray();
            for (int row = 0; row < t; row++)
                for (long j = qCols; j < ldo; j++)
                    if (all[(int) (row * ldo + j)] != 12345f)
                        fail(where + ": attention wrote padding column " + j + " of row " + row + " of the strided out");
            return ov.toFloatArray();
        }
    }

    static void fill(MemorySegment s, float value) {
        for (long i = 0; i < s.byteSize() / 4; i++) s.setAtIndex(ValueLayout.JAVA_FLOAT, i, value);
    }

    static void assertStored(KvType type, float[] written, float[] read, int hd, int cols, String where) {
        float[] want = KvTestSupport.stored(type, written, cols / hd, hd);
        assertEquals(want.length, read.length, where);
        for (int i = 0; i < want.length; i++)
            if (Float.floatToIntBits(want[i]) != Float.floatToIntBits(read[i]))
                fail(where + ": position " + i / cols + ", head " + (i % cols) / hd + ", dim " + i % hd + " reads "
                        + read[i] + ", expected " + want[i] + " (written " + written[i] + ")");
    }

    static void compare(float[] got, double[] want, Case c, int qH, int inner, String what, String where) {
        int bad = 0;
        StringBuilder sb = new StringBuilder();
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            double err = Math.abs(got[i] - want[i]);
            double allowed = TOL * (1 + Math.abs(want[i]));
            if (!(err <= allowed)) {
                if (bad++ < 5) {
                    int row = i / (qH * inner), h = (i / inner) % qH, d = i % inner;
                    sb.append(String.format("%n  %s[row %d, head %d, dim %d] = %s, reference %.7f", what, row, h, d,
                            got[i], want[i]));
                }
            }
            worst = Math.max(worst, Double.isNaN(err) ? Double.POSITIVE_INFINITY : err / (1 + Math.abs(want[i])));
        }
        if (bad > 0)
            fail(where + ": " + bad + " of " + want.length + " " + what + " values off by more than " + TOL
                    + " * (1 + |ref|) (worst scaled error " + worst + "):" + sb);
    }
}
