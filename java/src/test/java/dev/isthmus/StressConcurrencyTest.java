package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.attention.Batch;
import dev.isthmus.attention.KvCache;
import dev.isthmus.attention.KvConfig;
import dev.isthmus.attention.KvType;
import dev.isthmus.attention.Rope;
import dev.isthmus.attention.Sequence;
import dev.isthmus.speculative.AllOps;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.Test;

/**
 * 16 threads for {@code -Disthmus.stress.seconds} (default 3): every op of {@link AllOps} on shared read-only
 * inputs and private outputs, each result compared bit for bit with the single-threaded run made first; and
 * KV cache operations from several threads on different sequences of one cache, checked by reading back.
 */
class StressConcurrencyTest {
    static final int THREADS = 16;
    static final double SECONDS = Double.parseDouble(System.getProperty("isthmus.stress.seconds", "3"));

    @Test
    void sixteenThreadsRunEveryOpWithTheSingleThreadedBits() throws Exception {
        try (AllOps ops = new AllOps(7)) {
            Map<String, Long> want = ops.run(); // single-threaded reference
            AtomicLong calls = new AtomicLong();
            long end = System.nanoTime() + (long) (SECONDS * 1e9);
            ExecutorService pool = Executors.newFixedThreadPool(THREADS);
            try {
                List<Future<?>> fs = new ArrayList<>();
                for (int t = 0; t < THREADS; t++)
                    fs.add(pool.submit(() -> {
                        do {
                            Map<String, Long> got = ops.run();
                            for (Map.Entry<String, Long> e : want.entrySet())
                                assertEquals(e.getValue(), got.get(e.getKey()), e.getKey() + " on "
                                        + Thread.currentThread().getName() + " differs from the single-threaded run");
                            calls.incrementAndGet();
                        } while (System.nanoTime() < end);
                        return null;
                    }));
                for (Future<?> f : fs) f.get(10L + (long) (SECONDS * 20), TimeUnit.SECONDS);
            } finally {
                pool.shutdownNow();
            }
            System.out.printf("StressConcurrencyTest: %d threads x %.0f s: %d rounds of %d ops, 0 mismatches%n",
                    THREADS, SECONDS, calls.get(), want.size());
            assertTrue(calls.get() >= THREADS);
        }
    }

    @Test
    void kvOperationsOnDifferentSequencesFromManyThreads() throws Exception {
        final int threads = 8, head = 32, heads = 2, width = head * heads;
        KvConfig cfg = KvConfig.builder().layers(2).kvHeads(heads).headDim(head).type(KvType.F32).numBlocks(threads * 12)
                .maxSequences(threads * 2).maxSequenceLength(160).build();
        AtomicLong rounds = new AtomicLong();
        long end = System.nanoTime() + (long) (SECONDS * 1e9);
        try (KvCache cache = KvCache.create(cfg)) {
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> fs = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    final long seed = 100 + t;
                    fs.add(pool.submit(() -> {
                        SplittableRandom r = new SplittableRandom(seed);
                        do {
                            // a private sequence: extend, write both layers, fork, truncate, read back, free
                            try (Sequence s = cache.newSequence()) {
                                int n = 1 + r.nextInt(100);
                                float[][] k = new float[2][n * width], v = new float[2][n * width];
                                Batch b = Batch.of(s, n);
                                cache.extend(b);
                                for (int layer = 0; layer < 2; layer++) {
                                    for (int i = 0; i < n * width; i++) {
                                        k[layer][i] = (float) r.nextGaussian();
                                        v[layer][i] = (float) r.nextGaussian();
                                    }
                                    try (Tensor kt = Tensor.of(k[layer], n, width); Tensor vt = Tensor.of(v[layer], n, width)) {
                                        cache.write(layer, b, kt, vt, Rope.NONE);
                                    }
                                }
                                int keep = 1 + r.nextInt(n);
                                try (Sequence f = s.fork()) {
                                    f.truncate(keep);
                                    for (int layer = 0; layer < 2; layer++)
                                        try (Tensor kt = Tensor.allocate(DType.F32, keep, width);
                                             Tensor vt = Tensor.allocate(DType.F32, keep, width)) {
                                            cache.read(layer, f, 0, keep, kt, vt);
                                            assertArrayEquals(java.util.Arrays.copyOf(k[layer], keep * width),
                                                    kt.toFloatArray(), "K read back, layer " + layer);
                                            assertArrayEquals(java.util.Arrays.copyOf(v[layer], keep * width),
                                                    vt.toFloatArray(), "V read back, layer " + layer);
                                        }
                                }
                                assertEquals(n, s.length());
                            }
                            rounds.incrementAndGet();
                        } while (System.nanoTime() < end);
                        return null;
                    }));
                }
                for (Future<?> f : fs) f.get(10L + (long) (SECONDS * 20), TimeUnit.SECONDS);
            } finally {
                pool.shutdownNow();
            }
            assertEquals(0, cache.stats().liveSequences());
            assertEquals(cfg.numBlocks(), cache.stats().freeBlocks(), "every block back in the pool");
        }
        System.out.printf("StressConcurrencyTest: KV cache, %d threads x %.0f s: %d sequence lifecycles verified%n",
                threads, SECONDS, rounds.get());
    }
}
