package dev.isthmus.bench.kernels;

import dev.isthmus.Isa;
import dev.isthmus.bench.AttentionCase;
import dev.isthmus.bench.AttentionData;
import dev.isthmus.bench.AttentionImpl;

import java.util.Locale;

import static dev.isthmus.bench.AttentionCase.HEAD_DIM;
import static dev.isthmus.bench.AttentionCase.KV_HEADS;
import static dev.isthmus.bench.AttentionCase.Q_HEADS;

/** Builds the attention kernel of an implementation for a case, and checks a sample of its output against the f64 reference. */
public final class AttentionKernels {
    private AttentionKernels() {}

    public static float scale() {
        return (float) (1 / Math.sqrt(HEAD_DIM));
    }

    /** Sets {@code impl} up for {@code c}, runs it once and checks it. */
    public static AttentionKernel createChecked(AttentionImpl impl, AttentionCase c, int threads, long rotateBytes) {
        AttentionKernel kernel = create(impl, c, threads, rotateBytes);
        try {
            kernel.run();
            check(impl, c, kernel);
        } catch (RuntimeException | Error e) {
            kernel.close();
            throw e;
        }
        return kernel;
    }

    public static AttentionKernel create(AttentionImpl impl, AttentionCase c, int threads, long rotateBytes) {
        return switch (impl) {
            case ISTHMUS_AVX512 -> new IsthmusAttention(c, Isa.AVX512, threads, rotateBytes);
            case ISTHMUS_AVX2 -> new IsthmusAttention(c, Isa.AVX2, threads, rotateBytes);
            case VECTOR_F32 -> {
                if (c.batch() != 1 || !c.kv().equals("f32"))
                    throw new IllegalArgumentException("vector-f32 runs one sequence with f32 K/V, not " + c);
                int kvCols = KV_HEADS * HEAD_DIM;
                yield new VectorAttention(c.qLen(), c.context(), Q_HEADS, KV_HEADS, HEAD_DIM, scale(),
                        AttentionData.array(AttentionData.Q, 0, 0, c.context() - c.qLen(), c.qLen(), Q_HEADS * HEAD_DIM),
                        AttentionData.array(AttentionData.K, 0, 0, 0, c.context(), kvCols),
                        AttentionData.array(AttentionData.V, 0, 0, 0, c.context(), kvCols), threads);
            }
        };
    }

    /**
     * Relative RMS error, over sampled (sequence, query, head) output rows, against {@link ScalarAttention}
     * on the f32 inputs of {@link AttentionData} (the layer the last call read); fails above the kernel's
     * tolerance (an indexing bug gives errors near 1, the storage type 1e-3 to 1e-2).
     */
    public static double check(AttentionImpl impl, AttentionCase c, AttentionKernel kernel) {
        int layer = kernel.lastLayer();
        int[] seqs = c.batch() == 1 ? new int[] {0} : new int[] {0, c.batch() - 1};
        int[] queries = c.qLen() == 1 ? new int[] {0} : new int[] {0, 1, c.qLen() / 2, c.qLen() - 1};
        int[] heads = {0, 13, Q_HEADS - 1};
        double err = 0, ref = 0;
        for (int s : seqs) {
            ScalarAttention.Matrix q = AttentionData.matrix(AttentionData.Q, 0, s, c.context() - c.qLen());
            ScalarAttention.Matrix k = AttentionData.matrix(AttentionData.K, layer, s, 0);
            ScalarAttention.Matrix v = AttentionData.matrix(AttentionData.V, layer, s, 0);
            for (int i : queries)
                for (int h : heads) {
                    double[] want = ScalarAttention.row(q, k, v, c.qLen(), c.context(), Q_HEADS, KV_HEADS, HEAD_DIM, scale(), i, h);
                    for (int x = 0; x < HEAD_DIM; x++) {
                        double got = kernel.output(s * c.qLen() + i, h * HEAD_DIM + x);
                        err += (got - want[x]) * (got - want[x]);
                        ref += want[x] * want[x];
                    }
                }
        }
        double rel = Math.sqrt(err / Math.max(ref, Double.MIN_NORMAL));
        if (!(rel <= kernel.tolerance()))
            throw new IllegalStateException(String.format(Locale.ROOT,
                    "%s %s gives wrong results: relative RMS error %.3g against the f64 reference (tolerance %.3g); %s",
                    impl, c, rel, kernel.tolerance(), kernel.describe()));
        return rel;
    }
}
