package dev.isthmus.sparse;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_prune_args;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Native;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;

/**
 * How to prune a weight matrix W[N, K]: which weights compete ({@link Structure}), how many go, how they
 * are scored, and the seed that orders ties. An immutable spec: every {@code with}-style method returns
 * a new one. {@link #prune(Tensor)} computes the mask on the library's kernel ({@code isthmus_prune_mask})
 * and returns a {@link PruneResult}: the mask, the pruned matrix and a {@link PruneReport}.
 *
 * <p>Scores are {@code |w|} (magnitude), or {@code |w| * norm[k]} with {@link #wanda(float[])} (Wanda:
 * {@code norm[k]} is the L2 norm of column k of calibration activations). The lowest scores are removed,
 * exactly the stated count: {@code round(sparsity * K)} per row ({@link #perRow()}, the default of
 * {@link #magnitude}), {@code round(sparsity * N * K)} over the matrix ({@link #global()}), the
 * {@code m - n} lowest of every group of {@code m} consecutive weights along K ({@link #nm}), or
 * {@code round(sparsity * blocks)} whole blocks scored by the L2 norm of their scores ({@link #block}).
 * Equal scores are ordered by a hash of (seed, row, column): a mask is reproducible for a seed, and ties
 * fall differently for different seeds.
 *
 * <pre>{@code
 * try (Tensor w = Tensor.of(weights, n, k);
 *      PruneResult r = Pruning.nm(2, 4).wanda(calibration).seed(7).prune(w, sample);
 *      SparseMatrix ws = r.toSparse()) {                  // 2:4, ready for Sparse.matmul
 *     System.out.println(r.report());
 * }
 * PruneResult global = Pruning.magnitude(0.9).global().prune(w);
 * PruneResult blocks = Pruning.block(BlockShape.B4x4, 0.75).prune(w);
 * }</pre>
 */
public final class Pruning {
    /** Which weights compete with which for survival (ISTHMUS_PRUNE_*). */
    public enum Structure {
        /** Each row loses {@code round(sparsity * K)} weights. */
        PER_ROW,
        /** The matrix loses {@code round(sparsity * N * K)} weights. */
        GLOBAL,
        /** Every group of m consecutive weights along K keeps its n best. */
        N_M,
        /** Whole blocks go: {@code round(sparsity * blocks)} of them. */
        BLOCK
    }

    private final Structure structure;
    private final double sparsity;
    private final int nmN, nmM;
    private final BlockShape block;
    private final float[] norms;
    private final long seed;

    private Pruning(Structure structure, double sparsity, int nmN, int nmM, BlockShape block, float[] norms, long seed) {
        this.structure = structure;
        this.sparsity = sparsity;
        this.nmN = nmN;
        this.nmM = nmM;
        this.block = block;
        this.norms = norms;
        this.seed = seed;
    }

    /**
     * Magnitude pruning of the fraction {@code sparsity} (0 .. 1) of the weights, per row unless
     * {@link #global()} follows.
     */
    public static Pruning magnitude(double sparsity) {
        return new Pruning(Structure.PER_ROW, checkSparsity(sparsity), 0, 0, null, null, 0);
    }

    /**
     * N:M pruning: every group of {@code m} consecutive weights along K keeps its {@code n} best
     * ({@code 1 <= n < m <= 16}; W needs {@code K % m == 0}). {@code nm(2, 4)} fits
     * {@link SparseFormat#TWO_FOUR}.
     */
    public static Pruning nm(int n, int m) {
        if (n < 1 || n >= m || m > 16)
            throw new IllegalArgumentException("nm(" + n + ", " + m + "): needs 1 <= n < m <= 16");
        return new Pruning(Structure.N_M, 1.0 - (double) n / m, n, m, null, null, 0);
    }

    /** Block pruning: the fraction {@code sparsity} of the blocks of {@code shape} go (W's N and K multiples of the block). */
    public static Pruning block(BlockShape shape, double sparsity) {
        Checks.notNull(shape, "shape");
        return new Pruning(Structure.BLOCK, checkSparsity(sparsity), 0, 0, shape, null, 0);
    }

    /** Each row loses {@code round(sparsity * K)} weights (magnitude or Wanda scores). */
    public Pruning perRow() {
        requireUnstructured("perRow()");
        return new Pruning(Structure.PER_ROW, sparsity, 0, 0, null, norms, seed);
    }

    /** The whole matrix loses {@code round(sparsity * N * K)} weights, wherever they are. */
    public Pruning global() {
        requireUnstructured("global()");
        return new Pruning(Structure.GLOBAL, sparsity, 0, 0, null, norms, seed);
    }

    /**
     * Wanda scores {@code |w| * activationNorms[k]}: {@code activationNorms} [K] (copied; finite, >= 0) are
     * the L2 norms of the columns of calibration activations.
     */
    public Pruning wanda(float[] activationNorms) {
        Checks.notNull(activationNorms, "activationNorms");
        for (int i = 0; i < activationNorms.length; i++)
            if (!(activationNorms[i] >= 0f) || !Float.isFinite(activationNorms[i]))
                throw new IllegalArgumentException("activationNorms[" + i + "] = " + activationNorms[i]
                        + ": must be finite and >= 0");
        return new Pruning(structure, sparsity, nmN, nmM, block, activationNorms.clone(), seed);
    }

