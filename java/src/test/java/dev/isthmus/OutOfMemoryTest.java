package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.attention.AttentionParams;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.KvCache;
import dev.isthmus.attention.KvConfig;
import dev.isthmus.attention.Rope;
import dev.isthmus.attention.Sequence;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.QuantScheme;

import java.util.Random;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A native allocation failure (injected through the test-only isthmus_set_alloc_failure of the bindings)
 * surfaces as {@link IsthmusException} with status OUT_OF_MEMORY, frees the op's output tensor, and the
 * library works again, with the same results, once allocation is restored.
 */
class OutOfMemoryTest {
    @AfterEach
    void restore() {
        dev.isthmus.bindings.Isthmus.isthmus_set_alloc_failure(-1);
    }

    @Test
    void nativeOutOfMemoryIsAnIsthmusExceptionAndTheLibraryRecovers() {
        Random r = new Random(3);
        int m = 5, n = 24, k = 64;
        try (Tensor x = Tensor.of(TestSupport.randomFloats(r, m * k, 1f), m, k);
             Tensor w = Tensor.of(TestSupport.randomFloats(r, n * k, 1f), n, k);
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
             Tensor ref = Ops.matmul(x, pw)) {
            MemoryStats before = Isthmus.memoryStats();
            dev.isthmus.bindings.Isthmus.isthmus_set_alloc_failure(0); // the next allocation fails
            IsthmusException e = assertThrows(IsthmusException.class, () -> Ops.matmul(x, pw));
            dev.isthmus.bindings.Isthmus.isthmus_set_alloc_failure(-1);
            assertEquals(IsthmusException.OUT_OF_MEMORY, e.status(), e.getMessage());
            assertTrue(e.getMessage().contains("matmul") && !e.nativeMessage().isEmpty(), e.getMessage());
            MemoryStats after = Isthmus.memoryStats();
            assertTrue(after.nativeFailedAllocations() > before.nativeFailedAllocations());
            assertEquals(before.openObjects(), after.openObjects(), "the output tensor of the failed op is closed");
            assertEquals(before.ownedBytes(), after.ownedBytes());
            try (Tensor y = Ops.matmul(x, pw)) {
                assertArrayEquals(ref.toFloatArray(), y.toFloatArray(), "the same result after the reset");
            }
        }
    }

    @Test
    void attentionOutOfMemoryLeavesTheCacheUsable() {
        Random r = new Random(8);
        KvConfig cfg = KvConfig.builder().layers(1).kvHeads(1).headDim(16).numBlocks(8).maxSequences(1)
                .maxSequenceLength(64).build();
        try (KvCache cache = KvCache.create(cfg); Sequence s = cache.newSequence();
             Tensor kv = Tensor.of(TestSupport.randomFloats(r, 20 * 16, 1f), 20, 16);
             Tensor q = Tensor.of(TestSupport.randomFloats(r, 4 * 32, 1f), 4, 32);
             Tensor out = Tensor.allocate(DType.F32, 4, 32)) {
            Batch b = Batch.of(s, 20);
            cache.extend(b);
            cache.write(0, b, kv, kv, Rope.half(10_000));
            AttentionParams p = AttentionParams.of(2, 16);
            cache.attention(0, Batch.of(s, 4), q, out, p);
            float[] want = out.toFloatArray();
            dev.isthmus.bindings.Isthmus.isthmus_set_alloc_failure(0);
            IsthmusException e = assertThrows(IsthmusException.class, () -> cache.attention(0, Batch.of(s, 4), q, out, p));
            dev.isthmus.bindings.Isthmus.isthmus_set_alloc_failure(-1);
            assertEquals(IsthmusException.OUT_OF_MEMORY, e.status(), e.getMessage());
            assertEquals(20, s.length(), "the sequence is unchanged");
            cache.attention(0, Batch.of(s, 4), q, out, p);
            assertArrayEquals(want, out.toFloatArray());
        }
    }
}
