package dev.isthmus.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.DType;
import dev.isthmus.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;

/**
 * Threads sharing one cache, each on its own sequences (create, extend, write, attention, fork,
 * truncate, free), for a couple of seconds: the same bits as a single-threaded run. Closing the cache
 * while a call runs fails cleanly; every call after a successful close fails as closed.
 */
class AttentionConcurrencyTest {
    static final int THREADS = 4, LAYERS = 2, KV_HEADS = 2, HEAD_DIM = 64, Q_HEADS = 8;
    static final int QC = Q_HEADS * HEAD_DIM, KC = KV_HEADS * HEAD_DIM;

    static KvConfig config() {
        return KvConfig.builder().layers(LAYERS).kvHeads(KV_HEADS).headDim(HEAD_DIM).blockSize(16).type(KvType.F16)
                .numBlocks(THREADS * 2 * 8 + 8).maxSequences(THREADS * 2).maxSequenceLength(128).build();
    }

    /**
     * One thread's work: prefill a sequence, decode 8 tokens, fork it, decode on both, roll back 3 of the
     * fork's tokens, decode once more; returns every attention output in order. Deterministic in its seed.
     */
    static List<float[]> script(KvCache cache, long seed) {
        Random r = new Random(seed);
        AttentionParams p = AttentionParams.of(Q_HEADS, HEAD_DIM);
        Rope rope = Rope.half(10_000);
        List<float[]> outs = new ArrayList<>();
        try (Sequence s = cache.newSequence()) {
            Batch batch = Batch.of(s, 20 + r.nextInt(40));
            for (int step = 0; step < 9; step++) {
                cache.extend(batch);
                outs.add(step(cache, batch, r, p, rope));
                batch = Batch.of(s, 1);
            }
            try (Sequence f = s.fork()) {
                Batch both = Batch.builder().add(s, 1).add(f, 1).build();
                for (int step = 0; step < 3; step++) {
                    cache.extend(both);
                    outs.add(step(cache, both, r, p, rope));
                }
                f.truncate(f.length() - 3);
                Batch one = Batch.of(f, 1);
                cache.extend(one);
                outs.add(step(cache, one, r, p, rope));
            }
        }
        return outs;
    }

    static float[] step(KvCache cache, Batch batch, Random r, AttentionParams p, Rope rope) {
        long t = batch.tokens();
        long[] pos = batch.positions();
        float[] result = new float[(int) t * QC * LAYERS];
        for (int layer = 0; layer < LAYERS; layer++)
            try (Tensor q = Tensor.of(KvTestSupport.gaussian(r, (int) t * QC, 1), t, QC);
                 Tensor k = Tensor.of(KvTestSupport.gaussian(r, (int) t * KC, 1), t, KC);
                 Tensor v = Tensor.of(KvTestSupport.gaussian(r, (int) t * KC, 1), t, KC)) {
                cache.write(layer, batch, k, v, rope);
                Rope.apply(q, Q_HEADS, pos, rope);
                cache.attention(layer, batch, q, q, p);
                System.arraycopy(q.toFloatArray(), 0, result, layer * (int) t * QC, (int) t * QC);
            }
        return result;
    }

    @Test
    void threadsOnTheirOwnSequencesMatchOneThread() throws Exception {
        List<List<float[]>> want = new ArrayList<>();
        try (KvCache cache = KvCache.create(config())) {
            for (int i = 0; i < THREADS; i++) want.add(script(cache, 1000 + i));
            assertEquals(config().numBlocks(), cache.stats().freeBlocks());
        }
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try (KvCache cache = KvCache.create(config())) {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(2000);
            List<Future<Integer>> fs = new ArrayList<>();
            for (int i = 0; i < THREADS; i++) {
                int id = i;
                fs.add(pool.submit(() -> {
                    int rounds = 0;
                    do {
                        List<float[]> got = script(cache, 1000 + id);
                        assertEquals(want.get(id).size(), got.size());
                        for (int j = 0; j < got.size(); j++)
                            assertArrayEquals(want.get(id).get(j), got.get(j),
                                    "thread " + id + " (seed " + (1000 + id) + "), round " + rounds + ", output " + j);
                        rounds++;
                    } while (System.nanoTime() < deadline);
                    return rounds;
                }));
            }
            int total = 0;
            for (Future<Integer> f : fs) total += f.get(120, TimeUnit.SECONDS);
            assertTrue(total >= THREADS);
            KvCache.Stats st = cache.stats();
            assertEquals(new KvCache.Stats(config().numBlocks(), 0, 0, 0, 0), st, "every block back after " + total + " rounds");
        } finally {
            pool.shutdownNow();
        }
    }

