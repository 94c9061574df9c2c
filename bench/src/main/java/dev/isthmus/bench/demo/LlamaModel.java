package dev.isthmus.bench.demo;

import dev.isthmus.DType;
import dev.isthmus.Ops;
import dev.isthmus.Tensor;
import dev.isthmus.attention.AttentionParams;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.KvCache;
import dev.isthmus.attention.KvConfig;
import dev.isthmus.attention.Rope;
import dev.isthmus.speculative.LanguageModel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * A Llama-architecture decoder on isthmus ops only, as a {@link LanguageModel}: embedding lookup; per
 * layer RMSNorm (fused with the residual add), one QKV GEMM, RoPE on Q, KV write (RoPE on K) at the
 * given positions, attention over the paged cache (tree mask when given), O projection, RMSNorm, one
 * gate/up GEMM, SwiGLU, down projection; final RMSNorm and the LM head for the requested rows only.
 *
 * <p>The same class is the target ({@link #target}) and the drafts ({@link Drafts}): a draft is a list of
 * the target's layers (layer skip), possibly with sparse GEMMs (pruning), and its own, smaller KV cache.
 * Work tensors are allocated once for the largest batch seen (grown when a bigger one comes); a forward
 * allocates no tensors. Not thread-safe (one forward at a time). {@link #times()} accumulates the time of
 * each kernel family.
 */
public final class LlamaModel implements LanguageModel, AutoCloseable {
    /** RMSNorm epsilon (Llama 2/3 use 1e-5). */
    public static final float EPS = 1e-5f;

    /** One decoder layer as the forward runs it. */
    public record ModelLayer(Tensor attnNorm, Linear qkv, Linear o, Tensor mlpNorm, Linear gateUp, Linear down) {}

    private final String name;
    private final LlamaConfig config;
    private final LlamaWeights weights;
    private final ModelLayer[] layers;
    private final Linear head;
    private final KvCache cache;
    private final Rope rope;
    private final AttentionParams params;
    private final List<AutoCloseable> owned;
    private final KernelTimes times = new KernelTimes();

    // work tensors, [capacity, ...]; views for a given T are cached in views[T]
    private Arena work;
    private int capacity;
    private Views[] views;
    private float[] row;

    private LlamaModel(String name, LlamaWeights weights, ModelLayer[] layers, Linear head, int maxSequences,
                       int maxSeqLen, List<AutoCloseable> owned) {
        this.name = name;
        this.config = weights.config();
        this.weights = weights;
        this.layers = layers;
        this.head = head;
        this.owned = owned;
        this.rope = Rope.half(config.ropeTheta());
        this.params = AttentionParams.of(config.qHeads(), config.headDim());
        int blocksPerSeq = (maxSeqLen + KvConfig.DEFAULT_BLOCK_SIZE - 1) / KvConfig.DEFAULT_BLOCK_SIZE + 1;
        this.cache = KvCache.create(KvConfig.builder()
                .layers(Math.max(1, layers.length)).kvHeads(config.kvHeads()).headDim(config.headDim())
                .type(config.kvType()).numBlocks(maxSequences * blocksPerSeq)
                .maxSequences(maxSequences).maxSequenceLength(maxSeqLen).build());
        this.row = new float[config.dim()];
        grow(8);
    }

    /** The full model: every layer, dense int8 GEMMs; a cache for {@code maxSequences} of config.maxSeqLen(). */
    public static LlamaModel target(LlamaWeights w, int maxSequences) {
        int[] all = new int[w.config().layers()];
        for (int i = 0; i < all.length; i++) all[i] = i;
        return layerSkip("target", w, all, maxSequences);
    }

    /** The target's layers {@code keep} (in this order) with its dense weights, and a cache of that many layers. */
    public static LlamaModel layerSkip(String name, LlamaWeights w, int[] keep, int maxSequences) {
        ModelLayer[] ls = new ModelLayer[keep.length];
        for (int i = 0; i < keep.length; i++) {
            LlamaWeights.Layer l = w.layer(keep[i]);
            ls[i] = new ModelLayer(l.attnNorm(), Linear.dense(l.qkv()), Linear.dense(l.o()), l.mlpNorm(),
                    Linear.dense(l.gateUp()), Linear.dense(l.down()));
        }
        return new LlamaModel(name, w, ls, Linear.dense(w.head()), maxSequences, w.config().maxSeqLen(), new ArrayList<>());
    }

    /** A model over explicit layers and head (closing {@code owned} on close); what {@link Drafts} builds. */
    static LlamaModel of(String name, LlamaWeights w, ModelLayer[] layers, Linear head, int maxSequences,
                         List<AutoCloseable> owned) {
        return new LlamaModel(name, w, layers, head, maxSequences, w.config().maxSeqLen(), owned);
    }

    public String name() {
        return name;
    }

    public LlamaConfig config() {
        return config;
    }

    public int layerCount() {
        return layers.length;
    }

    /** Bytes of weights one forward reads (layer GEMMs and the LM head). */
    public long weightBytes() {
        long b = head.bytes();
        for (ModelLayer l : layers) b += l.qkv.bytes() + l.o.bytes() + l.gateUp.bytes() + l.down.bytes();
        return b;
    }

    public KernelTimes times() {
        return times;
    }

    @Override
    public int vocabSize() {
        return config.vocab();
    }

    @Override
    public KvCache cache() {
        return cache;
    }

    @Override
    public void forward(Batch batch, int[] tokens, long[] positions, int[] treeParents, int[] logitRows, Tensor logits) {
        long t0 = System.nanoTime();
        int t = Math.toIntExact(batch.tokens());
        if (tokens.length != t || positions.length != t)
            throw new IllegalArgumentException("tokens (" + tokens.length + ") and positions (" + positions.length
                    + ") must have batch.tokens() = " + t + " entries");
        if (treeParents != null && treeParents.length != t)
            throw new IllegalArgumentException("treeParents has " + treeParents.length + " entries, batch has " + t + " tokens");
        int rows = logitRows == null ? t : logitRows.length;
        if (logits.dim(0) != rows || logits.dim(1) != config.vocab())
            throw new IllegalArgumentException("logits must be [" + rows + ", " + config.vocab() + "] but is ["
                    + logits.dim(0) + ", " + logits.dim(1) + "]");
        if (t > capacity) grow(Math.max(t, 2 * capacity));
        Views v = views(t);

        int d = config.dim();
        for (int i = 0; i < t; i++) {
            weights.embed(tokens[i], row);
            MemorySegment.copy(row, 0, v.x.segment(), ValueLayout.JAVA_FLOAT, (long) i * d * Float.BYTES, d);
        }
        long t1 = System.nanoTime();
        times.other += t1 - t0;

        boolean pending = false;   // v.branch holds a branch output not yet added to x
        for (int li = 0; li < layers.length; li++) {
            ModelLayer l = layers[li];
            long a = System.nanoTime();
            rmsNorm(v.x, pending ? v.branch : null, l.attnNorm, v.xn);
            long b = System.nanoTime();
            l.qkv.apply(v.xn, v.qkv);
            long c = System.nanoTime();
            Rope.apply(v.q, config.qHeads(), positions, rope);
            cache.write(li, batch, v.k, v.v, rope, positions);
            cache.attention(li, batch, v.q, v.att, params, treeParents);
            long e = System.nanoTime();
            l.o.apply(v.att, v.branch);
            long f = System.nanoTime();
            rmsNorm(v.x, v.branch, l.mlpNorm, v.xn);
            long g = System.nanoTime();
            l.gateUp.apply(v.xn, v.gu);
            long h = System.nanoTime();
            Ops.swiglu(v.gate, v.up, v.act);
            long i = System.nanoTime();
            l.down.apply(v.act, v.branch);
            long j = System.nanoTime();
            pending = true;
            times.normsSwiglu += (b - a) + (g - f) + (i - h);
            times.gemm += (c - b) + (f - e) + (h - g) + (j - i);
            times.attention += e - c;
        }
        long a = System.nanoTime();
        rmsNorm(v.x, pending ? v.branch : null, weights.finalNorm(), v.xn);
        long b = System.nanoTime();
        Tensor in;
        if (logitRows == null) {
            in = v.xn;
        } else {
            in = views(rows).headIn;
            long bytes = (long) d * Float.BYTES;
            for (int r = 0; r < rows; r++) {
                int src = logitRows[r];
                if (src < 0 || src >= t || (r > 0 && src <= logitRows[r - 1]))
                    throw new IllegalArgumentException("logitRows must be ascending indices in [0, " + t + ")");
                MemorySegment.copy(v.xn.segment(), src * bytes, in.segment(), r * bytes, bytes);
            }
        }
        head.apply(in, logits);
        long c = System.nanoTime();
        times.normsSwiglu += b - a;
        times.lmHead += c - b;
        times.forwards++;
        times.tokens += t;
    }

    private static void rmsNorm(Tensor x, Tensor residual, Tensor weight, Tensor y) {
        Ops.rmsNorm(x, residual, weight, EPS, y);
    }

    @Override
    public void close() {
        cache.close();
        if (work != null) work.close();
        for (int i = owned.size() - 1; i >= 0; i--) {
            try {
                owned.get(i).close();
            } catch (Exception e) {
                throw new IllegalStateException("closing " + owned.get(i), e);
            }
        }
        owned.clear();
    }

    @Override
    public String toString() {
        return name + " (" + layers.length + " of " + config.layers() + " layers, " + String.format("%.1f", weightBytes() / 1e6)
                + " MB of weights per forward)";
    }

    // ------------------------------------------------------------------ work tensors

    /** The work tensors seen as T rows. */
    private static final class Views {
        Tensor x, xn, qkv, q, k, v, att, branch, gu, gate, up, act, headIn;
    }

    private void grow(int rows) {
        if (work != null) work.close();
        work = Arena.ofShared();
        capacity = rows;
        views = new Views[rows + 1];
        LlamaConfig c = config;
        long f = Float.BYTES;
        segX = work.allocate(f * rows * c.dim(), 64);
        segXn = work.allocate(f * rows * c.dim(), 64);
        segQkv = work.allocate(f * rows * c.qkvDim(), 64);
        segAtt = work.allocate(f * rows * c.qDim(), 64);
        segBranch = work.allocate(f * rows * c.dim(), 64);
        segGu = work.allocate(f * rows * 2L * c.ffn(), 64);
        segAct = work.allocate(f * rows * c.ffn(), 64);
        segHeadIn = work.allocate(f * rows * c.dim(), 64);
    }

    private MemorySegment segX, segXn, segQkv, segAtt, segBranch, segGu, segAct, segHeadIn;

    private Views views(int t) {
        Views v = views[t];
        if (v != null) return v;
        LlamaConfig c = config;
        v = new Views();
        v.x = Tensor.wrap(segX, DType.F32, t, c.dim());
        v.xn = Tensor.wrap(segXn, DType.F32, t, c.dim());
        v.qkv = Tensor.wrap(segQkv, DType.F32, t, c.qkvDim());
        long ld = c.qkvDim();
        v.q = Tensor.wrap(segQkv, DType.F32, new long[] {t, c.qDim()}, new long[] {ld, 1});
        v.k = Tensor.wrap(segQkv.asSlice((long) c.qDim() * Float.BYTES), DType.F32, new long[] {t, c.kvDim()},
                new long[] {ld, 1});
        v.v = Tensor.wrap(segQkv.asSlice((long) (c.qDim() + c.kvDim()) * Float.BYTES), DType.F32,
                new long[] {t, c.kvDim()}, new long[] {ld, 1});
        v.att = Tensor.wrap(segAtt, DType.F32, t, c.qDim());
        v.branch = Tensor.wrap(segBranch, DType.F32, t, c.dim());
        v.gu = Tensor.wrap(segGu, DType.F32, t, 2L * c.ffn());
        v.gate = Tensor.wrap(segGu, DType.F32, new long[] {t, c.ffn()}, new long[] {2L * c.ffn(), 1});
        v.up = Tensor.wrap(segGu.asSlice((long) c.ffn() * Float.BYTES), DType.F32, new long[] {t, c.ffn()},
                new long[] {2L * c.ffn(), 1});
        v.act = Tensor.wrap(segAct, DType.F32, t, c.ffn());
        v.headIn = Tensor.wrap(segHeadIn, DType.F32, t, c.dim());
        views[t] = v;
        return v;
    }
}
