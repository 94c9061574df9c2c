package dev.isthmus.attention;

import static dev.isthmus.PropertySupport.count;
import static dev.isthmus.PropertySupport.nonZero;
import static dev.isthmus.PropertySupport.refused;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.PropertySupport;
import dev.isthmus.Tensor;

import java.util.List;
import java.util.Random;

import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.AfterTry;

/**
 * Properties of the attention API ({@link KvConfig}, {@link KvCache}, {@link Sequence}, {@link Batch},
 * {@link Rope}, {@link AttentionParams}): random configurations store and read back K/V as the cache type rounds
 * them ({@link KvTestSupport#stored}, exact); attention agrees with the double reference through
 * {@link AttentionTest#run} on random cases ({@link AttentionTest#randomCase}: types, block sizes, head dims, GQA
 * groups, windows, softcaps, layouts; tolerance {@code 1e-3 (1 + |ref|)}, justified there); Rope.apply with
 * {@link RopeTest}'s reference ({@code 1e-6} relative); bad parameters, tensors (closed, foreign, heap, dtype,
 * shape, null), layers, ranges, freed sequences and closed caches are refused with the documented exception naming
 * the argument.
 */
class AttentionPropertyTest {
    @AfterContainer
    static void report() {
        PropertySupport.report(AttentionPropertyTest.class);
    }

    @AfterTry
    void restoreIsa() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    static Isa isa(int pick) {
        List<Isa> l = KvTestSupport.isas();
        return l.get(Math.floorMod(pick, l.size()));
    }

    static KvConfig config(Random r, KvType type) {
        int bs = 1 << r.nextInt(7);
        return KvConfig.builder().layers(1 + r.nextInt(3)).kvHeads(1 + r.nextInt(3)).headDim(16 * (1 + r.nextInt(8)))
                .blockSize(bs).type(type).numBlocks(8 + 300 / bs).maxSequences(2 + r.nextInt(3))
                .maxSequenceLength(200).build();
    }

    @Property
    void attentionAgreesWithTheReference(@ForAll long seed) {
        count(getClass());
        AttentionTest.run(AttentionTest.randomCase(seed), seed);
    }

    @Property
    void writtenKvReadsBackAsTheTypeStoresIt(@ForAll @IntRange(max = 3) int typePick, @ForAll int isaPick,
                                             @ForAll long seed) {
        count(getClass());
        Isthmus.setIsaCap(isa(isaPick));
        Random r = new Random(seed);
        KvType type = KvType.values()[typePick];
        KvConfig c = config(r, type);
        int cols = c.kvHeads() * c.headDim();
        try (KvCache cache = KvCache.create(c)) {
            int nSeq = 1 + r.nextInt(c.maxSequences());
            Sequence[] seqs = new Sequence[nSeq];
            Batch.Builder bb = Batch.builder();
            int total = 0;
            for (int i = 0; i < nSeq; i++) {
                seqs[i] = cache.newSequence();
                int len = 1 + r.nextInt(40);
                bb.add(seqs[i], len);
                total += len;
            }
            Batch batch = bb.build();
            assertEquals(total, batch.tokens());
            cache.extend(batch);
            int layer = r.nextInt(c.layers());
            float[] k = nonZero(r, total * cols, 1), v = nonZero(r, total * cols, 2);
            try (Tensor kt = Tensor.of(k, total, cols); Tensor vt = Tensor.of(v, total, c.kvHeads(), c.headDim())) {
                cache.write(layer, batch, kt, vt, Rope.NONE);
            }
            float[] ks = KvTestSupport.stored(type, k, c.kvHeads(), c.headDim());
            float[] vs = KvTestSupport.stored(type, v, c.kvHeads(), c.headDim());
            int row = 0;
            for (int i = 0; i < nSeq; i++) {
                int len = batch.qLen(i);
                assertEquals(len, seqs[i].length());
                long start = r.nextInt(len), count = 1 + r.nextInt((int) (len - start));
                float[][] back = KvTestSupport.readBack(cache, layer, seqs[i], start, count);
                int from = (int) ((row + start) * cols), to = (int) ((row + start + count) * cols);
                assertArrayEquals(java.util.Arrays.copyOfRange(ks, from, to), back[0], type + " K of sequence " + i);
                assertArrayEquals(java.util.Arrays.copyOfRange(vs, from, to), back[1], type + " V of sequence " + i);
                row += len;
            }
            KvCache.Stats st = cache.stats();
            assertEquals(nSeq, st.liveSequences());
            assertEquals(total, st.tokens());
            // truncate then fork: lengths follow
            long cut = r.nextInt((int) seqs[0].length() + 1);
            seqs[0].truncate(cut);
            assertEquals(cut, seqs[0].length());
            if (nSeq < c.maxSequences()) {
                try (Sequence f = seqs[0].fork()) {
                    assertEquals(cut, f.length());
                }
            }
            for (Sequence s : seqs) s.close();
            assertEquals(0, cache.stats().liveSequences());
        }
    }

