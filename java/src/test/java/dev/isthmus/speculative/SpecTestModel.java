package dev.isthmus.speculative;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.attention.AttentionParams;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.KvCache;
import dev.isthmus.attention.KvConfig;
import dev.isthmus.attention.KvType;
import dev.isthmus.attention.Rope;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/**
 * A one-layer, one-head attention "language model" made of isthmus ops, deterministic and cheap:
 * token t has embedding e_t (head dim 16); K = e_t rotated with RoPE at the token's position (through
 * KvCache.write with positions), V = e_t, Q = Wq e_t rotated the same way; attention over the cache (with
 * the tree mask when given) uses a large scale, so it nearly always picks one key (a one-hot softmax is
 * exact in f32, which keeps logits identical whether a token is decoded alone, in a chain or in a tree);
 * logits[u] = round(32 (s * h . U_u + bias[pos % 7][u])) / 32 in double. Perturbed copies (same seed, plus
 * noise) make drafts that partly agree; a "sharp" model puts all mass on its argmax.
 */
final class SpecTestModel implements LanguageModel, AutoCloseable {
    static final int D = 16, PERIOD = 7;
    final int vocab;
    final boolean sharp;
    private final float[] emb, wq, unemb, bias;
    private final float logitScale;
    private final KvCache cache;
    private final Rope rope = Rope.half(10_000);
    private final AttentionParams params = AttentionParams.of(1, D).withScale(30f);
    int forwards;

    private SpecTestModel(int vocab, long seed, double noise, long noiseSeed, boolean sharp, int maxSeqs, int maxLen,
                          KvType type) {
        this.vocab = vocab;
        this.sharp = sharp;
        SplittableRandom r = new SplittableRandom(seed);
        SplittableRandom n = new SplittableRandom(noiseSeed);
        emb = gauss(r, n, noise, vocab * D, 1);
        wq = gauss(r, n, noise, D * D, 1);
        unemb = gauss(r, n, noise, vocab * D, 1);
        bias = gauss(r, n, noise, PERIOD * vocab, 1);
        logitScale = 0.5f;
        int blocks = maxSeqs * ((maxLen + 15) / 16 + 1) + 4;
        cache = KvCache.create(KvConfig.builder().layers(1).kvHeads(1).headDim(D).type(type).numBlocks(blocks)
                .maxSequences(maxSeqs).maxSequenceLength(maxLen).build());
    }

    /** The base model of this seed. */
    static SpecTestModel of(int vocab, long seed) {
        return new SpecTestModel(vocab, seed, 0, 0, false, 16, 1024, KvType.F32);
    }

    /** The base model plus N(0, noise^2) on every weight (noise 0: an identical copy with its own cache). */
    static SpecTestModel perturbed(int vocab, long seed, double noise, long noiseSeed) {
        return new SpecTestModel(vocab, seed, noise, noiseSeed, false, 16, 1024, KvType.F32);
    }

    static SpecTestModel sharp(int vocab, long seed, double noise, long noiseSeed) {
        return new SpecTestModel(vocab, seed, noise, noiseSeed, true, 16, 1024, KvType.F32);
    }

    static SpecTestModel withCache(int vocab, long seed, double noise, long noiseSeed, int maxSeqs, int maxLen) {
        return new SpecTestModel(vocab, seed, noise, noiseSeed, false, maxSeqs, maxLen, KvType.F32);
    }

    private static float[] gauss(SplittableRandom r, SplittableRandom n, double noise, int count, double std) {
        float[] out = new float[count];
        for (int i = 0; i < count; i++) {
            double x = gaussian(r) * std;
            double e = gaussian(n);
            out[i] = (float) (x + noise * e);
        }
        return out;
    }

    static double gaussian(SplittableRandom r) {
        double u = r.nextDouble(), v = r.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v);
    }

    @Override
    public int vocabSize() {
        return vocab;
    }

    @Override
    public KvCache cache() {
        return cache;
    }

    @Override
    public void forward(Batch batch, int[] tokens, long[] positions, int[] treeParents, int[] logitRows,
                        Tensor logits) {
        forwards++;
        int t = tokens.length;
        if (t != batch.tokens() || positions.length != t)
            throw new IllegalArgumentException("tokens/positions do not match the batch");
        float[] q = new float[t * D], k = new float[t * D];
        for (int i = 0; i < t; i++) {
            int tok = tokens[i];
            System.arraycopy(emb, tok * D, k, i * D, D);
            for (int a = 0; a < D; a++) {
                float s = 0;
                for (int c = 0; c < D; c++) s += wq[a * D + c] * emb[tok * D + c];
                q[i * D + a] = s;
            }
        }
        float[] out;
        try (Tensor kt = Tensor.of(k, t, D); Tensor vt = Tensor.of(k, t, D); Tensor qt = Tensor.of(q, t, D);
             Tensor ot = Tensor.allocate(DType.F32, t, D)) {
            cache.write(0, batch, kt, vt, rope, positions);
            Rope.apply(qt, 1, positions, rope);
            cache.attention(0, batch, qt, ot, params, treeParents);
            out = ot.toFloatArray();
        }
        int rows = logitRows == null ? t : logitRows.length;
        if (logits.dim(0) != rows || logits.dim(1) != vocab)
            throw new IllegalArgumentException("logits shape");
        float[] row = new float[vocab];
        MemorySegment seg = logits.segment();
        long ld = logits.stride(0);
        for (int r = 0; r < rows; r++) {
            int i = logitRows == null ? r : logitRows[r];
            logitsOf(out, i * D, positions[i], row);
            MemorySegment.copy(row, 0, seg, ValueLayout.JAVA_FLOAT, r * ld * 4, vocab);
        }
    }

    /** The logits for attention output h = out[off .. off + D) at position pos. */
    void logitsOf(float[] out, int off, long pos, float[] row) {
        int p = (int) (pos % PERIOD);
        int best = 0;
        for (int u = 0; u < vocab; u++) {
            double s = 0;
            for (int c = 0; c < D; c++) s += (double) out[off + c] * unemb[u * D + c];
            double x = logitScale * s + bias[p * vocab + u];
            row[u] = (float) (Math.round(x * 32) / 32.0);
            if (row[u] > row[best]) best = u;
        }
        if (sharp) {
            for (int u = 0; u < vocab; u++) row[u] = u == best ? 50f : -50f;
        }
    }

    @Override
    public void close() {
        cache.close();
    }
}
