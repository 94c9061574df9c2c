package dev.isthmus.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.IsthmusException;
import dev.isthmus.Tensor;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Sequence operations against a shadow model: random create / fork / extend (then write) / batch
 * extend / truncate / free on a small pool. After every operation: lengths, block tables and stats
 * agree with the shadow (free + used = numBlocks, shared blocks = blocks in two tables), and every
 * live sequence reads back exactly the values the shadow says it holds, in both layers (so sharing
 * and copy-on-write are right). Exhausting blocks, slots or the maximum length raises
 * {@link IsthmusException#CAPACITY} exactly when the shadow predicts it and changes nothing.
 */
class SequenceOpsTest {
    static final int LAYERS = 2, HEAD_DIM = 16, BLOCK = 4, BLOCKS = 20, SEQS = 5, MAX_LEN = 40;

    final KvConfig cfg = KvConfig.builder().layers(LAYERS).kvHeads(1).headDim(HEAD_DIM).blockSize(BLOCK)
            .type(KvType.F32).numBlocks(BLOCKS).maxSequences(SEQS).maxSequenceLength(MAX_LEN).build();

    /** The K row of a token id in a layer (V is its negation minus one): exact in F32. */
    static float[] row(int token, int layer, boolean v) {
        float[] r = new float[HEAD_DIM];
        for (int d = 0; d < HEAD_DIM; d++) {
            float x = token * 64 + layer * 32 + d;
            r[d] = v ? -x - 1 : x;
        }
        return r;
    }

    int nextToken = 1;
    /** sequence -> token ids it holds, in position order. */
    final Map<Sequence, List<Integer>> shadow = new LinkedHashMap<>();

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3})
    void randomOperationsMatchTheShadow(long seed) {
        Random r = new Random(seed);
        try (KvCache cache = KvCache.create(cfg)) {
            for (int op = 0; op < 400; op++) {
                String what;
                List<Sequence> live = new ArrayList<>(shadow.keySet());
                int kind = r.nextInt(10);
                if (live.isEmpty() || kind == 0) {
                    what = "create";
                    if (shadow.size() == SEQS) {
                        expectCapacity(cache, cache::newSequence, "create with every slot in use, seed " + seed);
                    } else {
                        shadow.put(cache.newSequence(), new ArrayList<>());
                    }
                } else {
                    Sequence s = live.get(r.nextInt(live.size()));
                    List<Integer> toks = shadow.get(s);
                    switch (kind) {
                        case 1 -> {
                            what = "fork " + s;
                            if (shadow.size() == SEQS) expectCapacity(cache, s::fork, "fork with every slot in use");
                            else shadow.put(s.fork(), new ArrayList<>(toks));
                        }
                        case 2, 3, 4 -> {
                            int n = 1 + r.nextInt(9);
                            what = "extend " + s + " by " + n;
                            extendAndWrite(cache, List.of(s), new int[] {n}, r.nextBoolean());
                        }
                        case 5 -> {
                            List<Sequence> pick = new ArrayList<>(live);
                            java.util.Collections.shuffle(pick, r);
                            pick = pick.subList(0, Math.min(pick.size(), 1 + r.nextInt(3)));
                            int[] ns = new int[pick.size()];
                            for (int i = 0; i < ns.length; i++) ns[i] = 1 + r.nextInt(6);
                            what = "batch extend " + pick + " by " + java.util.Arrays.toString(ns);
                            extendAndWrite(cache, pick, ns, true);
                        }
                        case 6, 7 -> {
                            int len = r.nextInt(toks.size() + 1);
                            what = "truncate " + s + " from " + toks.size() + " to " + len;
                            s.truncate(len);
                            toks.subList(len, toks.size()).clear();
                        }
                        default -> {
                            what = "free " + s;
                            s.close();
                            shadow.remove(s);
                            assertTrue(!s.isOpen());
                            s.close(); // idempotent
                        }
                    }
                }
                check(cache, "seed " + seed + ", op " + op + " (" + what + ")");
            }
            for (Sequence s : new ArrayList<>(shadow.keySet())) {
                s.close();
                shadow.remove(s);
            }
            KvCache.Stats st = cache.stats();
            assertEquals(new KvCache.Stats(BLOCKS, 0, 0, 0, 0), st, "seed " + seed + ": every block free at the end");
        }
    }

    /** Extends (as one batch when {@code asBatch}), then writes the new positions; or expects CAPACITY. */
    void extendAndWrite(KvCache cache, List<Sequence> seqs, int[] ns, boolean asBatch) {
        Map<Integer, Integer> refs = refCounts();
        int free = cache.stats().freeBlocks(), need = 0;
        boolean tooLong = false;
        for (int i = 0; i < seqs.size(); i++) {
            int len = shadow.get(seqs.get(i)).size();
            need += (len + ns[i] + BLOCK - 1) / BLOCK - (len + BLOCK - 1) / BLOCK;
            int[] b = seqs.get(i).blocks();
            if (len % BLOCK != 0 && refs.get(b[b.length - 1]) > 1) need++; // a shared partial block is copied
            tooLong |= len + ns[i] > MAX_LEN;
        }
        boolean fails = need > free || tooLong;
        Batch.Builder bb = Batch.builder();
        for (int i = 0; i < seqs.size(); i++) bb.add(seqs.get(i), ns[i]);
        Batch batch = bb.build();
        if (fails) {
            Map<Sequence, Integer> lens = new HashMap<>();
            for (Sequence s : shadow.keySet()) lens.put(s, shadow.get(s).size());
            KvCache.Stats before = cache.stats();
            IsthmusException e = assertThrows(IsthmusException.class,
                    () -> {
                        if (asBatch || seqs.size() > 1) cache.extend(batch);
                        else seqs.get(0).extend(ns[0]);
                    }, "extending " + batch + " needs " + need + " blocks, " + free + " free" + (tooLong ? ", too long" : ""));
            assertEquals(IsthmusException.CAPACITY, e.status(), e.getMessage());
            assertTrue(e.isCapacity() && e.getMessage().contains("pool is full"), e.getMessage());
            for (Sequence s : shadow.keySet()) assertEquals((long) lens.get(s), s.length(), "length after a failed extend");
            KvCache.Stats after = cache.stats();
            assertEquals(before.tokens(), after.tokens());
            if (seqs.size() == 1) assertEquals(before, after, "a failed extend changes nothing");
            return;
        }
        if (asBatch || seqs.size() > 1) cache.extend(batch);
        else seqs.get(0).extend(ns[0]);
        int t = 0;
        for (int n : ns) t += n;
        for (int layer = 0; layer < LAYERS; layer++) {
            float[] k = new float[t * HEAD_DIM], v = new float[t * HEAD_DIM];
            int row = 0;
            for (int i = 0; i < seqs.size(); i++)
                for (int j = 0; j < ns[i]; j++, row++) {
                    int token = nextToken + row;
                    System.arraycopy(row(token, layer, false), 0, k, row * HEAD_DIM, HEAD_DIM);
                    System.arraycopy(row(token, layer, true), 0, v, row * HEAD_DIM, HEAD_DIM);
                }
            try (Tensor kt = Tensor.of(k, t, HEAD_DIM); Tensor vt = Tensor.of(v, t, HEAD_DIM)) {
                cache.write(layer, batch, kt, vt, Rope.NONE);
            }
        }
        for (int i = 0; i < seqs.size(); i++)
            for (int j = 0; j < ns[i]; j++) shadow.get(seqs.get(i)).add(nextToken++);
    }

    /** How many live block tables hold each block. */
    Map<Integer, Integer> refCounts() {
        Map<Integer, Integer> refs = new HashMap<>();
        for (Sequence s : shadow.keySet()) for (int b : s.blocks()) refs.merge(b, 1, Integer::sum);
        return refs;
    }

    static void expectCapacity(KvCache cache, Runnable op, String what) {
        KvCache.Stats before = cache.stats();
        IsthmusException e = assertThrows(IsthmusException.class, op::run, what);
        assertEquals(IsthmusException.CAPACITY, e.status(), e.getMessage());
        assertEquals(before, cache.stats(), what + " changes nothing");
    }

    void check(KvCache cache, String where) {
        KvCache.Stats st = cache.stats();
        long tokens = 0;
        Map<Integer, Integer> refs = refCounts();
        for (Map.Entry<Sequence, List<Integer>> en : shadow.entrySet()) {
            Sequence s = en.getKey();
            List<Integer> toks = en.getValue();
            tokens += toks.size();
            assertEquals(toks.size(), s.length(), where + ": length of " + s);
            int[] blocks = s.blocks();
            assertEquals((toks.size() + BLOCK - 1) / BLOCK, blocks.length, where + ": blocks of " + s);
            Set<Integer> distinct = new HashSet<>();
            for (int b : blocks) {
                assertTrue(b >= 0 && b < BLOCKS, where + ": block id " + b);
                assertTrue(distinct.add(b), where + ": block " + b + " twice in " + s);
            }
            for (int layer = 0; layer < LAYERS && !toks.isEmpty(); layer++) {
                float[][] kv = KvTestSupport.readBack(cache, layer, s, 0, toks.size());
                for (int p = 0; p < toks.size(); p++) {
                    float[] wk = row(toks.get(p), layer, false), wv = row(toks.get(p), layer, true);
                    for (int d = 0; d < HEAD_DIM; d++)
                        if (kv[0][p * HEAD_DIM + d] != wk[d] || kv[1][p * HEAD_DIM + d] != wv[d])
                            fail(where + ": " + s + " layer " + layer + " position " + p + " holds K " + kv[0][p * HEAD_DIM]
                                    + " V " + kv[1][p * HEAD_DIM] + ", the shadow says token " + toks.get(p) + " (K " + wk[0]
                                    + ")");
                }
            }
        }
        int shared = 0;
        for (int c : refs.values()) if (c > 1) shared++;
        assertEquals(new KvCache.Stats(BLOCKS - refs.size(), refs.size(), shadow.size(), shared, tokens), st,
                where + ": stats");
    }

    /** Fork shares blocks; extending into a shared partial block copies it; the other side is untouched. */
    @Test
    void forkSharesAndCopiesOnWrite() {
        try (KvCache cache = KvCache.create(cfg)) {
            Sequence a = cache.newSequence();
            shadow.put(a, new ArrayList<>());
            extendAndWrite(cache, List.of(a), new int[] {6}, false);
            Sequence b = cache.fork(a);
            shadow.put(b, new ArrayList<>(shadow.get(a)));
            assertArrayEquals(a.blocks(), b.blocks());
            assertEquals(2, cache.stats().sharedBlocks());
            check(cache, "after fork");
            try (Tensor k = Tensor.of(row(999, 0, false), 1, HEAD_DIM)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> cache.write(0, Batch.of(b, 1), k, k, Rope.NONE), "writing into a block shared with a fork");
                assertTrue(e.getMessage().contains("shared with a fork"), e.getMessage());
            }
            check(cache, "after the refused write: the parent is untouched");
            int[] before = a.blocks();
            extendAndWrite(cache, List.of(b), new int[] {1}, false);
            assertEquals(before[0], b.blocks()[0], "the full first block stays shared");
            assertNotEquals(before[1], b.blocks()[1], "the partial block is copied for the child");
            assertArrayEquals(before, a.blocks(), "the parent keeps its blocks");
            assertEquals(1, cache.stats().sharedBlocks());
            check(cache, "after the child extended");
            extendAndWrite(cache, List.of(a), new int[] {1}, false);
            assertArrayEquals(before, a.blocks(), "no copy once the partial block is the parent's alone");
            check(cache, "after the parent extended");
            b.truncate(2);
            shadow.get(b).subList(2, shadow.get(b).size()).clear();
            a.truncate(0);
            shadow.get(a).clear();
            check(cache, "after truncates");
            b.close();
            shadow.remove(b);
            Sequence c = cache.newSequence(); // may reuse b's slot id
            shadow.put(c, new ArrayList<>());
            IllegalStateException e = assertThrows(IllegalStateException.class, b::length);
            assertTrue(e.getMessage().contains("was freed"), e.getMessage());
            check(cache, "after free and create");
        }
    }

    /** A batch extend that fails part-way rolls back the sequences it already extended. */
    @Test
    void failedBatchExtendRollsBack() {
        try (KvCache cache = KvCache.create(cfg)) {
            Sequence a = cache.newSequence(), b = cache.newSequence(), c = cache.newSequence();
            shadow.put(a, new ArrayList<>());
            shadow.put(b, new ArrayList<>());
            shadow.put(c, new ArrayList<>());
            extendAndWrite(cache, List.of(a, b, c), new int[] {3, 5, 30}, true); // 1 + 2 + 8 blocks: 9 free
            // a takes 4 more blocks (5 left), then b needs 7: the pool runs out at b, a is rolled back
            Batch big = Batch.builder().add(a, 16).add(b, 30).build();
            KvCache.Stats before = cache.stats();
            assertEquals(9, before.freeBlocks());
            IsthmusException e = assertThrows(IsthmusException.class, () -> cache.extend(big));
            assertEquals(IsthmusException.CAPACITY, e.status(), e.getMessage());
            assertEquals(3, a.length());
            assertEquals(5, b.length());
            assertEquals(before, cache.stats());
            check(cache, "after the failed batch extend");
            // a sequence named twice is refused before anything changes
            IllegalArgumentException twice = assertThrows(IllegalArgumentException.class,
                    () -> cache.extend(Batch.builder().add(a, 1).add(a, 1).build()));
            assertTrue(twice.getMessage().contains("twice"), twice.getMessage());
            check(cache, "after the refused batch");
        }
    }
}