    @Property
    void ropeAgreesWithTheReference(@ForAll @IntRange(min = 1, max = 40) int tokens, @ForAll @IntRange(min = 1, max = 4) int heads,
                                    @ForAll @IntRange(min = 1, max = 16) int halfDim, @ForAll @IntRange(max = 2) int layout,
                                    @ForAll boolean interleaved, @ForAll int isaPick, @ForAll long seed) {
        count(getClass());
        Isthmus.setIsaCap(isa(isaPick));
        Random r = new Random(seed);
        int headDim = 2 * halfDim;
        Rope rope = (interleaved ? Rope.interleaved(1e4) : Rope.half(5e5));
        if (r.nextBoolean()) rope = rope.withRotaryDim(2 * (1 + r.nextInt(halfDim)));
        float[] x = nonZero(r, tokens * heads * headDim, 1);
        long[] pos = RopeTest.positions(r, tokens);
        float[] got = RopeTest.applied(x, tokens, heads, headDim, pos, rope, layout);
        RopeTest.check(x, got, RopeTest.reference(x, tokens, heads, headDim, pos, rope), headDim, rope,
                rope + " tokens=" + tokens + " heads=" + heads + " headDim=" + headDim + " layout=" + layout);
    }

    // ------------------------------------------------------------------ refusals

    @Property
    void badConfigurationsAreRefused(@ForAll int value, @ForAll @IntRange(max = 6) int which) {
        count(getClass());
        KvConfig.Builder b = AttentionBadInputTest.base();
        boolean bad;
        String name;
        switch (which) {
            case 0 -> { b.layers(value); bad = value < 1; name = "layers"; }
            case 1 -> { b.kvHeads(value); bad = value < 1; name = "kvHeads"; }
            case 2 -> { b.headDim(value); bad = value < 16 || value > 512 || value % 16 != 0; name = "headDim"; }
            case 3 -> { b.blockSize(value); bad = value < 1 || value > 256 || Integer.bitCount(value) != 1; name = "blockSize"; }
            case 4 -> { b.numBlocks(value); bad = value < 1; name = "numBlocks"; }
            case 5 -> { b.maxSequences(value); bad = value < 1; name = "maxSequences"; }
            default -> { b.maxSequenceLength(value); bad = value < 1 || value > KvConfig.MAX_SEQUENCE_LENGTH; name = "maxSequenceLength"; }
        }
        if (bad) refused(IllegalArgumentException.class, name, b::build);
        else if (which != 1 && which != 4 && which != 5 && which != 0) b.build(); // sizes that stay small
        float f = Float.intBitsToFloat(value);
        if (!(f > 0) || !Float.isFinite(f)) refused(IllegalArgumentException.class, "scale", () -> AttentionParams.of(4, 64).withScale(f));
        if (!(f == 0 || (f > 0 && Float.isFinite(f))))
            refused(IllegalArgumentException.class, "softcap", () -> AttentionParams.of(4, 64).withSoftcap(f));
        if (value < 0) refused(IllegalArgumentException.class, "window", () -> AttentionParams.of(4, 64).withWindow(value));
        if (value < 1) refused(IllegalArgumentException.class, "queryHeads", () -> AttentionParams.of(value, 64));
        double theta = Double.longBitsToDouble((long) value * 0x9E3779B97F4A7C15L);
        // the documented rule: finite and > 1 once rounded to the float the kernels use
        if (!(theta > 1 && (float) theta > 1 && Float.isFinite((float) theta)))
            refused(IllegalArgumentException.class, "theta", () -> Rope.half(theta));
        else assertEquals(theta, Rope.half(theta).theta());
        if (value < 0 || value % 2 != 0)
            refused(IllegalArgumentException.class, "rotaryDim", () -> Rope.half(1e4).withRotaryDim(value));
        refused(IllegalArgumentException.class, "config", () -> KvCache.create(null));
    }

