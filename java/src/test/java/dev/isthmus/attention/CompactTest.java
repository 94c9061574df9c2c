package dev.isthmus.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.IsthmusException;

import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;

/**
 * {@link Sequence#compact} against read-back: for every KvType and block sizes 1 / 4 / 16, random keeps
 * (none, sparse, half, all) after random starts, with a fork sharing the blocks: the compacted sequence
 * reads back exactly the kept positions (bytes move, so even INT8 and its scales compare exactly), the
 * fork reads back what it held, stats count the dropped tokens, and freeing everything leaves no block
 * used. Bad starts and keeps fail with messages naming the index.
 */
class CompactTest {
    static final int HD = 16, KVH = 2, LAYERS = 2;

    static KvCache cache(KvType type, int bs) {
        return KvCache.create(KvConfig.builder().layers(LAYERS).kvHeads(KVH).headDim(HD).blockSize(bs).type(type)
                .numBlocks(3 * 160 / bs + 8).maxSequences(3).maxSequenceLength(160).build());
    }

    static void append(KvCache cache, Sequence s, int n, Random r) {
        cache.extend(Batch.of(s, n));
        int w = KVH * HD;
        for (int l = 0; l < LAYERS; l++)
            try (var k = dev.isthmus.Tensor.of(KvTestSupport.gaussian(r, n * w, 1), n, w);
                 var v = dev.isthmus.Tensor.of(KvTestSupport.gaussian(r, n * w, 1), n, w)) {
                cache.write(l, Batch.of(s, n), k, v, Rope.NONE);
            }
    }

    static float[][][] readAll(KvCache cache, Sequence s) {
        long len = s.length();
        float[][][] out = new float[LAYERS][][];
        for (int l = 0; l < LAYERS; l++)
            out[l] = len == 0 ? new float[][] {new float[0], new float[0]} : KvTestSupport.readBack(cache, l, s, 0, len);
        return out;
    }

    @ParameterizedTest
    @EnumSource(KvType.class)
    void compactMatchesReadBack(KvType type) {
        Random r = new Random(11 + type.ordinal());
        int w = KVH * HD;
        for (int bs : new int[] {1, 4, 16})
            for (int round = 0; round < 6; round++) {
                try (KvCache cache = cache(type, bs); Sequence s = cache.newSequence()) {
                    append(cache, s, 1 + r.nextInt(70), r);
                    Sequence fork = round % 2 == 1 ? s.fork() : null;
                    append(cache, s, 1 + r.nextInt(50), r);
                    float[][][] before = readAll(cache, s), forkBefore = fork == null ? null : readAll(cache, fork);
                    long len = s.length(), start = r.nextInt((int) len + 1);
                    int mode = round % 3;
                    int[] keep = java.util.stream.IntStream.range(0, (int) (len - start))
                            .filter(j -> mode == 0 ? r.nextBoolean() : mode == 1 ? j % 5 == 4 : true).toArray();
                    long tokens = cache.stats().tokens();
                    s.compact(start, keep);
                    String what = type + " bs=" + bs + " round " + round + " start " + start + " keep "
                            + Arrays.toString(keep);
                    assertEquals(start + keep.length, s.length(), what);
                    float[][][] after = readAll(cache, s);
                    for (int l = 0; l < LAYERS; l++)
                        for (int kv = 0; kv < 2; kv++)
                            for (int t = 0; t < s.length(); t++) {
                                long src = t < start ? t : start + keep[(int) (t - start)];
                                assertArrayEquals(Arrays.copyOfRange(before[l][kv], (int) src * w, (int) src * w + w),
                                        Arrays.copyOfRange(after[l][kv], t * w, t * w + w),
                                        what + ": layer " + l + (kv == 0 ? " K" : " V") + " position " + t);
                            }
                    if (fork != null) {
                        float[][][] fa = readAll(cache, fork);
                        for (int l = 0; l < LAYERS; l++)
                            for (int kv = 0; kv < 2; kv++)
                                assertArrayEquals(forkBefore[l][kv], fa[l][kv], what + ": the fork changed");
                    }
                    assertEquals(tokens - (len - start - keep.length), cache.stats().tokens(), what);
                    append(cache, s, 2, r); // still extends and writes
                    if (fork != null) fork.close();
                    s.close();
                    KvCache.Stats st = cache.stats();
                    assertEquals(cache.config().numBlocks(), st.freeBlocks(), what + ": blocks leaked");
                }
            }
    }

    @Test
    void badArgumentsNameTheIndex() {
        Random r = new Random(2);
        try (KvCache cache = cache(KvType.F32, 4); Sequence s = cache.newSequence()) {
            append(cache, s, 20, r);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.compact(-1, new int[0]));
            assertTrue(e.getMessage().contains("start"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> s.compact(21, new int[0]));
            assertTrue(e.getMessage().contains("start"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> s.compact(0, null));
            assertTrue(e.getMessage().contains("keep"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> s.compact(10, new int[] {0, 3, 3}));
            assertTrue(e.getMessage().contains("keep[2]") && e.getMessage().contains("increasing"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> s.compact(10, new int[] {1, 10}));
            assertTrue(e.getMessage().contains("keep[1]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> s.compact(10, new int[] {-1}));
            assertTrue(e.getMessage().contains("keep[0]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> s.compact(18, new int[] {0, 1, 2}));
            assertTrue(e.getMessage().contains("keep has 3"), e.getMessage());
            assertEquals(20, s.length());
            s.compact(12, new int[0]);
            assertEquals(12, s.length());
            s.close();
            assertThrows(IllegalStateException.class, () -> s.compact(0, new int[0]));
        }
    }

    @Test
    void sharedBlocksWithoutFreeOnesAreCapacityAndChangeNothing() {
        Random r = new Random(4);
        try (KvCache cache = KvCache.create(KvConfig.builder().layers(1).kvHeads(1).headDim(16).blockSize(4)
                .type(KvType.F32).numBlocks(5).maxSequences(2).maxSequenceLength(20).build());
             Sequence s = cache.newSequence()) {
            cache.extend(Batch.of(s, 16));
            try (var k = dev.isthmus.Tensor.of(KvTestSupport.gaussian(r, 16 * 16, 1), 16, 16)) {
                cache.write(0, Batch.of(s, 16), k, k, Rope.NONE);
            }
            try (Sequence f = s.fork()) {
                float[][] before = KvTestSupport.readBack(cache, 0, s, 0, 16);
                IsthmusException e = assertThrows(IsthmusException.class, () -> s.compact(2, new int[] {1, 2, 3}));
                assertEquals(IsthmusException.CAPACITY, e.status());
                assertEquals(16, s.length());
                assertArrayEquals(before[0], KvTestSupport.readBack(cache, 0, s, 0, 16)[0]);
                s.compact(2, new int[] {1}); // one shared block copied: the one free block suffices
                assertEquals(3, s.length());
                assertArrayEquals(before[0], KvTestSupport.readBack(cache, 0, f, 0, 16)[0]);
            }
        }
    }
}
