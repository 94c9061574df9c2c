package dev.isthmus.bench.demo;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.IntStream;

/**
 * Seeded random weights for a {@link LlamaConfig}, quantized to int8 per output channel and packed once
 * ({@link PackedWeights}): per layer one fused QKV GEMM ({@code [(qHeads + 2 kvHeads) headDim, dim]}: Q
 * rows, then K, then V), the output projection, one fused gate/up GEMM ({@code [2 ffn, dim]}: gate rows,
 * then up) and the down projection; the LM head; the embedding table (int8 per row, dequantized on lookup).
 *
 * <p><b>Initialization</b> (what the acceptance rates of a draft depend on; this is a synthetic model,
 * whose point is the machinery and the speed ratio at a given acceptance). Every weight is
 * {@code N(0, std^2)} (approximated by the Irwin-Hall sum of four uniforms, so |w| < 3.47 std), with
 * <ul>
 *   <li>embedding: std 1 (unit rms, as the residual stream after RMSNorm);</li>
 *   <li>Q, K, V, gate, up (read a normalized input): std {@code 1 / sqrt(dim)}, unit-rms outputs;</li>
 *   <li>O and down (write into the residual stream): std {@code branchGain / sqrt(fanIn * 2 layers)}, the
 *       GPT-2 / Llama practice of scaling residual-branch outputs by {@code 1 / sqrt(2 layers)}, so each
 *       branch adds about {@code branchGain / sqrt(2 layers)} of the stream's rms and all of them together
 *       about {@code branchGain};</li>
 *   <li>LM head: std {@code logitScale / sqrt(dim)}: logits of std {@code logitScale} over the vocabulary
 *       (a final logit scale folded into the head), so the softmax is peaked: with std 4, {@code exp(logit)}
 *       is dominated by the few largest logits of the row, and greedy and temperature decoding
 *       have structure;</li>
 *   <li>norm weights 1.</li>
 * </ul>
 * With a small branch gain the embedding of the current token dominates the last hidden state (the
 * model is close to a bigram model, with context mixed in by attention), and a draft that skips layers
 * agrees with the target often; with a gain near 1 every layer matters and acceptance falls. The demo
 * prints the gain it used next to the acceptance it measured.
 *
 * <p>Generation: each row has its own splitmix64 stream ({@code seed}, tensor id, row), so rows are made
 * in parallel and any tensor can be regenerated in f32 later ({@link #dense}) for pruning.
 */
public final class LlamaWeights implements AutoCloseable {

    /**
     * @param branchGain rms of all residual-branch outputs together, relative to the stream (see the class)
     * @param logitScale std of the logits (the final logit scale)
     */
    public record Init(double branchGain, double logitScale) {
        public static final Init DEFAULT = new Init(0.15, 4.0);

        @Override
        public String toString() {
            return String.format(Locale.ROOT, "branch gain %.2f, logit scale %.1f", branchGain, logitScale);
        }
    }

    /** The GEMMs of a layer. */
    public enum Kind { QKV, O, GATE_UP, DOWN }

    /** One layer's packed weights and norms. */
    public record Layer(Tensor attnNorm, PackedWeights qkv, PackedWeights o, Tensor mlpNorm, PackedWeights gateUp,
                        PackedWeights down) {}

    private static final int EMBEDDING_ID = 0, HEAD_ID = 1;

    private final LlamaConfig config;
    private final Init init;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment embedding;   // int8 [vocab, dim]
    private final float[] embeddingScales;   // [vocab]
    private final Layer[] layers;
    private final Tensor finalNorm;
    private final PackedWeights head;
    private final List<AutoCloseable> owned = new ArrayList<>();

    private LlamaWeights(LlamaConfig config, Init init) {
        this.config = config;
        this.init = init;
        int d = config.dim();
        embedding = arena.allocate((long) config.vocab() * d, 64);
        embeddingScales = new float[config.vocab()];
        quantizeRows(EMBEDDING_ID, config.vocab(), d, embedding, embeddingScales);
        layers = new Layer[config.layers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = new Layer(ones(d), pack(l, Kind.QKV), pack(l, Kind.O), ones(d), pack(l, Kind.GATE_UP),
                    pack(l, Kind.DOWN));
        }
        finalNorm = ones(d);
        head = own(pack(HEAD_ID, config.vocab(), d));
    }

    /** Generates and packs the weights of {@code config} (seconds for the 1 B presets; parallel over rows). */
    public static LlamaWeights generate(LlamaConfig config, Init init) {
        return new LlamaWeights(config, init);
    }

    public static LlamaWeights generate(LlamaConfig config) {
        return generate(config, Init.DEFAULT);
    }

    public LlamaConfig config() {
        return config;
    }

    public Init init() {
        return init;
    }

    public Layer layer(int l) {
        return layers[l];
    }

    public Tensor finalNorm() {
        return finalNorm;
    }

    public PackedWeights head() {
        return head;
    }

    /** Writes the embedding of {@code token} (dequantized) into {@code out[0, dim)}. */
    public void embed(int token, float[] out) {
        if (token < 0 || token >= config.vocab())
            throw new IllegalArgumentException("token " + token + " is outside the vocabulary [0, " + config.vocab() + ")");
        int d = config.dim();
        long base = (long) token * d;
        float s = embeddingScales[token];
        for (int j = 0; j < d; j++) out[j] = embedding.get(ValueLayout.JAVA_BYTE, base + j) * s;
    }

