package dev.isthmus.speculative;

import dev.isthmus.DType;
import dev.isthmus.Ops;
import dev.isthmus.Tensor;
import dev.isthmus.attention.AttentionParams;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.KvCache;
import dev.isthmus.attention.KvConfig;
import dev.isthmus.attention.KvType;
import dev.isthmus.attention.Rope;
import dev.isthmus.attention.Sequence;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;
import dev.isthmus.sparse.BlockShape;
import dev.isthmus.sparse.PruneResult;
import dev.isthmus.sparse.Pruning;
import dev.isthmus.sparse.Sparse;
import dev.isthmus.sparse.SparseFormat;
import dev.isthmus.sparse.SparseMatrix;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Every public op of isthmus once, on shared read-only inputs (made by the constructor) and private
 * outputs (made and closed by each call): what the leak test repeats and the concurrency stress runs from
 * many threads. {@link #run} returns a digest of every op's output bits, by op name, so two runs can be
 * compared bit for bit. Small shapes: a call takes a few milliseconds.
 */
public final class AllOps implements AutoCloseable {
    static final int M = 9, N = 40, K = 96, V = 300;
    private final float[] xa, wa, gatea, upa, rmsw, qa, kva;
    private final Tensor x, w, bias, rmsWeight, gate, up, logits, draftProbs, targetLogits;
    private final PackedWeights pwRow, pwGroup;
    private final QuantizedTensor xq;
    private final List<SparseMatrix> sparse = new ArrayList<>();
    private final KvCache shared;
    private final Sequence sharedSeq;
    private static final int HEAD = 32, KV_HEADS = 2, Q_HEADS = 4;
    private static final AttentionParams PARAMS = AttentionParams.of(Q_HEADS, HEAD);

    public AllOps(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        xa = gauss(r, M * K);
        wa = gauss(r, N * K);
        gatea = gauss(r, M * K);
        upa = gauss(r, M * K);
        rmsw = gauss(r, K);
        qa = gauss(r, 5 * Q_HEADS * HEAD);
        kva = gauss(r, 40 * KV_HEADS * HEAD);
        x = Tensor.of(xa, M, K);
        w = Tensor.of(wa, N, K);
        bias = Tensor.of(gauss(r, N), N);
        rmsWeight = Tensor.of(rmsw, K);
        gate = Tensor.of(gatea, M, K);
        up = Tensor.of(upa, M, K);
        logits = Tensor.of(gauss(r, 4 * V), 4, V);
        pwRow = PackedWeights.quantize(w, QuantScheme.int8PerRow());
        pwGroup = PackedWeights.quantize(w, QuantScheme.int8PerGroup(32));
        xq = Quant.quantize(x, QuantScheme.int8PerRow());
        // 2:4 needs at most 2 nonzeros per group of 4: prune to it first
        try (PruneResult p24 = Pruning.nm(2, 4).prune(w); PruneResult p = Pruning.magnitude(0.7).prune(w)) {
            sparse.add(p.toSparse(SparseFormat.CSR));
            sparse.add(p.toSparse(SparseFormat.BSR, BlockShape.of(1, 4)));
            sparse.add(p24.toSparse(SparseFormat.TWO_FOUR));
            sparse.add(p.toSparseInt8(SparseFormat.CSR));
        }
        // verify: a chain of 3 for 2 sequences; the draft's probabilities are a softmax of its logits
        float[] dp = gauss(r, 2 * 3 * V);
        for (int row = 0; row < 6; row++) softmax(dp, row * V, V);
        draftProbs = Tensor.of(dp, 6, V);
        targetLogits = Tensor.of(gauss(r, 2 * 4 * V), 8, V);
        // attention on a shared cache: read only after this
        shared = KvCache.create(kvConfig());
        sharedSeq = shared.newSequence();
        Batch b = Batch.of(sharedSeq, 40);
        shared.extend(b);
        try (Tensor k = Tensor.of(kva, 40, KV_HEADS * HEAD); Tensor v = Tensor.of(kva, 40, KV_HEADS * HEAD)) {
            shared.write(0, b, k, v, Rope.half(10_000));
        }
    }

    private static KvConfig kvConfig() {
        return KvConfig.builder().layers(1).kvHeads(KV_HEADS).headDim(HEAD).type(KvType.F16).numBlocks(24)
                .maxSequences(4).maxSequenceLength(128).build();
    }

    /** Runs every op once; returns the digest of each op's output by op name. */
    public Map<String, Long> run() {
        Map<String, Long> d = new LinkedHashMap<>();
        try (Tensor y = Ops.matmul(x, pwRow)) {
            d.put("matmul f32 per row", digest(y));
        }
        try (Tensor y = Tensor.allocate(DType.F32, M, N)) {
            Ops.matmul(x, pwGroup, bias, y);
            d.put("matmul f32 per group + bias", digest(y));
        }
        try (Tensor y = Ops.matmul(xq, pwRow)) {
            d.put("matmul int8", digest(y));
        }
        try (Tensor c = Ops.matmulInt32(xq.values(), pwRow)) {
            d.put("matmul int32", digest(c));
        }
        try (QuantizedTensor q = Quant.quantize(x, QuantScheme.int8PerGroup(32)); Tensor back = Quant.dequantize(q)) {
            d.put("quantize", digest(q.values()) * 31 + digest(q.scales()));
            d.put("dequantize", digest(back));
        }
        try (PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerGroup(64))) {
            d.put("pack", digest(pw.segment()));
        }
        try (Tensor h = Tensor.of(xa, M, K); Tensor res = Tensor.of(upa, M, K); Tensor y = Tensor.allocate(DType.F32, M, K)) {
            Ops.rmsNorm(h, res, rmsWeight, 1e-5f, y);
            d.put("rmsNorm + residual", digest(h) * 31 + digest(y));
        }
        try (Tensor o = Tensor.allocate(DType.F32, M, K)) {
            Ops.swiglu(gate, up, o);
            d.put("swiglu", digest(o));
        }
        for (int i = 0; i < sparse.size(); i++) {
            SparseMatrix s = sparse.get(i);
            String name = "spmm " + s.format() + " " + s.dtype();
            if (s.dtype() == DType.I8) {
                try (Tensor y = Sparse.matmul(xq, s, bias); Tensor c = Sparse.matmulInt32(xq.values(), s)) {
                    d.put(name, digest(y) * 31 + digest(c));
                }
            } else {
                try (Tensor y = Sparse.matmul(x, s, bias)) {
                    d.put(name, digest(y));
                }
            }
        }
        try (PruneResult p = Pruning.block(BlockShape.of(4, 4), 0.5).prune(w);
             SparseMatrix s = p.toSparse(SparseFormat.BSR, BlockShape.of(4, 4)); Tensor y = Sparse.matmul(x, s)) {
            d.put("prune block + sparse pack + spmm", digest(p.mask()) * 31 + digest(y));
        }
        try (PruneResult p = Pruning.magnitude(0.5).global().prune(w)) {
            d.put("prune global", digest(p.mask()));
        }
        try (Tensor q = Tensor.of(qa, 5, Q_HEADS * HEAD)) {
            Rope.apply(q, Q_HEADS, new long[] {3, 9, 27, 81, 243}, Rope.interleaved(500_000));
            d.put("rope", digest(q));
        }
        try (Tensor q = Tensor.of(qa, 5, Q_HEADS * HEAD); Tensor o = Tensor.allocate(DType.F32, 5, Q_HEADS * HEAD)) {
            shared.attention(0, Batch.of(sharedSeq, 5), q, o, PARAMS);
            d.put("attention (shared cache)", digest(o));
        }
        d.put("kv cache lifecycle", kvLifecycle());
        int[] tok = Sampler.sample(logits, SamplingParams.temperature(0.9f).withTopK(40).withTopP(0.9f), 17,
                new long[] {1, 2, 3, 4});
        d.put("sample", digest(tok));
        Verifier.Result vr = Verifier.verify(DraftTree.chain(3), new int[][] {{1, 2, 3}, {4, 5, 6}}, draftProbs,
                targetLogits, SamplingParams.temperature(1f), false, 23, new long[] {7, 8}, false);
        long vd = digest(vr.accepted());
        for (int[] t : vr.tokens()) vd = vd * 31 + digest(t);
        d.put("verify", vd);
        d.put("speculative generate", speculative());
        return d;
    }

    /** A private cache: create, write, attention, fork, truncate, compact, read back, close. */
    private long kvLifecycle() {
        try (KvCache c = KvCache.create(kvConfig()); Sequence s = c.newSequence()) {
            Batch b = Batch.of(s, 12);
            c.extend(b);
            long h;
            try (Tensor k = prefix(kva, 12, KV_HEADS * HEAD); Tensor v = prefix(kva, 12, KV_HEADS * HEAD);
                 Tensor q = prefix(qa, 3, Q_HEADS * HEAD); Tensor o = Tensor.allocate(DType.F32, 3, Q_HEADS * HEAD)) {
                c.write(0, b, k, v, Rope.half(10_000));
                c.attention(0, Batch.of(s, 3), q, o, PARAMS);
                h = digest(o);
            }
            try (Sequence f = s.fork()) {
                Batch fb = Batch.of(f, 4);
                c.extend(fb);
                try (Tensor k = prefix(kva, 4, KV_HEADS * HEAD)) {
                    c.write(0, fb, k, k, Rope.half(10_000));
                }
                f.truncate(14);
                f.compact(10, new int[] {0, 2, 3});
                try (Tensor k = Tensor.allocate(DType.F32, f.length(), KV_HEADS * HEAD);
                     Tensor v = Tensor.allocate(DType.F32, f.length(), KV_HEADS * HEAD)) {
                    c.read(0, f, 0, f.length(), k, v);
                    h = h * 31 + digest(k) * 7 + digest(v);
                }
            }
            return h;
        }
    }

    /** A short speculative generation on the test models (their own small caches, closed after). */
    private static long speculative() {
        try (SpecTestModel target = SpecTestModel.withCache(50, 3, 0, 0, 4, 64);
             SpecTestModel draft = SpecTestModel.withCache(50, 3, 0.3, 5, 4, 64)) {
            Generation g = SpeculativeDecoder.builder(target, draft).draftLength(3).seed(9)
                    .sampling(SamplingParams.temperature(0.8f)).build()
                    .generate(List.of(new int[] {1, 2, 3}, new int[] {4, 5}), 10);
            long h = 0;
            for (int[] t : g.tokens()) h = h * 31 + digest(t);
            return h;
        }
    }

    @Override
    public void close() {
        for (SparseMatrix s : sparse) s.close();
        sharedSeq.close();
        shared.close();
        xq.close();
        pwRow.close();
        pwGroup.close();
        for (Tensor t : new Tensor[] {x, w, bias, rmsWeight, gate, up, logits, draftProbs, targetLogits}) t.close();
    }

    // ------------------------------------------------------------------ helpers

    /** A new owned tensor of the first rows * cols values of a. */
    private static Tensor prefix(float[] a, int rows, int cols) {
        return Tensor.of(java.util.Arrays.copyOf(a, rows * cols), rows, cols);
    }

    private static float[] gauss(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) SpecTestModel.gaussian(r);
        return a;
    }

    private static void softmax(float[] a, int off, int n) {
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        for (int i = 0; i < n; i++) max = Math.max(max, a[off + i]);
        for (int i = 0; i < n; i++) sum += Math.exp(a[off + i] - max);
        for (int i = 0; i < n; i++) a[off + i] = (float) (Math.exp(a[off + i] - max) / sum);
    }

    /** FNV-1a over the bytes of a tensor's memory (contiguous tensors). */
    static long digest(Tensor t) {
        return digest(t.segment());
    }

    static long digest(MemorySegment s) {
        long h = 0xcbf29ce484222325L;
        for (long i = 0; i < s.byteSize(); i++) h = (h ^ (s.get(ValueLayout.JAVA_BYTE, i) & 0xFF)) * 0x100000001b3L;
        return h;
    }

    static long digest(int[] a) {
        long h = 0xcbf29ce484222325L;
        for (int v : a) h = (h ^ v) * 0x100000001b3L;
        return h;
    }
}
