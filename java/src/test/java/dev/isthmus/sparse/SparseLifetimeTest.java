package dev.isthmus.sparse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.IsthmusException;
import dev.isthmus.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * A SparseMatrix is shared by concurrent matmuls, cannot be freed under a running call (close() fails
 * with IllegalStateException and the call completes with its result), and after close every use fails
 * as closed. Weights packed for an ISA above the active one are refused by the library.
 */
class SparseLifetimeTest {
    @AfterEach
    void restore() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    @Test
    void closeDuringUseFailsAndTheCallCompletes() throws Exception {
        Random r = new Random(21);
        int m = 128, n = 512, k = 2048; // dense CSR on the reference kernel: 134 M MACs, tens of ms or more
        Isthmus.setIsaCap(Isa.REF);
        int threads = Isthmus.threads();
        Isthmus.setThreads(1);
        try (Tensor x = Tensor.of(SparseTestSupport.randomFloats(r, m * k, 1f), m, k);
             Tensor wt = Tensor.of(SparseTestSupport.randomFloats(r, n * k, 1f), n, k)) {
            float[] want;
            try (SparseMatrix w0 = SparseMatrix.fromDense(wt, SparseFormat.CSR); Tensor y = Sparse.matmul(x, w0)) {
                want = y.toFloatArray();
            }
            int refused = 0;
            for (int attempt = 0; attempt < 10 && refused == 0; attempt++) {
                SparseMatrix w = SparseMatrix.fromDense(wt, SparseFormat.CSR);
                CountDownLatch started = new CountDownLatch(1);
                CompletableFuture<float[]> op = CompletableFuture.supplyAsync(() -> {
                    started.countDown();
                    try (Tensor y = Sparse.matmul(x, w)) {
                        return y.toFloatArray();
                    }
                });
                started.await();
                Thread.sleep(5);
                try {
                    w.close();
                } catch (IllegalStateException e) {
                    assertTrue(e.getMessage().contains("in use"), e.getMessage());
                    refused++;
                }
                try {
                    assertArrayEquals(want, op.get(120, TimeUnit.SECONDS), "the call finished with its result");
                } catch (java.util.concurrent.ExecutionException e) {
                    // close() won the race before the call took its lease: the call must say "closed"
                    assertTrue(e.getCause() instanceof IllegalStateException && e.getCause().getMessage().contains("closed"),
                            String.valueOf(e.getCause()));
                }
                w.close(); // now free; idempotent after a successful close
                assertFalse(w.isAlive());
                assertThrows(IllegalStateException.class, () -> Sparse.matmul(x, w));
            }
            assertTrue(refused >= 1, "close() while a matmul runs must be refused");
        } finally {
            Isthmus.setThreads(threads);
        }
    }

    @Test
    void concurrentMatmulsAgreeWithASingleCall() throws Exception {
        Random r = new Random(22);
        int m = 17, n = 96, k = 256, threads = 8, calls = 25;
        for (SparseTestSupport.Fmt f : SparseTestSupport.FORMATS)
            try (Tensor wt = Tensor.of(SparseTestSupport.randomSparse(r, n, k, f, 0.7), n, k);
                 SparseMatrix w = SparseMatrix.fromDense(wt, f.format(), f.block());
                 SparseMatrix w8 = w.quantizeInt8();
                 Tensor x = Tensor.of(SparseTestSupport.randomFloats(r, m * k, 1f), m, k);
                 Tensor bias = Tensor.of(SparseTestSupport.randomFloats(r, n, 1f), n);
                 Tensor y1 = Sparse.matmul(x, w, bias); Tensor y8 = Sparse.matmul(x, w8, bias)) {
                float[] want = y1.toFloatArray(), want8 = y8.toFloatArray();
                ExecutorService pool = Executors.newFixedThreadPool(threads);
                try {
                    List<Future<Boolean>> fs = new ArrayList<>();
                    for (int t = 0; t < threads; t++)
                        fs.add(pool.submit(() -> {
                            for (int c = 0; c < calls; c++) {
                                boolean int8 = c % 2 == 1;
                                try (Tensor y = Sparse.matmul(x, int8 ? w8 : w, bias)) {
                                    if (!java.util.Arrays.equals(int8 ? want8 : want, y.toFloatArray())) return false;
                                }
                            }
                            return true;
                        }));
                    for (Future<Boolean> fu : fs) assertTrue(fu.get(120, TimeUnit.SECONDS), f + ": a concurrent call differed");
                } finally {
                    pool.shutdownNow();
                }
            }
    }

    @Test
    void weightsPackedAboveTheActiveIsaAreRefused() {
        Assumptions.assumeTrue(Isthmus.supportedIsa().compareTo(Isa.AVX2) >= 0, "needs AVX2 to pack above REF");
        Isthmus.setIsaCap(Isa.AVX2);
        try (Tensor wt = Tensor.of(new float[] {1, 0, 0, 2, 0, 3, 0, 0}, 2, 4);
             SparseMatrix w = SparseMatrix.fromDense(wt, SparseFormat.CSR);
             Tensor x = Tensor.of(new float[] {1, 1, 1, 1}, 1, 4)) {
            assertEquals(Isa.AVX2, w.isa());
            Isthmus.setIsaCap(Isa.REF);
            IsthmusException e = assertThrows(IsthmusException.class, () -> Sparse.matmul(x, w));
            assertEquals(IsthmusException.UNSUPPORTED, e.status());
            assertTrue(e.getMessage().contains("pack them again"), e.getMessage());
            try (SparseMatrix again = SparseMatrix.fromDense(wt, SparseFormat.CSR); Tensor y = Sparse.matmul(x, again)) {
                assertEquals(Isa.REF, again.isa());
                assertArrayEquals(new float[] {3, 3}, y.toFloatArray());
            }
        }
    }
}