    /** Shape {N, K} of a layer GEMM. */
    public long[] shape(Kind kind) {
        LlamaConfig c = config;
        return switch (kind) {
            case QKV -> new long[] {c.qkvDim(), c.dim()};
            case O -> new long[] {c.dim(), c.qDim()};
            case GATE_UP -> new long[] {2L * c.ffn(), c.dim()};
            case DOWN -> new long[] {c.dim(), c.ffn()};
        };
    }

    /**
     * The f32 weights of a layer GEMM, regenerated from the seed (a new owned tensor [N, K], before
     * quantization): what the pruned draft prunes.
     */
    public Tensor dense(int layer, Kind kind) {
        long[] s = shape(kind);
        return denseOf(id(layer, kind), (int) s[0], (int) s[1]);
    }

    /** The f32 LM head [vocab, dim], regenerated (a new owned tensor). */
    public Tensor denseHead() {
        return denseOf(HEAD_ID, config.vocab(), config.dim());
    }

    /** Bytes of packed GEMM weights (layers + head). */
    public long packedBytes() {
        long b = head.byteSize();
        for (Layer l : layers) b += l.qkv.byteSize() + l.o.byteSize() + l.gateUp.byteSize() + l.down.byteSize();
        return b;
    }

    @Override
    public void close() {
        for (int i = owned.size() - 1; i >= 0; i--) {
            try {
                owned.get(i).close();
            } catch (Exception e) {
                throw new IllegalStateException("closing " + owned.get(i), e);
            }
        }
        owned.clear();
        if (arena.scope().isAlive()) arena.close();
    }

    // ------------------------------------------------------------------ generation

    private static int id(int layer, Kind kind) {
        return 16 + layer * 4 + kind.ordinal();
    }

    private double std(int id) {
        if (id == EMBEDDING_ID) return 1.0;
        int d = config.dim();
        if (id == HEAD_ID) return init.logitScale() / Math.sqrt(d);
        Kind kind = Kind.values()[(id - 16) % 4];
        double residual = init.branchGain() / Math.sqrt(2.0 * config.layers());
        return switch (kind) {
            case QKV, GATE_UP -> 1 / Math.sqrt(d);
            case O -> residual / Math.sqrt(config.qDim());
            case DOWN -> residual / Math.sqrt(config.ffn());
        };
    }

    private Tensor ones(int n) {
        Tensor t = own(Tensor.allocate(DType.F32, n));
        for (int i = 0; i < n; i++) t.segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, 1f);
        return t;
    }

    private <T extends AutoCloseable> T own(T t) {
        owned.add(t);
        return t;
    }

    private PackedWeights pack(int layer, Kind kind) {
        long[] s = shape(kind);
        return own(pack(id(layer, kind), (int) s[0], (int) s[1]));
    }

    private PackedWeights pack(int id, int n, int k) {
        try (Tensor values = Tensor.allocate(DType.I8, n, k); Tensor scales = Tensor.allocate(DType.F32, n)) {
            float[] s = new float[n];
            quantizeRows(id, n, k, values.segment(), s);
            MemorySegment.copy(s, 0, scales.segment(), ValueLayout.JAVA_FLOAT, 0, n);
            try (QuantizedTensor q = new QuantizedTensor(values, scales, QuantScheme.int8PerRow())) {
                return PackedWeights.pack(q);
            }
        }
    }

    /** Rows of tensor {@code id}, quantized symmetric per row (scale max|w| / 127, round half even) into {@code q}. */
    private void quantizeRows(int id, int n, int k, MemorySegment q, float[] scales) {
        double std = std(id);
        IntStream.range(0, (n + 63) / 64).parallel().forEach(chunk -> {
            float[] row = new float[k];
            byte[] qr = new byte[k];
            for (int r = chunk * 64; r < Math.min(n, chunk * 64 + 64); r++) {
                generateRow(config.seed(), id, r, std, row);
                float max = 0;
                for (float v : row) max = Math.max(max, Math.abs(v));
                float scale = max / 127f;
                float inv = scale == 0 ? 0 : 1 / scale;
                for (int j = 0; j < k; j++) qr[j] = (byte) Math.max(-127, Math.min(127, Math.rint(row[j] * inv)));
                scales[r] = scale;
                MemorySegment.copy(qr, 0, q, ValueLayout.JAVA_BYTE, (long) r * k, k);
            }
        });
    }

    private Tensor denseOf(int id, int n, int k) {
        Tensor t = Tensor.allocate(DType.F32, n, k);
        double std = std(id);
        IntStream.range(0, (n + 63) / 64).parallel().forEach(chunk -> {
            float[] row = new float[k];
            for (int r = chunk * 64; r < Math.min(n, chunk * 64 + 64); r++) {
                generateRow(config.seed(), id, r, std, row);
                MemorySegment.copy(row, 0, t.segment(), ValueLayout.JAVA_FLOAT, (long) r * k * Float.BYTES, k);
            }
        });
        return t;
    }

    /** Row {@code r} of tensor {@code id}: N(0, std^2) approximated by the sum of four 16-bit uniforms. */
    static void generateRow(long seed, int id, int r, double std, float[] out) {
        long s = mix64(mix64(seed * 0x9E3779B97F4A7C15L + id) + r);
        double scale = std * Math.sqrt(3.0) / 65536.0;   // sum of 4 U[0,1): mean 2, variance 1/3
        for (int j = 0; j < out.length; j++) {
            s += 0x9E3779B97F4A7C15L;
            long z = mix64(s);
            long sum = (z & 0xFFFF) + ((z >>> 16) & 0xFFFF) + ((z >>> 32) & 0xFFFF) + (z >>> 48);
            out[j] = (float) ((sum - 2 * 65536 + 2) * scale);
        }
    }

    /** splitmix64's finalizer. */
    static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
