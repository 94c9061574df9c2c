package dev.isthmus.bench.demo;

import dev.isthmus.Tensor;
import dev.isthmus.sparse.PruneResult;
import dev.isthmus.sparse.Pruning;
import dev.isthmus.sparse.SparseFormat;
import dev.isthmus.sparse.SparseMatrix;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Draft models made from the target's weights:
 * <ul>
 *   <li>{@link #layerSkip}: a subset of the target's layers, their packed weights shared (no copy), with
 *       the target's LM head and a KV cache of its own with as many layers;</li>
 *   <li>{@link #pruned}: the same layer subset whose GEMMs are sparse ({@code dev.isthmus.sparse}): each
 *       weight matrix is regenerated in f32 from the seed, magnitude-pruned per row (or 2:4), and stored
 *       as int8 CSR (or 2:4) with per-row scales; the LM head is pruned too when asked.</li>
 * </ul>
 */
public final class Drafts {
    private Drafts() {}

    /** What a draft is, as the demo's {@code --draft} option spells it. */
    public record Spec(Kind kind, int layers, double sparsity, double headSparsity) {
        public enum Kind { SKIP, PRUNED, PRUNED24 }

        /**
         * "skip:L" (L of the target's layers, chosen by {@link Drafts#pickLayers}, dense), "pruned:L:S" (those
         * layers' GEMMs int8 CSR at sparsity S, head dense), "pruned:L:S:H" (the head pruned to sparsity H
         * too: measured to ruin agreement, kept for the experiment), "pruned24:L" (int8 2:4). L defaults to
         * a quarter of the target's layers.
         */
        public static Spec parse(String s, int targetLayers) {
            String[] p = s.split(":");
            int layers = p.length > 1 ? Integer.parseInt(p[1]) : Math.max(1, targetLayers / 4);
            return switch (p[0]) {
                case "skip" -> new Spec(Kind.SKIP, layers, 0, 0);
                case "pruned" -> new Spec(Kind.PRUNED, layers, p.length > 2 ? Double.parseDouble(p[2]) : 0.7,
                        p.length > 3 ? Double.parseDouble(p[3]) : 0);
                case "pruned24" -> new Spec(Kind.PRUNED24, layers, 0.5, 0);
                default -> throw new IllegalArgumentException("unknown draft " + s + " (skip:L, pruned:L:S[:H], pruned24:L)");
            };
        }

        @Override
        public String toString() {
            return switch (kind) {
                case SKIP -> "skip:" + layers;
                case PRUNED -> String.format(Locale.ROOT, "pruned:%d:%.2f", layers, sparsity)
                        + (headSparsity > 0 ? String.format(Locale.ROOT, ":%.2f", headSparsity) : "");
                case PRUNED24 -> "pruned24:" + layers;
            };
        }
    }

    /** Builds the draft {@code spec} over the target's weights. */
    public static LlamaModel build(Spec spec, LlamaWeights w, int maxSequences) {
        int[] keep = pickLayers(w.config().layers(), spec.layers());
        return switch (spec.kind()) {
            case SKIP -> layerSkip(w, keep, maxSequences);
            case PRUNED -> pruned(w, keep, Pruning.magnitude(spec.sparsity()), SparseFormat.CSR, spec.headSparsity(),
                    maxSequences, spec.toString());
            case PRUNED24 -> pruned(w, keep, Pruning.nm(2, 4), SparseFormat.TWO_FOUR, 0, maxSequences, spec.toString());
        };
    }

    /**
     * Which {@code n} of {@code total} layers a draft keeps: the first and the last layer, and the rest
     * spread evenly in between (the first layers turn the embedding into the stream the others read; the
     * last one writes most directly into the logits).
     */
    public static int[] pickLayers(int total, int n) {
        if (n < 0 || n > total) throw new IllegalArgumentException("a draft keeps 0 to " + total + " layers, not " + n);
        int[] keep = new int[n];
        if (n == 1) keep[0] = 0;
        for (int i = 0; i < n && n > 1; i++) keep[i] = (int) Math.round((double) i * (total - 1) / (n - 1));
        return keep;
    }

    /** The target's layers {@code keep}, dense, sharing its packed weights. */
    public static LlamaModel layerSkip(LlamaWeights w, int[] keep, int maxSequences) {
        return LlamaModel.layerSkip("skip " + Arrays.toString(keep), w, keep, maxSequences);
    }

    /**
     * The target's layers {@code keep} with every GEMM pruned by {@code pruning} and stored as int8
     * {@code format}; the LM head pruned to {@code headSparsity} (magnitude, int8 CSR) when it is above 0,
     * else the target's dense head.
     */
    public static LlamaModel pruned(LlamaWeights w, int[] keep, Pruning pruning, SparseFormat format,
                                    double headSparsity, int maxSequences, String name) {
        List<AutoCloseable> owned = new ArrayList<>();
        try {
            LlamaModel.ModelLayer[] ls = new LlamaModel.ModelLayer[keep.length];
            for (int i = 0; i < keep.length; i++) {
                LlamaWeights.Layer l = w.layer(keep[i]);
                ls[i] = new LlamaModel.ModelLayer(l.attnNorm(),
                        sparse(w.dense(keep[i], LlamaWeights.Kind.QKV), pruning, format, owned),
                        sparse(w.dense(keep[i], LlamaWeights.Kind.O), pruning, format, owned),
                        l.mlpNorm(),
                        sparse(w.dense(keep[i], LlamaWeights.Kind.GATE_UP), pruning, format, owned),
                        sparse(w.dense(keep[i], LlamaWeights.Kind.DOWN), pruning, format, owned));
            }
            Linear head = headSparsity > 0
                    ? sparse(w.denseHead(), Pruning.magnitude(headSparsity), SparseFormat.CSR, owned)
                    : Linear.dense(w.head());
            return LlamaModel.of(name + " " + Arrays.toString(keep), w, ls, head, maxSequences, owned);
        } catch (RuntimeException | Error e) {
            for (AutoCloseable c : owned) {
                try {
                    c.close();
                } catch (Exception s) {
                    e.addSuppressed(s);
                }
            }
            throw e;
        }
    }

    private static Linear sparse(Tensor dense, Pruning pruning, SparseFormat format, List<AutoCloseable> owned) {
        try (dense; PruneResult r = pruning.prune(dense)) {
            SparseMatrix m = r.toSparseInt8(format);
            owned.add(m);
            return Linear.sparse(m);
        }
    }
}
