package dev.isthmus.sparse;

import java.util.Locale;

/**
 * What a pruning did to W[N, K] ({@link PruneResult#report()}).
 *
 * <p>The weight error is computed in double in Java from W and the mask. The output errors, present
 * when {@link Pruning#prune(dev.isthmus.Tensor, dev.isthmus.Tensor) prune(w, sample)} was given an
 * activation sample X[S, K], come from the library's own kernels: {@code Y = X . W^T} with W as an F32
 * CSR {@link SparseMatrix} and the error {@code E = X . D^T} with D = W - W_pruned (the removed weights)
 * as another, both through {@link Sparse#matmul}. E is computed directly, not as a difference of two
 * outputs, so it carries no cancellation: each element is within the f32 bound of {@link Sparse}
 * ({@code 2 * nnz_row * 2^-24 * sum |d * x|}) of the exact value. Sums of squares are taken in double.
 *
 * <pre>{@code
 * try (PruneResult r = Pruning.magnitude(0.5).wanda(calibration).prune(w, sample)) {
 *     PruneReport rep = r.report();
 *     System.out.printf("%.1f%% removed, Frobenius error %.3g, output error %.3g%n",
 *             100 * rep.achievedSparsity(), rep.relativeFrobeniusError(), rep.relativeOutputError());
 * }
 * }</pre>
 *
 * @param targetSparsity      the fraction asked for (for N:M, {@code 1 - n / m})
 * @param achievedSparsity    the fraction of weights the mask removes ({@code removed / (N * K)}); weights
 *                            that were 0 before and are kept do not count
 * @param removed             weights the mask removes
 * @param total               N * K
 * @param relativeFrobeniusError {@code ||W - W_pruned||_F / ||W||_F} (0 when W is all zeros)
 * @param sampleRows          S, the rows of the activation sample; 0 when none was given
 * @param relativeOutputError {@code ||X W^T - X W_pruned^T||_F / ||X W^T||_F} (0 when both are 0); NaN
 *                            without a sample
 * @param maxAbsOutputError   {@code max |X W^T - X W_pruned^T|}; NaN without a sample
 */
public record PruneReport(double targetSparsity, double achievedSparsity, long removed, long total,
                          double relativeFrobeniusError, long sampleRows, double relativeOutputError,
                          double maxAbsOutputError) {
    /** True when output errors were measured on an activation sample. */
    public boolean hasOutputError() {
        return sampleRows > 0;
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "PruneReport[target %.4g, achieved %.4g (%d of %d removed), Frobenius error %.4g%s]",
                targetSparsity, achievedSparsity, removed, total, relativeFrobeniusError,
                hasOutputError() ? String.format(Locale.ROOT, ", output error %.4g (max %.4g) over %d rows",
                        relativeOutputError, maxAbsOutputError, sampleRows) : "");
    }
}