    /** The split of long contexts depends on the shapes only: the same bits on 1 thread as on several. */
    @Test
    void resultsDoNotDependOnTheThreadCount() {
        int before = dev.isthmus.Isthmus.threads();
        KvConfig cfg = KvConfig.builder().layers(1).kvHeads(KV_HEADS).headDim(HEAD_DIM).blockSize(16).type(KvType.F32)
                .numBlocks(300).maxSequences(2).maxSequenceLength(3000).build();
        float[][] results = new float[2][];
        try {
            for (int run = 0; run < 2; run++) {
                dev.isthmus.Isthmus.setThreads(run == 0 ? 1 : Math.max(2, before));
                Random r = new Random(8);
                try (KvCache cache = KvCache.create(cfg); Sequence a = cache.newSequence(); Sequence b = cache.newSequence()) {
                    a.extend(2999);
                    b.extend(700);
                    Batch batch = Batch.builder().add(a, 5).add(b, 40).build();
                    for (Sequence s : new Sequence[] {a, b}) {
                        int n = (int) s.length();
                        try (Tensor k = Tensor.of(KvTestSupport.gaussian(r, n * KC, 1), n, KC);
                             Tensor v = Tensor.of(KvTestSupport.gaussian(r, n * KC, 1), n, KC)) {
                            cache.write(0, Batch.of(s, n), k, v, Rope.NONE);
                        }
                    }
                    try (Tensor q = Tensor.of(KvTestSupport.gaussian(r, 45 * QC, 1), 45, QC);
                         Tensor lse = Tensor.allocate(DType.F32, 45, Q_HEADS)) {
                        cache.attention(0, batch, q, q, AttentionParams.of(Q_HEADS, HEAD_DIM).withLse(lse));
                        float[] out = q.toFloatArray(), l = lse.toFloatArray();
                        results[run] = java.util.Arrays.copyOf(out, out.length + l.length);
                        System.arraycopy(l, 0, results[run], out.length, l.length);
                    }
                }
            }
        } finally {
            dev.isthmus.Isthmus.setThreads(before);
        }
        assertArrayEquals(results[0], results[1], "attention and lse on 1 thread vs " + Math.max(2, before));
    }

    @Test
    void closeDuringUseFailsCleanly() throws Exception {
        KvConfig cfg = KvConfig.builder().layers(1).kvHeads(KV_HEADS).headDim(128).blockSize(16).type(KvType.BF16)
                .numBlocks(300).maxSequences(2).maxSequenceLength(4096).build();
        KvCache cache = KvCache.create(cfg);
        Random r = new Random(5);
        int len = 4096, qLen = 16, qc = Q_HEADS * 128, kc = KV_HEADS * 128;
        Sequence s = cache.newSequence();
        s.extend(len);
        try (Tensor k = Tensor.of(KvTestSupport.gaussian(r, len * kc, 1), len, kc);
             Tensor v = Tensor.of(KvTestSupport.gaussian(r, len * kc, 1), len, kc)) {
            cache.write(0, Batch.of(s, len), k, v, Rope.NONE);
        }
        Tensor q = Tensor.of(KvTestSupport.gaussian(r, qLen * qc, 1), qLen, qc);
        Tensor out = Tensor.allocate(DType.F32, qLen, qc);
        Batch b = Batch.of(s, qLen);
        AttentionParams p = AttentionParams.of(Q_HEADS, 128);
        dev.isthmus.Isthmus.setIsaCap(dev.isthmus.Isa.REF); // slow calls: the cache is busy nearly all the time
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger calls = new AtomicInteger();
        CountDownLatch started = new CountDownLatch(1);
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<Throwable> worker = pool.submit(() -> {
                try {
                    while (!stop.get()) {
                        started.countDown();
                        cache.attention(0, b, q, out, p);
                        calls.incrementAndGet();
                    }
                    return null;
                } catch (Throwable t) {
                    return t;
                }
            });
            assertTrue(started.await(60, TimeUnit.SECONDS));
            Thread.sleep(20); // inside the call now: one takes ~0.1-1 s on the scalar reference kernel
            int refused = 0;
            boolean closedWhileRunning = false;
            for (int attempt = 0; attempt < 20 && !closedWhileRunning; attempt++) {
                try {
                    cache.close();
                    closedWhileRunning = true;
                } catch (IllegalStateException e) {
                    assertTrue(e.getMessage().contains("is in use by another thread"), e.getMessage());
                    refused++;
                }
                Thread.sleep(5);
            }
            stop.set(true);
            Throwable t = worker.get(60, TimeUnit.SECONDS);
            assertTrue(refused >= 1, "close() while attention runs must be refused (" + calls + " calls ran)");
            if (t != null)
                assertTrue(t instanceof IllegalStateException
                        && (t.getMessage().contains("is closed") || t.getMessage().contains("in use")), String.valueOf(t));
            cache.close();
            assertTrue(!cache.isOpen());
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> cache.attention(0, b, q, out, p));
            assertTrue(e.getMessage().contains("is closed"), e.getMessage());
        } finally {
            stop.set(true);
            pool.shutdownNow();
            dev.isthmus.Isthmus.setIsaCap(dev.isthmus.Isa.AVX512);
            out.close();
            q.close();
        }
    }
}