    /**
     * Wanda scores from calibration activations X [S, K] (F32, rows contiguous): the L2 norm of each
     * column, summed in double and rounded to float once. X is read now and may be closed afterwards.
     */
    public Pruning wanda(Tensor calibrationActivations) {
        Tensor x = Checks.matrix(calibrationActivations, "calibrationActivations", DType.F32);
        int s = Math.toIntExact(x.dim(0)), k = Math.toIntExact(x.dim(1));
        double[] sum = new double[k];
        try (Tensor.Lease l = x.lease()) {
            MemorySegment seg = x.segment();
            long ld = x.stride(0);
            for (int r = 0; r < s; r++)
                for (int c = 0; c < k; c++) {
                    float v = seg.getAtIndex(ValueLayout.JAVA_FLOAT, r * ld + c);
                    if (!Float.isFinite(v))
                        throw new IllegalArgumentException("calibrationActivations " + Checks.shape(x) + " [" + r + ", "
                                + c + "] = " + v + ": not finite");
                    sum[c] += (double) v * v;
                }
        }
        float[] norms = new float[k];
        for (int c = 0; c < k; c++) norms[c] = (float) Math.sqrt(sum[c]);
        return wanda(norms);
    }

    /** Plain magnitude scores {@code |w|} (drops Wanda norms). */
    public Pruning magnitude() {
        return new Pruning(structure, sparsity, nmN, nmM, block, null, seed);
    }

    /** The seed that orders equal scores (default 0). */
    public Pruning seed(long seed) {
        return new Pruning(structure, sparsity, nmN, nmM, block, norms, seed);
    }

    public Structure structure() {
        return structure;
    }

    /** The fraction of weights to remove; for N:M, {@code 1 - n / m}. */
    public double sparsity() {
        return sparsity;
    }

    /** The BLOCK shape, else null. */
    public BlockShape blockShape() {
        return block;
    }

    /** n of N:M, else 0. */
    public int nmN() {
        return nmN;
    }

    /** m of N:M, else 0. */
    public int nmM() {
        return nmM;
    }

    public long seed() {
        return seed;
    }

    /** A copy of the Wanda activation norms, or null for magnitude scores. */
    public float[] activationNorms() {
        return norms == null ? null : norms.clone();
    }

    /** {@link #prune(Tensor, Tensor)} without an activation sample (the report has no output errors). */
    public PruneResult prune(Tensor w) {
        return prune(w, null);
    }

