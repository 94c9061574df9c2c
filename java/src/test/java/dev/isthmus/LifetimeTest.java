package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.QuantScheme;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Memory that native code is using cannot be freed under it: closing an owning tensor or packed
 * weights during an op on another thread fails cleanly (the op finishes with the right result), and
 * outputs that native code cannot or must not write are refused up front.
 */
class LifetimeTest {
    @TempDir Path tmp;

    @AfterEach
    void restore() {
        Isthmus.setIsaCap(Isa.AVX512);
    }

    @Test
    void closingWhileAnOpRunsFailsAndTheOpCompletes() throws Exception {
        Random r = new Random(4);
        int m = 96, n = 512, k = 4096; // 0.2 G MACs: a few hundred ms on the reference kernel
        Isthmus.setIsaCap(Isa.REF);
        try (Tensor x = Tensor.of(TestSupport.randomFloats(r, m * k, 1f), m, k);
             Tensor w = Tensor.of(TestSupport.randomFloats(r, n * k, 1f), n, k)) {
            PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
            float[] want;
            try (Tensor y = Ops.matmul(x, pw)) {
                want = y.toFloatArray();
            }
            long t0 = System.nanoTime();
            java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(1);
            CompletableFuture<float[]> op = CompletableFuture.supplyAsync(() -> {
                started.countDown();
                try (Tensor y = Ops.matmul(x, pw)) {
                    return y.toFloatArray();
                }
            });
            started.await();
            Thread.sleep(30);
            IllegalStateException e1 = assertThrows(IllegalStateException.class, pw::close,
                    "closing packed weights in use must fail (op took " + (System.nanoTime() - t0) / 1e6 + " ms)");
            assertTrue(e1.getMessage().contains("in use"), e1.getMessage());
            IllegalStateException e2 = assertThrows(IllegalStateException.class, x::close);
            assertTrue(e2.getMessage().contains("in use"), e2.getMessage());
            assertArrayEquals(want, op.get(60, TimeUnit.SECONDS), "the op finished with its result");
            pw.close(); // free now that nothing uses it
            x.close();
            assertTrue(!pw.isAlive() && !x.isAlive());
            pw.close(); // idempotent
        }
    }

    @Test
    void viewsHoldTheirParent() {
        Tensor t = Tensor.allocate(DType.F32, 4, 8);
        Tensor v = t.rows(1, 3);
        try (Tensor.Lease l = v.lease()) {
            assertThrows(IllegalStateException.class, t::close);
        }
        t.close();
        assertThrows(IllegalStateException.class, v::lease);
    }

    @Test
    void readOnlyOverlappingAndAliasedOutputsAreRefused() throws IOException {
        Random r = new Random(5);
        try (Tensor x = Tensor.of(TestSupport.randomFloats(r, 2 * 16, 1f), 2, 16);
             Tensor w = Tensor.of(TestSupport.randomFloats(r, 8 * 16, 1f), 8, 16);
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
             Arena arena = Arena.ofConfined()) {
            Path f = Files.write(tmp.resolve("ro.bin"), new byte[4096]);
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                MemorySegment ro = ch.map(FileChannel.MapMode.READ_ONLY, 0, 4096, arena);
                Tensor out = Tensor.wrap(ro, DType.F32, 2, 8);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Ops.matmul(x, pw, null, out));
                assertTrue(e.getMessage().contains("read-only"), e.getMessage());
                Tensor outRo = Tensor.wrap(arena.allocate(64).asReadOnly(), DType.F32, 2, 8);
                assertThrows(IllegalArgumentException.class, () -> Ops.matmul(x, pw, null, outRo));
            }
            Tensor rowsOverlap = Tensor.wrap(x.segment(), DType.F32, new long[] {2, 16}, new long[] {4, 1});
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Ops.matmul(rowsOverlap, pw));
            assertTrue(e.getMessage().contains("overlap"), e.getMessage());
            Tensor intoWeights = Tensor.wrap(pw.segment(), DType.F32, 2, 8);
            e = assertThrows(IllegalArgumentException.class, () -> Ops.matmul(x, pw, null, intoWeights));
            assertTrue(e.getMessage().contains("packed weights"), e.getMessage());
        }
    }
}
