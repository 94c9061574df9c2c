package dev.isthmus.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.bindings.Isthmus;

import java.lang.foreign.Arena;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Every kind of bad input to the attention API is an exception that names the argument, never a crash. */
class AttentionBadInputTest {
    private static <T extends Throwable> void fails(Class<T> type, String mention, Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(mention),
                "message should mention '" + mention + "': " + e.getMessage());
    }

    static KvConfig.Builder base() {
        return KvConfig.builder().layers(2).kvHeads(2).headDim(16).numBlocks(16).maxSequences(4).maxSequenceLength(64);
    }

    private final Random r = new Random(11);

    @Test
    void configIsValidated() {
        KvConfig ok = base().build();
        assertEquals(16, ok.blockSize());
        assertEquals(KvType.F16, ok.type());
        fails(IllegalArgumentException.class, "layers must be >= 1, got 0", () -> base().layers(0).build());
        fails(IllegalArgumentException.class, "kvHeads must be >= 1, got -1", () -> base().kvHeads(-1).build());
        for (int hd : new int[] {0, 8, 24, 528, 1024})
            fails(IllegalArgumentException.class, "headDim must be a multiple of 16 from 16 to 512, got " + hd,
                    () -> base().headDim(hd).build());
        for (int bs : new int[] {0, 3, 12, 512})
            fails(IllegalArgumentException.class, "blockSize must be a power of two from 1 to 256, got " + bs,
                    () -> base().blockSize(bs).build());
        fails(IllegalArgumentException.class, "type is null", () -> base().type(null).build());
        fails(IllegalArgumentException.class, "numBlocks must be >= 1, got 0", () -> base().numBlocks(0).build());
        fails(IllegalArgumentException.class, "maxSequences must be >= 1, got 0", () -> base().maxSequences(0).build());
        fails(IllegalArgumentException.class, "maxSequenceLength must be from 1 to 16777216, got 16777217",
                () -> base().maxSequenceLength((1 << 24) + 1).build());
        fails(IllegalStateException.class, "not set: kvHeads, maxSequenceLength",
                () -> KvConfig.builder().layers(1).headDim(64).numBlocks(1).maxSequences(1).build());
        assertEquals(Isthmus.ISTHMUS_KV_MAX_HEAD_DIM(), KvConfig.MAX_HEAD_DIM);
        assertEquals(Isthmus.ISTHMUS_KV_MAX_BLOCK_SIZE(), KvConfig.MAX_BLOCK_SIZE);
        assertEquals(Isthmus.ISTHMUS_KV_MAX_SEQ_LEN(), KvConfig.MAX_SEQUENCE_LENGTH);
        assertEquals(Isthmus.ISTHMUS_ERR_CAPACITY(), dev.isthmus.IsthmusException.CAPACITY);
        assertTrue(ok.poolBytes() >= 2L * 2 * 2 * 16 * 16 * 16 * 2, "pool of " + ok.poolBytes() + " bytes");
        assertTrue(ok.stateBytes() > 0);
    }

    @Test
    void ropeAndParamsAreValidated() {
        fails(IllegalArgumentException.class, "theta must be finite and > 1, got 1.0", () -> Rope.half(1));
        fails(IllegalArgumentException.class, "theta must be finite and > 1, got NaN", () -> Rope.interleaved(Double.NaN));
        fails(IllegalArgumentException.class, "theta must be finite and > 1", () -> Rope.half(1e39));
        fails(IllegalArgumentException.class, "rotaryDim must be 0 (the whole head) or even", () -> Rope.half(1e4).withRotaryDim(7));
        fails(IllegalArgumentException.class, "rotaryDim must be 0", () -> Rope.half(1e4).withRotaryDim(-2));
        fails(IllegalArgumentException.class, "style is null", () -> new Rope(null, 1e4, 0));
        fails(IllegalArgumentException.class, "queryHeads must be >= 1, got 0", () -> AttentionParams.of(0, 64));
        fails(IllegalArgumentException.class, "scale must be finite and > 0, got 0.0", () -> AttentionParams.of(4, 64).withScale(0));
        fails(IllegalArgumentException.class, "scale must be finite and > 0, got NaN", () -> AttentionParams.of(4, 64).withScale(Float.NaN));
        fails(IllegalArgumentException.class, "softcap must be 0 (none) or finite and > 0, got -1.0",
                () -> AttentionParams.of(4, 64).withSoftcap(-1));
        fails(IllegalArgumentException.class, "softcap must be", () -> AttentionParams.of(4, 64).withSoftcap(Float.POSITIVE_INFINITY));
        fails(IllegalArgumentException.class, "window must be 0 (none) or >= 1, got -3", () -> AttentionParams.of(4, 64).withWindow(-3));
        assertEquals(0.125f, AttentionParams.of(4, 64).scale());

        try (Tensor x = Tensor.of(KvTestSupport.gaussian(r, 3 * 64, 1), 3, 64);
             Tensor x3 = Tensor.of(KvTestSupport.gaussian(r, 3 * 64, 1), 3, 2, 32);
             Tensor xi = Tensor.of(new byte[3 * 64], 3, 64)) {
            long[] pos = {0, 1, 2};
            fails(IllegalArgumentException.class, "rotaryDim 64 exceeds the head dimension 32 of x F32[3, 64]",
                    () -> Rope.apply(x, 2, pos, Rope.half(1e4).withRotaryDim(64)));
            fails(IllegalArgumentException.class, "x F32[3, 64] has 64 columns, not a multiple of heads = 3",
                    () -> Rope.apply(x, 3, pos, Rope.half(1e4)));
            fails(IllegalArgumentException.class, "x F32[3, 2, 32] has 2 heads, not heads = 4",
                    () -> Rope.apply(x3, 4, pos, Rope.half(1e4)));
            fails(IllegalArgumentException.class, "x must be F32", () -> Rope.apply(xi, 2, pos, Rope.half(1e4)));
            fails(IllegalArgumentException.class, "positions has 2 entries but x F32[3, 64] has 3 tokens",
                    () -> Rope.apply(x, 2, new long[] {0, 1}, Rope.half(1e4)));
            fails(IllegalArgumentException.class, "positions[1] = -1 is outside [0, 2^40]",
                    () -> Rope.apply(x, 2, new long[] {0, -1, 2}, Rope.half(1e4)));
            try (Tensor odd = Tensor.of(new float[63], 3, 21)) {
                fails(IllegalArgumentException.class, "odd head dimension 21", () -> Rope.apply(odd, 1, pos, Rope.half(1e4)));
            }
            fails(IllegalArgumentException.class, "rope is null", () -> Rope.apply(x, 2, pos, null));
            fails(IllegalArgumentException.class, "positions is null", () -> Rope.apply(x, 2, null, Rope.NONE));
            fails(IllegalArgumentException.class, "heads must be >= 1", () -> Rope.apply(x, 0, pos, Rope.NONE));
            try (Arena arena = Arena.ofConfined()) {
                Tensor ro = Tensor.wrap(arena.allocate(3 * 64 * 4).asReadOnly(), DType.F32, 3, 64);
                fails(IllegalArgumentException.class, "x F32[3, 64] is read-only", () -> Rope.apply(ro, 2, pos, Rope.half(1e4)));
            }
        }
    }

    @Test
    void batchesAreValidated() {
        try (KvCache a = KvCache.create(base().build()); KvCache b = KvCache.create(base().build())) {
            Sequence sa = a.newSequence(), sb = b.newSequence();
            fails(IllegalArgumentException.class, "qLen must be >= 1, got 0", () -> Batch.of(sa, 0));
            fails(IllegalArgumentException.class, "sequence is null", () -> Batch.of(null, 1));
            fails(IllegalArgumentException.class, "batch is empty", () -> Batch.builder().build());
            fails(IllegalArgumentException.class, "like the batch's first sequence",
                    () -> Batch.builder().add(sa, 1).add(sb, 1));
            sa.extend(3);
            fails(IllegalArgumentException.class, "belongs to another cache", () -> b.extend(Batch.of(sa, 1)));
            fails(IllegalArgumentException.class, "belongs to another cache", () -> b.fork(sa));
            Batch one = Batch.of(sa, 2);
            assertEquals(1, one.size());
            assertEquals(2, one.tokens());
            assertEquals(sa, one.sequence(0));
            assertEquals(2, one.qLen(0));
            assertEquals(java.util.List.of(1L, 2L), java.util.Arrays.stream(one.positions()).boxed().toList());
            fails(IllegalArgumentException.class, "qLen 5 exceeds the length 3 of sequence", () -> Batch.of(sa, 5).positions());
        }
    }

    @Test
    void callsAreValidated() {
        KvConfig cfg = base().build();
        try (KvCache cache = KvCache.create(cfg)) {
            Sequence s = cache.newSequence(), s2 = cache.newSequence();
            s.extend(5);
            s2.extend(2);
            Batch b = Batch.of(s, 3);
            AttentionParams p = AttentionParams.of(4, 16);
            try (Tensor k = Tensor.of(KvTestSupport.gaussian(r, 3 * 32, 1), 3, 32);
                 Tensor v = Tensor.of(KvTestSupport.gaussian(r, 3 * 32, 1), 3, 32);
                 Tensor q = Tensor.of(KvTestSupport.gaussian(r, 3 * 64, 1), 3, 64);
                 Tensor out = Tensor.allocate(DType.F32, 3, 64);
                 Tensor k4 = Tensor.allocate(DType.F32, 4, 32);
                 Tensor ki = Tensor.of(new byte[96], 3, 32);
                 Tensor k3mem = Tensor.allocate(DType.F32, 3, 2, 20);
                 Tensor k3bad = Tensor.wrap(k3mem.segment(), DType.F32,
                         new long[] {3, 2, 16}, new long[] {40, 20, 1})) {
                cache.write(0, b, k, v, Rope.NONE);
                // layer, batch, qLen
                fails(IllegalArgumentException.class, "layer 2 is out of range [0, 2)", () -> cache.write(2, b, k, v, Rope.NONE));
                fails(IllegalArgumentException.class, "layer -1 is out of range", () -> cache.attention(-1, b, q, out, p));
                fails(IllegalArgumentException.class, "batch is null", () -> cache.write(0, null, k, v, Rope.NONE));
                fails(IllegalArgumentException.class, "qLen 3 exceeds the length 2 of sequence",
                        () -> cache.write(0, Batch.of(s2, 3), k, v, Rope.NONE));
                try (Tensor q6 = Tensor.allocate(DType.F32, 6, 64); Tensor out6 = Tensor.allocate(DType.F32, 6, 64)) {
                    fails(IllegalArgumentException.class, "qLen 6 exceeds the length 5",
                            () -> cache.attention(0, Batch.of(s, 6), q6, out6, p));
                }
                fails(IllegalArgumentException.class, "twice",
                        () -> cache.write(0, Batch.builder().add(s, 1).add(s, 2).build(), k, v, Rope.NONE));
                // shapes and dtypes
                fails(IllegalArgumentException.class, "k must be F32[3, 32] or F32[3, 2, 16] but is F32[4, 32]",
                        () -> cache.write(0, b, k4, v, Rope.NONE));
                fails(IllegalArgumentException.class, "k must be F32[3, 32] or F32[3, 2, 16] but is I8[3, 32]",
                        () -> cache.write(0, b, ki, v, Rope.NONE));
                fails(IllegalArgumentException.class, "k F32[3, 2, 16] must have the heads of a row contiguous",
                        () -> cache.write(0, b, k3bad, v, Rope.NONE));
                fails(IllegalArgumentException.class, "v is null", () -> cache.write(0, b, k, null, Rope.NONE));
                fails(IllegalArgumentException.class, "rope is null", () -> cache.write(0, b, k, v, null));
                fails(IllegalArgumentException.class, "rotaryDim 32 exceeds the head dimension 16 of the cache",
                        () -> cache.write(0, b, k, v, Rope.half(1e4).withRotaryDim(32)));
                fails(IllegalArgumentException.class, "q must be F32[3, 64] or F32[3, 4, 16] but is F32[3, 32]",
                        () -> cache.attention(0, b, k, out, p));
                fails(IllegalArgumentException.class, "out must be F32[3, 64]", () -> cache.attention(0, b, q, k4, p));
                fails(IllegalArgumentException.class, "params.queryHeads = 3 is not a multiple of the cache's kvHeads = 2",
                        () -> cache.attention(0, b, q, out, AttentionParams.of(3, 16)));
                fails(IllegalArgumentException.class, "params is null", () -> cache.attention(0, b, q, out, null));
                try (Tensor lse43 = Tensor.allocate(DType.F32, 4, 3)) {
                    fails(IllegalArgumentException.class, "params.lse must be F32[3, 4] contiguous but is F32[4, 3]",
                            () -> cache.attention(0, b, q, out, p.withLse(lse43)));
                }
                fails(IllegalArgumentException.class, "params.lse F32[3, 4] overlaps out",
                        () -> cache.attention(0, b, q, out, p.withLse(Tensor.wrap(out.segment(), DType.F32, 3, 4))));
                // out vs q: identical is fine, shifted is not
                cache.attention(0, b, q, q, p);
                Tensor shifted = Tensor.wrap(q.segment().asSlice(16 * 4), DType.F32, new long[] {2, 64}, new long[] {64, 1});
                fails(IllegalArgumentException.class, "out F32[2, 64] overlaps q", () -> cache.attention(0, Batch.of(s, 2),
                        Tensor.wrap(q.segment(), DType.F32, 2, 64), shifted, p));
                try (Arena arena = Arena.ofConfined()) {
                    Tensor ro = Tensor.wrap(arena.allocate(3 * 64 * 4).asReadOnly(), DType.F32, 3, 64);
                    fails(IllegalArgumentException.class, "out F32[3, 64] is read-only", () -> cache.attention(0, b, q, ro, p));
                    Tensor roK = Tensor.wrap(arena.allocate(3 * 32 * 4).asReadOnly(), DType.F32, 3, 32);
                    fails(IllegalArgumentException.class, "k F32[3, 32] is read-only", () -> cache.read(0, s, 0, 3, roK, null));
                }
                // read
                fails(IllegalArgumentException.class, "k and v are both null", () -> cache.read(0, s, 0, 3, null, null));
                fails(IllegalArgumentException.class, "positions [3, 3 + 3) are not within the 5 tokens",
                        () -> cache.read(0, s, 3, 3, k, v));
                fails(IllegalArgumentException.class, "are not within", () -> cache.read(0, s, -1, 3, k, v));
                fails(IllegalArgumentException.class, "are not within", () -> cache.read(0, s, 0, 0, k, v));
                fails(IllegalArgumentException.class, "v F32[3, 32] overlaps k", () -> cache.read(0, s, 0, 3, k, k));
                // sequence operations
                fails(IllegalArgumentException.class, "n must be >= 1, got 0", () -> s.extend(0));
                fails(IllegalArgumentException.class, "length 6 is outside [0, 5]", () -> s.truncate(6));
                fails(IllegalArgumentException.class, "length -1 is outside", () -> s.truncate(-1));
                fails(IllegalArgumentException.class, "parent is null", () -> cache.fork(null));
                // freed sequences, closed tensors
                s2.close();
                fails(IllegalStateException.class, "was freed", () -> cache.attention(0, Batch.of(s2, 1), q.rows(0, 1),
                        out.rows(0, 1), p));
                fails(IllegalStateException.class, "was freed", s2::length);
                fails(IllegalStateException.class, "was freed", s2::fork);
                fails(IllegalStateException.class, "was freed", () -> s2.extend(1));
                s2.close(); // idempotent
                Tensor closed = Tensor.allocate(DType.F32, 3, 32);
                closed.close();
                fails(IllegalStateException.class, "k F32[3, 32] is closed", () -> cache.write(0, b, closed, v, Rope.NONE));
                Tensor fromArena;
                try (Arena arena = Arena.ofConfined()) {
                    fromArena = Tensor.allocate(arena, DType.F32, 3, 64);
                }
                fails(IllegalStateException.class, "q F32[3, 64] is closed", () -> cache.attention(0, b, fromArena, out, p));
            }
        }
    }

    @Test
    void aClosedCacheRefusesEverything() {
        KvCache cache = KvCache.create(base().build());
        Sequence s = cache.newSequence();
        s.extend(2);
        Batch b = Batch.of(s, 1);
        cache.close();
        cache.close(); // idempotent
        String closed = "KvCache[2 layers x 2 KV heads x 16, F16, 16 blocks of 16] is closed";
        try (Tensor k = Tensor.allocate(DType.F32, 1, 32); Tensor q = Tensor.allocate(DType.F32, 1, 64)) {
            fails(IllegalStateException.class, closed, cache::newSequence);
            fails(IllegalStateException.class, closed, cache::stats);
            fails(IllegalStateException.class, closed, () -> cache.fork(s));
            fails(IllegalStateException.class, closed, () -> cache.extend(b));
            fails(IllegalStateException.class, closed, () -> cache.write(0, b, k, k, Rope.NONE));
            fails(IllegalStateException.class, closed, () -> cache.read(0, s, 0, 1, k, null));
            fails(IllegalStateException.class, closed, () -> cache.attention(0, b, q, q, AttentionParams.of(4, 16)));
            fails(IllegalStateException.class, closed, s::length);
            fails(IllegalStateException.class, closed, s::blocks);
            fails(IllegalStateException.class, closed, () -> s.truncate(0));
            fails(IllegalStateException.class, closed, b::positions);
        }
        s.close(); // nothing left to free: no error
        assertTrue(!s.isOpen() && !cache.isOpen());
    }
}