    @Property
    void badArgumentsToTheCacheAreRefused(@ForAll int pick, @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        KvConfig c = config(r, KvType.values()[Math.floorMod(pick, 4)]);
        int cols = c.kvHeads() * c.headDim(), qHeads = c.kvHeads() * (1 + r.nextInt(2));
        int len = 1 + r.nextInt(20);
        try (KvCache cache = KvCache.create(c); KvCache other = KvCache.create(c)) {
            Sequence s = cache.newSequence();
            Batch batch = Batch.of(s, len);
            cache.extend(batch);
            boolean[] no = {false, false, false};
            try (Tensor k = Tensor.of(nonZero(r, len * cols, 1), len, cols);
                 Tensor v = Tensor.of(nonZero(r, len * cols, 1), len, cols);
                 Tensor q = Tensor.of(nonZero(r, len * qHeads * c.headDim(), 1), len, (long) qHeads * c.headDim());
                 Tensor out = Tensor.allocate(DType.F32, len, (long) qHeads * c.headDim());
                 Tensor lse = Tensor.allocate(DType.F32, len, qHeads)) {
                PropertySupport.refusesBadTensors(new String[] {"k", "v"}, new Tensor[] {k, v}, no, true, pick,
                        t -> cache.write(0, batch, t[0], t[1], Rope.NONE));
                cache.write(0, batch, k, v, Rope.NONE);
                AttentionParams params = AttentionParams.of(qHeads, c.headDim());
                PropertySupport.refusesBadTensors(new String[] {"q", "out"}, new Tensor[] {q, out}, no, true, pick,
                        t -> cache.attention(0, batch, t[0], t[1], params));
                PropertySupport.refusesBadTensors(new String[] {"params.lse"}, new Tensor[] {lse}, new boolean[] {true}, true, pick,
                        t -> cache.attention(0, batch, q, out, params.withLse(t[0])));
                PropertySupport.refusesBadTensors(new String[] {"k", "v"}, new Tensor[] {k, v},
                        new boolean[] {true, true}, true, pick, t -> cache.read(0, s, 0, len, t[0], t[1]));
                PropertySupport.refusesBadTensors(new String[] {"x"}, new Tensor[] {q}, no, false, pick,
                        t -> Rope.apply(t[0], qHeads, batch.positions(), Rope.half(1e4)));
                int badLayer = r.nextBoolean() ? -1 - r.nextInt(3) : c.layers() + r.nextInt(3);
                refused(IllegalArgumentException.class, "layer", () -> cache.write(badLayer, batch, k, v, Rope.NONE));
                refused(IllegalArgumentException.class, "layer", () -> cache.read(badLayer, s, 0, 1, k.rows(0, 1), null));
                refused(IllegalArgumentException.class, "layer", () -> cache.attention(badLayer, batch, q, out, params));
                refused(IllegalArgumentException.class, "batch", () -> cache.write(0, null, k, v, Rope.NONE));
                refused(IllegalArgumentException.class, "rope", () -> cache.write(0, batch, k, v, null));
                refused(IllegalArgumentException.class, "params", () -> cache.attention(0, batch, q, out, null));
                refused(IllegalArgumentException.class, "sequence", () -> cache.read(0, null, 0, 1, k, v));
                long start = r.nextInt(len + 2) - 1, cnt = r.nextInt(len + 2) - 1;
                if (start < 0 || cnt < 1 || start + cnt > len)
                    refused(IllegalArgumentException.class, "positions", () -> cache.read(0, s, start, cnt, k, v));
                refused(IllegalArgumentException.class, "positions",
                        () -> cache.write(0, batch, k, v, Rope.half(1e4), new long[len + 1]));
                long[] pos = new long[len];
                pos[r.nextInt(len)] = r.nextBoolean() ? -1 : (1L << 40) + 1;
                refused(IllegalArgumentException.class, "positions", () -> cache.write(0, batch, k, v, Rope.half(1e4), pos));
                refused(IllegalArgumentException.class, "positions", () -> Rope.apply(q, qHeads, pos, Rope.half(1e4)));
                refused(IllegalArgumentException.class, "treeParents",
                        () -> cache.attention(0, batch, q, out, params, new int[len + 1]));
                int[] parents = new int[len];
                for (int i = 0; i < len; i++) parents[i] = i - 1;
                parents[r.nextInt(len)] = len + r.nextInt(3);
                refused(IllegalArgumentException.class, "treeParents", () -> cache.attention(0, batch, q, out, params, parents));
                refused(IllegalArgumentException.class, "heads", () -> Rope.apply(q, 0, batch.positions(), Rope.NONE));
                refused(IllegalArgumentException.class, "qLen", () -> Batch.of(s, -r.nextInt(3)));
                refused(IllegalArgumentException.class, "sequence", () -> Batch.of(null, 1));
                refused(IllegalArgumentException.class, "batch", () -> Batch.builder().build());
                refused(IllegalArgumentException.class, "n", () -> s.extend(-r.nextInt(3)));
                refused(IllegalArgumentException.class, "length", () -> s.truncate(len + 1 + r.nextInt(3)));
                refused(IllegalArgumentException.class, "length", () -> s.truncate(-1 - r.nextInt(3)));
                // a sequence of another cache
                Sequence foreign = other.newSequence();
                refused(IllegalArgumentException.class, "sequence", () -> cache.read(0, foreign, 0, 1, k, v));
                refused(IllegalArgumentException.class, "parent", () -> cache.fork(foreign));
                // a freed sequence
                Sequence gone = cache.newSequence();
                Batch goneBatch = Batch.of(gone, 1);
                gone.close();
                gone.close(); // idempotent
                assertFalse(gone.isOpen());
                refused(IllegalStateException.class, "sequence", () -> cache.read(0, gone, 0, 1, k, v));
                refused(IllegalStateException.class, "", () -> cache.extend(goneBatch));
                refused(IllegalStateException.class, "", gone::length);
                refused(IllegalStateException.class, "", gone::fork);
            }
            // a closed cache refuses every call
            cache.close();
            cache.close(); // idempotent
            assertFalse(cache.isOpen());
            try (Tensor k = Tensor.allocate(DType.F32, len, cols)) {
                refused(IllegalStateException.class, "KvCache", () -> cache.write(0, batch, k, k, Rope.NONE));
                refused(IllegalStateException.class, "KvCache", () -> cache.read(0, s, 0, 1, k.rows(0, 1), null));
                refused(IllegalStateException.class, "KvCache", cache::newSequence);
                refused(IllegalStateException.class, "KvCache", cache::stats);
                refused(IllegalStateException.class, "KvCache", () -> cache.extend(batch));
                refused(IllegalStateException.class, "", s::length);
                assertTrue(!s.isOpen());
            }
        }
    }

    /** Regression: Rope.apply let a position past 2^40 through to native code, which refused it: an
     *  IsthmusException for what Java checks (KvCache.write already refused it). */
    @net.jqwik.api.Example
    void ropePositionsPastTheNativeRangeAreIllegalArguments() {
        try (Tensor x = Tensor.of(new float[32], 2, 16)) {
            refused(IllegalArgumentException.class, "positions[1]",
                    () -> Rope.apply(x, 1, new long[] {0, (1L << 40) + 1}, Rope.half(1e4)));
            Rope.apply(x, 1, new long[] {0, 1L << 40}, Rope.half(1e4)); // the largest allowed
        }
    }
}
