package dev.isthmus.bench.kernels;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.Tensor;
import dev.isthmus.attention.AttentionParams;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.KvCache;
import dev.isthmus.attention.KvConfig;
import dev.isthmus.attention.KvType;
import dev.isthmus.attention.Rope;
import dev.isthmus.attention.Sequence;
import dev.isthmus.bench.AttentionCase;
import dev.isthmus.bench.AttentionData;

import java.util.Locale;
import java.util.stream.IntStream;

/**
 * isthmus attention over its paged KV cache on one forced ISA variant: {@code KvCache.attention(layer,
 * batch, q, out, AttentionParams.of(32, 128))}, the batch's queries being the newest q_len positions of
 * each sequence.
 *
 * <p>The cache is sized for the case ({@code batch} sequences of {@code context} tokens, blocks of
 * {@value #BLOCK_SIZE}) and filled once, at setup, through the public API: {@code extend} then
 * {@code write} per chunk of {@value #FILL_CHUNK} positions, K and V from {@link AttentionData}, no RoPE.
 * Decode caches smaller than {@code rotateBytes} get more layers (each with its own K/V; a block id names
 * the same slot in every layer), and each call reads the next layer, as a model's layer loop does: so K/V
 * stream from memory, not from a warm L3. Prefill uses one layer (its K/V were just written, as in a
 * real prefill).
 */
public final class IsthmusAttention implements AttentionKernel {
    public static final int BLOCK_SIZE = 16;
    public static final int FILL_CHUNK = 512;
    public static final int MAX_LAYERS = 128;

    private final AttentionCase c;
    private final int layers;
    private final KvCache cache;
    private final Sequence[] seqs;
    private final Batch batch;
    private final Tensor q, out;
    private final AttentionParams params;
    private final String describe;
    private int next, last;

    public static KvType kvType(String kv) {
        return switch (kv) {
            case "f32" -> KvType.F32;
            case "f16" -> KvType.F16;
            case "bf16" -> KvType.BF16;
            case "int8" -> KvType.INT8;
            default -> throw new IllegalArgumentException("kv type " + kv);
        };
    }

    /** Layers of the cache: decode caches below {@code rotateBytes} get enough to reach it (at most {@value #MAX_LAYERS}). */
    public static int layers(AttentionCase c, long rotateBytes) {
        if (!c.decode() || rotateBytes <= 0) return 1;
        long perLayer = c.kvBytesRead();
        return (int) Math.max(1, Math.min(MAX_LAYERS, (rotateBytes + perLayer - 1) / perLayer));
    }

    public IsthmusAttention(AttentionCase c, Isa isa, int threads, long rotateBytes) {
        this.c = c;
        Isthmus.setThreads(threads);
        Isthmus.setIsaCap(isa);
        if (Isthmus.isa() != isa)
            throw new IllegalStateException("asked for " + isa + " but isthmus runs " + Isthmus.isa() + " (" + Isthmus.describe() + ")");
        this.layers = layers(c, rotateBytes);
        int blocksPerSeq = (c.context() + BLOCK_SIZE - 1) / BLOCK_SIZE;
        KvConfig cfg = new KvConfig(layers, AttentionCase.KV_HEADS, AttentionCase.HEAD_DIM, BLOCK_SIZE, kvType(c.kv()),
                Math.multiplyExact(blocksPerSeq, c.batch()), c.batch(), c.context());
        this.cache = KvCache.create(cfg);
        this.seqs = new Sequence[c.batch()];
        Tensor qt = null, ot = null;
        try {
            for (int s = 0; s < seqs.length; s++) seqs[s] = cache.newSequence();
            long t0 = System.nanoTime();
            fill();
            double fillSeconds = (System.nanoTime() - t0) / 1e9;
            int cols = AttentionCase.Q_HEADS * AttentionCase.HEAD_DIM;
            qt = Tensor.allocate(DType.F32, c.tokens(), cols);
            for (int s = 0; s < seqs.length; s++)
                AttentionData.fill(qt.segment(), (long) s * c.qLen() * cols, AttentionData.Q, 0, s, c.context() - c.qLen(), c.qLen(), cols);
            ot = Tensor.allocate(DType.F32, c.tokens(), cols);
            this.batch = batchOf(c.qLen());
            this.params = AttentionParams.of(AttentionCase.Q_HEADS, AttentionCase.HEAD_DIM);
            this.describe = String.format(Locale.ROOT,
                    "isthmus %s %s, KV %s in blocks of %d, %d layer%s (%.0f MiB pool%s), filled through extend + write in %.1f s, %d threads",
                    Isthmus.version(), isa, kvType(c.kv()), BLOCK_SIZE, layers, layers == 1 ? "" : "s",
                    cfg.poolBytes() / 1048576.0, layers > 1 ? ", each call reads the next layer" : "", fillSeconds, Isthmus.threads());
        } catch (RuntimeException | Error e) {
            if (qt != null) qt.close();
            if (ot != null) ot.close();
            closeCache();
            throw e;
        }
        this.q = qt;
        this.out = ot;
    }

    private Batch batchOf(int qLen) {
        if (seqs.length == 1) return Batch.of(seqs[0], qLen);
        var b = Batch.builder();
        for (Sequence s : seqs) b.add(s, qLen);
        return b.build();
    }

    /** extend + write, FILL_CHUNK positions of every sequence at a time, every layer. */
    private void fill() {
        int cols = AttentionCase.KV_HEADS * AttentionCase.HEAD_DIM;
        int chunk = Math.min(FILL_CHUNK, c.context());
        try (Tensor k = Tensor.allocate(DType.F32, (long) c.batch() * chunk, cols);
             Tensor v = Tensor.allocate(DType.F32, (long) c.batch() * chunk, cols)) {
            for (int p0 = 0; p0 < c.context(); p0 += chunk) {
                int n = Math.min(chunk, c.context() - p0), pos = p0;
                Batch b = batchOf(n);
                cache.extend(b);
                Tensor kn = n == chunk ? k : k.rows(0, (long) c.batch() * n), vn = n == chunk ? v : v.rows(0, (long) c.batch() * n);
                for (int layer = 0; layer < layers; layer++) {
                    int l = layer;
                    IntStream.range(0, 2 * c.batch()).parallel().forEach(x -> {
                        int s = x >> 1;
                        boolean isK = (x & 1) == 0;
                        AttentionData.fill((isK ? kn : vn).segment(), (long) s * n * cols, isK ? AttentionData.K : AttentionData.V,
                                l, s, pos, n, cols);
                    });
                    cache.write(layer, b, kn, vn, Rope.NONE);
                }
            }
        }
    }

    @Override
    public void run() {
        int l = next;
        next = next + 1 == layers ? 0 : next + 1;
        cache.attention(l, batch, q, out, params);
        last = l;
    }

    @Override
    public float output(int token, int col) {
        return out.getFloat(token, col);
    }

    @Override
    public int lastLayer() {
        return last;
    }

    @Override
    public double tolerance() {
        return switch (c.kv()) {
            case "f32" -> 1e-3;
            case "f16" -> 5e-3;
            default -> 3e-2; // bf16 (8 mantissa bits), int8 (per token and head)
        };
    }

    @Override
    public String describe() {
        return describe;
    }

    /** Frees the pool and every sequence. */
    private void closeCache() {
        cache.close();
    }

    @Override
    public void close() {
        q.close();
        out.close();
        closeCache();
    }

    @Override
    public String toString() {
        return describe + " " + c;
    }
}
