package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Every kind of bad input is an exception that names the argument, never a crash. */
class BadInputTest {
    private static <T extends Throwable> void fails(Class<T> type, String mention, Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(mention),
                "message should mention '" + mention + "': " + e.getMessage());
    }

    private final Random r = new Random(1);

    @Test
    void wrongShapesAndDtypes() {
        try (Tensor x = Tensor.of(TestSupport.randomFloats(r, 4 * 10, 1f), 4, 10);
             Tensor x9 = Tensor.of(TestSupport.randomFloats(r, 4 * 9, 1f), 4, 9);
             Tensor w = Tensor.of(TestSupport.randomFloats(r, 3 * 10, 1f), 3, 10);
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
             Tensor xi8 = Tensor.of(new byte[40], 4, 10);
             Tensor vec = Tensor.of(new float[10], 10);
             Tensor y = Tensor.allocate(DType.F32, 4, 3)) {
            fails(IllegalArgumentException.class, "inner dimensions", () -> Ops.matmul(x9, pw));
            fails(IllegalArgumentException.class, "x must be F32", () -> Ops.matmul(xi8, pw));
            fails(IllegalArgumentException.class, "rank 2", () -> Ops.matmul(vec, pw));
            fails(IllegalArgumentException.class, "out must be [4, 3]", () -> Ops.matmul(x, pw, null, Tensor.allocate(DType.F32, 4, 4)));
            fails(IllegalArgumentException.class, "bias must hold 3", () -> Ops.matmul(x, pw, Tensor.of(new float[4], 4), y));
            fails(IllegalArgumentException.class, "out must be I32", () -> Ops.matmulInt32(xi8, pw, y));
            fails(IllegalArgumentException.class, "x is null", () -> Ops.matmul((Tensor) null, pw));
            fails(IllegalArgumentException.class, "w is null", () -> Ops.matmul(x, (PackedWeights) null));
            fails(IllegalArgumentException.class, "out is null", () -> Ops.matmul(x, pw, null, null));
            fails(IllegalArgumentException.class, "scheme is null", () -> Quant.quantize(x, null));
            fails(IllegalArgumentException.class, "overlaps", () -> Ops.matmul(x, pw, null,
                    Tensor.wrap(x.segment(), DType.F32, 4, 3)));
            fails(IllegalArgumentException.class, "no native kernel",
                    () -> PackedWeights.quantize(w, QuantScheme.int8PerRow().withBits(4)));
            try (QuantizedTensor a32 = Quant.quantize(x, QuantScheme.int8PerGroup(32))) {
                fails(IllegalArgumentException.class, "per group", () -> Ops.matmul(a32, pw));
            }
        }
    }

    @Test
    void closedMemoryIsRefused() {
        Tensor w = Tensor.of(TestSupport.randomFloats(r, 3 * 10, 1f), 3, 10);
        PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
        Tensor x = Tensor.of(TestSupport.randomFloats(r, 40, 1f), 4, 10);
        x.close();
        fails(IllegalStateException.class, "closed", () -> Ops.matmul(x, pw));
        Tensor x2;
        try (Arena arena = Arena.ofConfined()) {
            x2 = Tensor.allocate(arena, DType.F32, 4, 10);
        }
        fails(IllegalStateException.class, "closed", () -> Ops.matmul(x2, pw));
        pw.close();
        try (Tensor x3 = Tensor.allocate(DType.F32, 4, 10)) {
            fails(IllegalStateException.class, "closed", () -> Ops.matmul(x3, pw));
        }
        w.close();
        fails(IllegalStateException.class, "closed", () -> PackedWeights.quantize(w, QuantScheme.int8PerRow()));
    }

    @Test
    void anotherThreadsConfinedArenaIsRefused() throws Exception {
        try (Tensor w = Tensor.of(TestSupport.randomFloats(r, 30, 1f), 3, 10);
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
             Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.allocate(arena, DType.F32, 2, 10);
            Throwable t = CompletableFuture.supplyAsync(() -> {
                try {
                    Ops.matmul(x, pw);
                    return null;
                } catch (Throwable e) {
                    return e;
                }
            }).get();
            assertTrue(t instanceof IllegalStateException && t.getMessage().contains("another thread"), String.valueOf(t));
        }
    }

    @Test
    void heapAndTooSmallSegmentsAreRefused() {
        MemorySegment heap = MemorySegment.ofArray(new float[40]);
        Tensor h = Tensor.wrap(heap, DType.F32, 4, 10);
        try (Tensor w = Tensor.of(TestSupport.randomFloats(r, 30, 1f), 3, 10);
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
             Arena arena = Arena.ofConfined()) {
            fails(IllegalArgumentException.class, "heap", () -> Ops.matmul(h, pw));
            MemorySegment small = arena.allocate(4 * 39);
            fails(IllegalArgumentException.class, "too small", () -> Tensor.wrap(small, DType.F32, 4, 10));
            fails(IllegalArgumentException.class, "has 3 elements", () -> Tensor.of(new float[3], 2, 2));
            fails(IllegalArgumentException.class, ">= 1", () -> Tensor.allocate(DType.F32, 0, 2));
            fails(IllegalArgumentException.class, "overflows", () -> Tensor.allocate(DType.F32, Long.MAX_VALUE / 2, 4));
        }
    }

    @Test
    void invalidWeightsAreRefused() {
        byte[] wv = TestSupport.randomInt8(r, 3 * 10, false);
        wv[17] = -128;
        try (Tensor wt = Tensor.of(wv, 3, 10); Tensor ws = Tensor.of(new float[] {0.1f, 0.1f, 0.1f}, 3);
             QuantizedTensor wq = new QuantizedTensor(wt, ws, QuantScheme.int8PerRow())) {
            fails(IllegalArgumentException.class, "w[1, 7] = -128", () -> PackedWeights.pack(wq));
        }
        try (Tensor wt = Tensor.of(new byte[30], 3, 10); Tensor ws = Tensor.of(new float[] {0.1f, Float.NaN, 0.1f}, 3);
             QuantizedTensor wq = new QuantizedTensor(wt, ws, QuantScheme.int8PerRow())) {
            fails(IllegalArgumentException.class, "not finite", () -> PackedWeights.pack(wq));
        }
        try (Tensor wt = Tensor.of(new byte[30], 3, 10); Tensor ws = Tensor.of(new float[2], 2)) {
            fails(IllegalArgumentException.class, "scales must hold 3", () -> new QuantizedTensor(wt, ws, QuantScheme.int8PerRow()));
        }
    }

    @Test
    void weightsPackedAboveTheCapAreANativeError() {
        org.junit.jupiter.api.Assumptions.assumeTrue(Isthmus.supportedIsa() == Isa.AVX512,
                "skipped: this CPU has no AVX-512 VNNI, so no weights can be packed above an AVX2 cap");
        try (Tensor w = Tensor.of(TestSupport.randomFloats(r, 30, 1f), 3, 10);
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
             Tensor x = Tensor.of(TestSupport.randomFloats(r, 20, 1f), 2, 10)) {
            Isthmus.setIsaCap(Isa.AVX2);
            IsthmusException e = assertThrows(IsthmusException.class, () -> Ops.matmul(x, pw));
            assertTrue(e.status() == IsthmusException.UNSUPPORTED && e.nativeMessage().contains("avx512"), e.getMessage());
        } finally {
            Isthmus.setIsaCap(Isa.AVX512);
        }
    }
}
