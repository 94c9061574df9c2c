package dev.isthmus.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.Tensor;

import java.util.Random;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Token-tree attention through {@link KvCache#attention(int, Batch, Tensor, Tensor, AttentionParams, int[])}
 * against a double-precision reference that masks every softmax by the tree (the prefix is always visible;
 * among the new tokens, a token sees its ancestors and itself), for every KvType and ISA variant, a batch of
 * sequences each with its own tree (chains, stars, random, deep), GQA and log-sum-exp. The reference reads
 * K and V back from the cache, so storage rounding is no error; INT8 runs with blocks of 8 tokens, where no
 * variant rounds q to int8. Tolerance {@code 1e-3 * (1 + |ref|)}, as {@link AttentionTest} states. Also: a
 * chain equals the causal mask bit for bit, RoPE positions on write equal {@link Rope#apply} at those
 * positions, and bad trees and positions fail with messages naming the index and the sequence.
 */
class TreeAttentionTest {
    static final int KV_HEADS = 2, QH = 8, HD = 32;

    @AfterEach
    void resetIsa() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    static KvCache cache(KvType type, int blockSize) {
        return KvCache.create(KvConfig.builder().layers(1).kvHeads(KV_HEADS).headDim(HD).blockSize(blockSize).type(type)
                .numBlocks(256).maxSequences(4).maxSequenceLength(1024).build());
    }

    /** Parents for n nodes: 0 chain, 1 star on the prefix, 2 random, 3 deep (mostly a chain). */
    static int[] tree(int kind, int n, Random r) {
        int[] p = new int[n];
        for (int u = 0; u < n; u++)
            p[u] = switch (kind) {
                case 0 -> u - 1;
                case 1 -> -1;
                case 2 -> r.nextInt(u + 1) - 1;
                default -> u == 0 || r.nextInt(8) > 0 ? u - 1 : r.nextInt(u + 1) - 1;
            };
        return p;
    }

    /** Extends seq by n and writes random K/V. */
    static void append(KvCache cache, Sequence s, int n, Random r) {
        cache.extend(Batch.of(s, n));
        int w = KV_HEADS * HD;
        try (Tensor k = Tensor.of(KvTestSupport.gaussian(r, n * w, 1), n, w);
             Tensor v = Tensor.of(KvTestSupport.gaussian(r, n * w, 1), n, w)) {
            cache.write(0, Batch.of(s, n), k, v, Rope.NONE);
        }
    }

    @ParameterizedTest
    @EnumSource(KvType.class)
    void treesMatchTheMaskedReference(KvType type) {
        Random r = new Random(77 + type.ordinal());
        int bs = type == KvType.INT8 ? 8 : 16;
        int[] prefix = {30, 5, 100}, nodes = {12, 1, 40};
        try (KvCache cache = cache(type, bs)) {
            Sequence[] s = new Sequence[3];
            Batch.Builder b = Batch.builder();
            int total = 0;
            for (int i = 0; i < 3; i++) {
                s[i] = cache.newSequence();
                append(cache, s[i], prefix[i] + nodes[i], r);
                b.add(s[i], nodes[i]);
                total += nodes[i];
            }
            Batch batch = b.build();
            for (int kind = 0; kind < 4; kind++) {
                int[] parents = new int[total];
                int row = 0;
                for (int i = 0; i < 3; i++) {
                    int[] p = tree(kind == 3 && i == 1 ? 2 : kind, nodes[i], r);
                    System.arraycopy(p, 0, parents, row, p.length);
                    row += p.length;
                }
                float[] q = KvTestSupport.gaussian(r, total * QH * HD, 1.5);
                double[] want = new double[total * QH * HD], wantLse = new double[total * QH];
                row = 0;
                for (int i = 0; i < 3; i++) {
                    int len = prefix[i] + nodes[i];
                    float[][] kv = KvTestSupport.readBack(cache, 0, s[i], 0, len);
                    reference(q, row, nodes[i], len, kv[0], kv[1], parents, 0.2f, want, wantLse);
                    row += nodes[i];
                }
                for (Isa isa : KvTestSupport.isas()) {
                    Isthmus.setIsaCap(isa);
                    try (Tensor qt = Tensor.of(q, total, QH * HD); Tensor out = Tensor.allocate(DType.F32, total, QH * HD);
                         Tensor lse = Tensor.allocate(DType.F32, total, QH)) {
                        AttentionParams params = AttentionParams.of(QH, HD).withScale(0.2f).withLse(lse);
                        cache.attention(0, batch, qt, out, params, parents);
                        float[] got = out.toFloatArray(), gotLse = lse.toFloatArray();
                        for (int e = 0; e < got.length; e++)
                            if (!(Math.abs(got[e] - want[e]) <= 1e-3 * (1 + Math.abs(want[e]))))
                                fail(type + " " + isa + " tree kind " + kind + ": out[" + e + "] = " + got[e] + ", reference "
                                        + want[e]);
                        for (int e = 0; e < gotLse.length; e++)
                            assertEquals(wantLse[e], gotLse[e], 1e-3 * (1 + Math.abs(wantLse[e])),
                                    type + " " + isa + " lse[" + e + "]");
                    }
                }
            }
        }
    }

    /** The masked double reference: rows row0 .. row0 + n - 1 are the sequence's n new tokens (tree nodes). */
    static void reference(float[] q, int row0, int n, int len, float[] k, float[] v, int[] parents, float scale,
                          double[] out, double[] lse) {
        int group = QH / KV_HEADS, kvCols = KV_HEADS * HD, base = len - n;
        double[] s = new double[len];
        boolean[] vis = new boolean[len];
        for (int t = 0; t < n; t++) {
            java.util.Arrays.fill(vis, 0, base, true);
            java.util.Arrays.fill(vis, base, len, false);
            for (int a = t; a >= 0; a = parents[row0 + a]) vis[base + a] = true;
            for (int h = 0; h < QH; h++) {
                int qo = (row0 + t) * QH * HD + h * HD, g = h / group;
                double m = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < len; j++) {
                    if (!vis[j]) continue;
                    double dot = 0;
                    for (int d = 0; d < HD; d++) dot += (double) q[qo + d] * k[j * kvCols + g * HD + d];
                    s[j] = scale * dot;
                    m = Math.max(m, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < len; j++) if (vis[j]) sum += (s[j] = Math.exp(s[j] - m));
                for (int d = 0; d < HD; d++) {
                    double acc = 0;
                    for (int j = 0; j < len; j++) if (vis[j]) acc += s[j] * v[j * kvCols + g * HD + d];
                    out[qo + d] = acc / sum;
                }
                lse[(row0 + t) * QH + h] = m + Math.log(sum);
            }
        }
    }

    @Test
    void aChainIsTheCausalMaskBitForBit() {
        Random r = new Random(5);
        try (KvCache cache = cache(KvType.F16, 16)) {
            Sequence a = cache.newSequence(), b = cache.newSequence();
            append(cache, a, 700, r);
            append(cache, b, 60, r);
            Batch batch = Batch.builder().add(a, 9).add(b, 40).build();
            int[] chain = new int[49];
            for (int i = 0; i < 49; i++) chain[i] = i < 9 ? i - 1 : i - 10;
            float[] q = KvTestSupport.gaussian(r, 49 * QH * HD, 1);
            for (Isa isa : KvTestSupport.isas()) {
                Isthmus.setIsaCap(isa);
                try (Tensor qt = Tensor.of(q, 49, QH * HD); Tensor o1 = Tensor.allocate(DType.F32, 49, QH * HD);
                     Tensor o2 = Tensor.allocate(DType.F32, 49, QH * HD)) {
                    AttentionParams p = AttentionParams.of(QH, HD);
                    cache.attention(0, batch, qt, o1, p);
                    cache.attention(0, batch, qt, o2, p, chain);
                    assertArrayEquals(o1.toFloatArray(), o2.toFloatArray(), isa + ": a chain differs from the causal mask");
                }
            }
        }
    }

    @Test
    void writeWithPositionsEqualsRopeApplyAtThosePositions() {
        Random r = new Random(9);
        try (KvCache cache = cache(KvType.F32, 16)) {
            Sequence a = cache.newSequence(), b = cache.newSequence();
            append(cache, a, 3, r);
            Batch batch = Batch.builder().add(a, 7).add(b, 5).build();
            cache.extend(batch);
            long[] pos = new long[12];
            for (int i = 0; i < 12; i++) pos[i] = r.nextInt(5000);
            int w = KV_HEADS * HD;
            float[] k = KvTestSupport.gaussian(r, 12 * w, 1), v = KvTestSupport.gaussian(r, 12 * w, 1);
            Rope rope = Rope.half(500_000);
            try (Tensor kt = Tensor.of(k, 12, w); Tensor vt = Tensor.of(v, 12, w); Tensor kr = Tensor.of(k, 12, w)) {
                cache.write(0, batch, kt, vt, rope, pos);
                Rope.apply(kr, KV_HEADS, pos, rope);
                float[] want = kr.toFloatArray();
                float[] gotA = KvTestSupport.readBack(cache, 0, a, 3, 7)[0], gotB = KvTestSupport.readBack(cache, 0, b, 0, 5)[0];
                float[] got = new float[12 * w];
                System.arraycopy(gotA, 0, got, 0, 7 * w);
                System.arraycopy(gotB, 0, got, 7 * w, 5 * w);
                assertArrayEquals(want, got, "write with positions differs from Rope.apply at those positions");
                // null positions: the slots, as the 5-argument write
                cache.write(0, batch, kt, vt, rope, null);
                float[] slots = KvTestSupport.readBack(cache, 0, a, 3, 7)[0];
                cache.write(0, batch, kt, vt, rope);
                assertArrayEquals(slots, KvTestSupport.readBack(cache, 0, a, 3, 7)[0]);

                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> cache.write(0, batch, kt, vt, rope, new long[11]));
                assertTrue(e.getMessage().contains("positions") && e.getMessage().contains("12"), e.getMessage());
                long[] bad = pos.clone();
                bad[4] = -3;
                e = assertThrows(IllegalArgumentException.class, () -> cache.write(0, batch, kt, vt, rope, bad));
                assertTrue(e.getMessage().contains("positions[4]"), e.getMessage());
            }
        }
    }

    @Test
    void badTreesAreRefusedNamingIndexAndSequence() {
        Random r = new Random(3);
        try (KvCache cache = cache(KvType.F32, 16)) {
            Sequence a = cache.newSequence(), b = cache.newSequence();
            append(cache, a, 300, r);
            append(cache, b, 10, r);
            Batch batch = Batch.builder().add(a, 4).add(b, 3).build();
            try (Tensor q = Tensor.allocate(DType.F32, 7, QH * HD); Tensor out = Tensor.allocate(DType.F32, 7, QH * HD)) {
                AttentionParams p = AttentionParams.of(QH, HD);
                cache.attention(0, batch, q, out, p, new int[] {-1, 0, 0, 1, -1, -1, 1});
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> cache.attention(0, batch, q, out, p, new int[6]));
                assertTrue(e.getMessage().contains("treeParents") && e.getMessage().contains("7"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class,
                        () -> cache.attention(0, batch, q, out, p, new int[] {-1, 0, 0, 1, -1, -1, 2}));
                assertTrue(e.getMessage().contains("treeParents[6]") && e.getMessage().contains("batch entry 1")
                        && e.getMessage().contains("sequence " + b.id()), e.getMessage());
                e = assertThrows(IllegalArgumentException.class,
                        () -> cache.attention(0, batch, q, out, p, new int[] {0, 0, 0, 1, -1, -1, 1}));
                assertTrue(e.getMessage().contains("treeParents[0]"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class,
                        () -> cache.attention(0, batch, q, out, p, new int[] {-1, 0, -2, 1, -1, -1, 1}));
                assertTrue(e.getMessage().contains("treeParents[2]"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class,
                        () -> cache.attention(0, batch, q, out, p.withWindow(16), new int[] {-1, 0, 0, 1, -1, -1, 1}));
                assertTrue(e.getMessage().contains("window"), e.getMessage());
            }
            Batch big = Batch.of(a, 257);
            try (Tensor q = Tensor.allocate(DType.F32, 257, QH * HD); Tensor out = Tensor.allocate(DType.F32, 257, QH * HD)) {
                int[] chain = new int[257];
                for (int i = 0; i < 257; i++) chain[i] = i - 1;
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> cache.attention(0, big, q, out, AttentionParams.of(QH, HD), chain));
                assertTrue(e.getMessage().contains("257") && e.getMessage().contains("256"), e.getMessage());
            }
        }
    }
}
