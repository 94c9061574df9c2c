package dev.isthmus.bench.demo;

import dev.isthmus.attention.KvType;

import java.util.List;
import java.util.Locale;

/**
 * The shape of a Llama-architecture decoder (RMSNorm, GQA attention with RoPE, SwiGLU MLP, untied LM
 * head) as the demo builds it from seeded random weights ({@link LlamaWeights}).
 *
 * @param name       preset name (for printing)
 * @param dim        model width
 * @param layers     decoder layers
 * @param qHeads     query heads
 * @param kvHeads    K/V heads (GQA: qHeads is a multiple of it)
 * @param headDim    head dimension (a multiple of 16, as the KV cache wants)
 * @param ffn        MLP hidden width (gate and up are ffn wide each)
 * @param vocab      vocabulary size
 * @param ropeTheta  RoPE base (HALF style, as Hugging Face Llama)
 * @param maxSeqLen  longest sequence the KV cache holds (prompt + generated + draft slack)
 * @param kvType     how the KV cache stores K and V
 * @param seed       seed of the random weights
 */
public record LlamaConfig(String name, int dim, int layers, int qHeads, int kvHeads, int headDim, int ffn, int vocab,
                          double ropeTheta, int maxSeqLen, KvType kvType, long seed) {

    public LlamaConfig {
        if (dim < 16 || layers < 1 || qHeads < 1 || kvHeads < 1 || headDim < 16 || ffn < 1 || vocab < 2 || maxSeqLen < 2)
            throw new IllegalArgumentException("bad LlamaConfig " + name + ": dim " + dim + ", layers " + layers
                    + ", heads " + qHeads + "/" + kvHeads + ", headDim " + headDim + ", ffn " + ffn + ", vocab " + vocab
                    + ", maxSeqLen " + maxSeqLen);
        if (qHeads % kvHeads != 0)
            throw new IllegalArgumentException("qHeads " + qHeads + " is not a multiple of kvHeads " + kvHeads);
        if (headDim % 16 != 0) throw new IllegalArgumentException("headDim " + headDim + " is not a multiple of 16");
    }

    /**
     * The default: 8 layers of width 512 (8 query / 4 KV heads of 64, ffn 1408), vocab 32000: 40 M GEMM
     * parameters (41 MB int8, about the L3 of the test machine) and a 16 MB int8 embedding table. The whole demo
     * runs in seconds.
     */
    public static LlamaConfig tiny() {
        return new LlamaConfig("tiny", 512, 8, 8, 4, 64, 1408, 32000, 10_000, 1024, KvType.F16, 42);
    }

    /**
     * TinyLlama-1.1B's shape with GQA 32/8: width 2048, 22 layers, 32 query / 8 KV heads of 64, ffn 5632,
     * vocab 32000; about 1.1 G parameters (int8: ~1.1 GB, streamed from DRAM every step).
     */
    public static LlamaConfig small() {
        return new LlamaConfig("small", 2048, 22, 32, 8, 64, 5632, 32000, 10_000, 2048, KvType.F16, 42);
    }

    /**
     * Llama-3.2-1B's shape (untied head): width 2048, 16 layers, 32 query / 8 KV heads of 64, ffn 8192,
     * vocab 128256, RoPE base 500000; about 1.5 G parameters with the head (int8: ~1.5 GB). The model the
     * verification bar is measured against (V = 128K).
     */
    public static LlamaConfig bar() {
        return new LlamaConfig("bar", 2048, 16, 32, 8, 64, 8192, 128256, 500_000, 2048, KvType.F16, 42);
    }

    public static List<String> presetNames() {
        return List.of("tiny", "small", "bar");
    }

    /** A preset by name (tiny, small, bar). */
    public static LlamaConfig preset(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "tiny" -> tiny();
            case "small" -> small();
            case "bar" -> bar();
            default -> throw new IllegalArgumentException("unknown preset " + name + " (one of " + presetNames() + ")");
        };
    }

    public LlamaConfig withLayers(int layers) {
        return new LlamaConfig(name, dim, layers, qHeads, kvHeads, headDim, ffn, vocab, ropeTheta, maxSeqLen, kvType, seed);
    }

    public LlamaConfig withVocab(int vocab) {
        return new LlamaConfig(name, dim, layers, qHeads, kvHeads, headDim, ffn, vocab, ropeTheta, maxSeqLen, kvType, seed);
    }

    public LlamaConfig withSeed(long seed) {
        return new LlamaConfig(name, dim, layers, qHeads, kvHeads, headDim, ffn, vocab, ropeTheta, maxSeqLen, kvType, seed);
    }

    public LlamaConfig withMaxSeqLen(int maxSeqLen) {
        return new LlamaConfig(name, dim, layers, qHeads, kvHeads, headDim, ffn, vocab, ropeTheta, maxSeqLen, kvType, seed);
    }

    public LlamaConfig withKvType(KvType kvType) {
        return new LlamaConfig(name, dim, layers, qHeads, kvHeads, headDim, ffn, vocab, ropeTheta, maxSeqLen, kvType, seed);
    }

    /** Columns of the fused QKV projection: (qHeads + 2 kvHeads) * headDim. */
    public int qkvDim() {
        return (qHeads + 2 * kvHeads) * headDim;
    }

    public int qDim() {
        return qHeads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /** Parameters of one layer's four GEMMs. */
    public long layerParams() {
        return (long) qkvDim() * dim + (long) qDim() * dim + 2L * ffn * dim + (long) ffn * dim;
    }

    /** Parameters of the GEMMs (layers + LM head), not counting the embedding table and norms. */
    public long gemmParams() {
        return layers * layerParams() + (long) vocab * dim;
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "%s: dim %d, %d layers, heads %d/%d x %d, ffn %d, vocab %d, KV %s, %.0f M GEMM params",
                name, dim, layers, qHeads, kvHeads, headDim, ffn, vocab, kvType, gemmParams() / 1e6);
    }
}
