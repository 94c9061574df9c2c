package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.attention.AttentionParams;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.KvCache;
import dev.isthmus.attention.KvConfig;
import dev.isthmus.attention.Rope;
import dev.isthmus.attention.Sequence;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.sparse.Sparse;
import dev.isthmus.sparse.SparseFormat;
import dev.isthmus.sparse.SparseMatrix;

import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.function.Supplier;

import org.junit.jupiter.api.Test;

/**
 * Closing an object while other threads are inside calls on it, many times at random moments: each close
 * either fails with IllegalStateException ("in use") or succeeds once no call holds it; a call then fails
 * with IllegalStateException ("closed" / "in use"), never another exception, and memory is never freed under
 * a running kernel (the JVM would crash). Kinds: an owned input tensor, PackedWeights, SparseMatrix, KvCache.
 */
class CloseRaceTest {
    static final int ROUNDS = Integer.getInteger("isthmus.stress.closeRounds", 40);
    static final int USERS = 3;

    /** Runs {@code use} on USERS threads in a loop until the object is closed; closes it from this thread. */
    private static <T extends AutoCloseable> long race(String kind, Supplier<T> make, Consumer<T> use) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(USERS);
        Random r = new Random(kind.hashCode());
        AtomicLong refusedCloses = new AtomicLong(), calls = new AtomicLong();
        try {
            for (int round = 0; round < ROUNDS; round++) {
                T obj = make.get();
                AtomicBoolean closing = new AtomicBoolean(), closed = new AtomicBoolean();
                CountDownLatch started = new CountDownLatch(USERS);
                Future<?>[] fs = new Future<?>[USERS];
                for (int u = 0; u < USERS; u++)
                    fs[u] = pool.submit(() -> {
                        started.countDown();
                        for (;;) {
                            try {
                                use.accept(obj);
                                calls.incrementAndGet();
                            } catch (IllegalStateException e) {
                                String m = String.valueOf(e.getMessage());
                                if (!closing.get())
                                    fail(kind + ": a call failed before close: " + e);
                                if (!m.contains("closed") && !m.contains("in use") && !m.contains("freed"))
                                    fail(kind + ": unexpected message: " + e);
                                return null;
                            }
                            if (closed.get()) return null;
                        }
                    });
                started.await();
                Thread.sleep(r.nextInt(3));
                closing.set(true);
                for (;;) {
                    try {
                        obj.close();
                        closed.set(true);
                        break;
                    } catch (IllegalStateException e) {
                        assertTrue(e.getMessage().contains("in use"), e.getMessage());
                        refusedCloses.incrementAndGet();
                        Thread.onSpinWait();
                    }
                }
                for (Future<?> f : fs) f.get(60, TimeUnit.SECONDS);
                obj.close(); // idempotent
            }
        } finally {
            pool.shutdownNow();
        }
        System.out.printf("CloseRaceTest %s: %d rounds, %d calls, %d closes refused while in use%n", kind, ROUNDS,
                calls.get(), refusedCloses.get());
        assertTrue(refusedCloses.get() > 0, kind + ": no close ever overlapped a call; the test did not test anything");
        return refusedCloses.get();
    }

    @Test
    void ownedTensorPackedWeightsSparseMatrixAndCache() throws Exception {
        Random r = new Random(12);
        int m = 16, n = 256, k = 512;
        float[] xa = TestSupport.randomFloats(r, m * k, 1f);
        try (Tensor x = Tensor.of(xa, m, k); Tensor w = Tensor.of(TestSupport.randomFloats(r, n * k, 1f), n, k);
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
             SparseMatrix sw = SparseMatrix.fromDense(w, SparseFormat.CSR)) {
            race("Tensor (input x)", () -> Tensor.of(xa, m, k), t -> {
                try (Tensor y = Ops.matmul(t, pw)) {
                    y.dim(0);
                }
            });
            race("PackedWeights", () -> PackedWeights.quantize(w, QuantScheme.int8PerGroup(32)), p -> {
                try (Tensor y = Ops.matmul(x, p)) {
                    y.dim(0);
                }
            });
            race("SparseMatrix", () -> SparseMatrix.fromDense(w, SparseFormat.BSR, dev.isthmus.sparse.BlockShape.of(1, 4)),
                    s -> {
                        try (Tensor y = Sparse.matmul(x, s)) {
                            y.dim(0);
                        }
                    });
        }
        KvConfig cfg = KvConfig.builder().layers(1).kvHeads(2).headDim(64).numBlocks(40).maxSequences(2)
                .maxSequenceLength(600).build();
        float[] kv = TestSupport.randomFloats(r, 512 * 128, 1f), qa = TestSupport.randomFloats(r, 4 * 256, 1f);
        AttentionParams p = AttentionParams.of(4, 64);
        race("KvCache", () -> {
            KvCache c = KvCache.create(cfg);
            Sequence s = c.newSequence();
            Batch b = Batch.of(s, 512);
            c.extend(b);
            try (Tensor kt = Tensor.of(kv, 512, 128)) {
                c.write(0, b, kt, kt, Rope.half(10_000));
            }
            return new CacheAndSequence(c, s);
        }, h -> {
            try (Tensor q = Tensor.of(qa, 4, 256); Tensor o = Tensor.allocate(DType.F32, 4, 256)) {
                h.cache().attention(0, Batch.of(h.seq(), 4), q, o, p);
            }
        });
    }

    /** Closing it closes the cache (and so the sequence). */
    record CacheAndSequence(KvCache cache, Sequence seq) implements AutoCloseable {
        @Override
        public void close() {
            cache.close();
        }
    }
}