    /**
     * Prunes W [N, K] (F32, rows contiguous; finite): computes the mask, the pruned matrix (removed weights
     * set to +0.0, kept ones bit for bit), and the report; with {@code sample} X [S, K] (F32) the report
     * also holds the output errors of {@code X . W^T} (see {@link PruneReport}). {@code w} and
     * {@code sample} may be closed afterwards.
     *
     * @throws IllegalArgumentException for a bad tensor, a NaN or infinite weight (naming row and column),
     *                                  a shape the structure needs (K % m, block multiples), activation norms
     *                                  or a sample whose K differs from W's
     */
    public PruneResult prune(Tensor w, Tensor sample) {
        Checks.matrix(w, "w", DType.F32);
        long nl = w.dim(0), kl = w.dim(1);
        if (nl * kl > Integer.MAX_VALUE - 8)
            throw new IllegalArgumentException("w " + Checks.shape(w) + " has more than 2^31 - 9 elements: too large");
        int n = (int) nl, k = (int) kl;
        switch (structure) {
            case N_M -> {
                if (k % nmM != 0)
                    throw new IllegalArgumentException("w " + Checks.shape(w) + ": " + nmN + ":" + nmM + " pruning needs K % "
                            + nmM + " == 0, got K = " + k);
            }
            case BLOCK -> {
                if (n % block.rows() != 0 || k % block.cols() != 0)
                    throw new IllegalArgumentException("w " + Checks.shape(w) + ": " + block + " block pruning needs N % "
                            + block.rows() + " == 0 and K % " + block.cols() + " == 0");
            }
            default -> { }
        }
        if (norms != null && norms.length != k)
            throw new IllegalArgumentException("activationNorms has " + norms.length + " entries but w " + Checks.shape(w)
                    + " has K = " + k + " columns");
        if (sample != null) {
            Checks.matrix(sample, "sample", DType.F32);
            if (sample.dim(1) != k)
                throw new IllegalArgumentException("sample " + Checks.shape(sample) + " has K = " + sample.dim(1)
                        + " but w is " + Checks.shape(w) + ": inner dimensions differ");
        }
        Native.ensureLoaded();
        float[] d;
        Tensor mask = Tensor.allocate(DType.I8, n, k);
        try {
            try (Tensor.Lease lw = w.lease(); Tensor.Lease lm = mask.lease(); Arena call = Arena.ofConfined()) {
                d = w.toFloatArray();
                for (int i = 0; i < d.length; i++)
                    if (!Float.isFinite(d[i]))
                        throw new IllegalArgumentException("w " + Checks.shape(w) + " [" + i / k + ", " + i % k + "] = "
                                + d[i] + ": not finite");
                MemorySegment a = isthmus_prune_args.allocate(call);
                isthmus_prune_args.n(a, n);
                isthmus_prune_args.k(a, k);
                isthmus_prune_args.w(a, w.segment());
                isthmus_prune_args.ldw(a, n > 1 ? w.stride(0) : Math.max(w.stride(0), k));
                isthmus_prune_args.act_norm(a, norms == null ? MemorySegment.NULL : call.allocateFrom(ValueLayout.JAVA_FLOAT, norms));
                isthmus_prune_args.structure(a, structure.ordinal());
                isthmus_prune_args.nm_n(a, nmN);
                isthmus_prune_args.nm_m(a, nmM);
                isthmus_prune_args.block_rows(a, block == null ? 0 : block.rows());
                isthmus_prune_args.block_cols(a, block == null ? 0 : block.cols());
                isthmus_prune_args.reserved(a, 0);
                isthmus_prune_args.sparsity(a, structure == Structure.N_M ? 0.0 : sparsity);
                isthmus_prune_args.seed(a, seed);
                isthmus_prune_args.mask(a, mask.segment());
                isthmus_prune_args.ldm(a, k);
                Native.checkInput(Isthmus.isthmus_prune_mask(a), "prune (" + this + ")", "w " + Checks.shape(w),
                        "not finite", "NaN");
            }
            byte[] m = mask.toByteArray();
            float[] p = d.clone();
            long removed = 0;
            double all = 0, gone = 0;
            for (int i = 0; i < p.length; i++) {
                double v = d[i];
                all += v * v;
                if (m[i] == 0) {
                    removed++;
                    gone += v * v;
                    p[i] = 0f;
                } else if (m[i] != 1) {
                    throw new IllegalStateException("isthmus_prune_mask wrote " + m[i] + " at [" + i / k + ", " + i % k
                            + "]: a mask holds 0 or 1 (a library bug, please report it)");
                }
            }
            double frob = all == 0 ? 0 : Math.sqrt(gone / all);
            long rows = 0;
            double rel = Double.NaN, max = Double.NaN;
            if (sample != null) {
                double[] e = outputError(d, m, n, k, sample);
                rows = sample.dim(0);
                rel = e[0];
                max = e[1];
            }
            PruneReport report = new PruneReport(sparsity, (double) removed / ((double) n * k), removed, (long) n * k,
                    frob, rows, rel, max);
            return new PruneResult(this, mask, Tensor.of(p, n, k), report);
        } catch (RuntimeException | Error e) {
            mask.close();
            throw e;
        }
    }

    /** {relative Frobenius output error, max abs output error}, from X . W^T and X . D^T on CSR kernels. */
    private static double[] outputError(float[] d, byte[] m, int n, int k, Tensor sample) {
        float[] removed = new float[d.length];
        for (int i = 0; i < d.length; i++) if (m[i] == 0) removed[i] = d[i];
        float[] y, e;
        try (Tensor wt = Tensor.of(d, n, k); Tensor dt = Tensor.of(removed, n, k);
             SparseMatrix ws = SparseMatrix.fromDense(wt, SparseFormat.CSR);
             SparseMatrix ds = SparseMatrix.fromDense(dt, SparseFormat.CSR);
             Tensor yt = Sparse.matmul(sample, ws); Tensor et = Sparse.matmul(sample, ds)) {
            y = yt.toFloatArray();
            e = et.toFloatArray();
        }
        double ny = 0, ne = 0, max = 0;
        for (int i = 0; i < y.length; i++) {
            ny += (double) y[i] * y[i];
            ne += (double) e[i] * e[i];
            max = Math.max(max, Math.abs((double) e[i]));
        }
        double rel = ne == 0 ? 0 : Math.sqrt(ne / ny);
        return new double[] {rel, max};
    }

    private static double checkSparsity(double s) {
        if (!(s >= 0 && s <= 1))
            throw new IllegalArgumentException("sparsity = " + s + ", must be in [0, 1]");
        return s;
    }

    private void requireUnstructured(String what) {
        if (structure == Structure.N_M || structure == Structure.BLOCK)
            throw new IllegalStateException(what + " applies to magnitude(sparsity) pruning, not to " + this);
    }

    @Override
    public String toString() {
        String s = switch (structure) {
            case PER_ROW -> String.format(Locale.ROOT, "magnitude(%s).perRow()", sparsity);
            case GLOBAL -> String.format(Locale.ROOT, "magnitude(%s).global()", sparsity);
            case N_M -> "nm(" + nmN + ", " + nmM + ")";
            case BLOCK -> String.format(Locale.ROOT, "block(%s, %s)", block, sparsity);
        };
        return "Pruning." + s + (norms == null ? "" : ".wanda(" + norms.length + " norms)") + (seed == 0 ? "" : ".seed(" + seed + ")");
    }
}
