package dev.isthmus.sparse;

import dev.isthmus.Tensor;
import dev.isthmus.internal.Checks;

/**
 * The outcome of {@link Pruning#prune}: the mask, the pruned matrix and the {@link PruneReport}. Owns two
 * tensors, freed by {@link #close()}.
 *
 * <p>The mask is an I8 tensor [N, K] holding 1 where a weight is kept and 0 where it is removed (the
 * library's uint8 mask; {@link dev.isthmus.DType} has no boolean type). The pruned matrix is F32 [N, K]:
 * W with the removed weights set to +0.0.
 *
 * <pre>{@code
 * try (PruneResult r = Pruning.magnitude(0.9).prune(w);
 *      SparseMatrix csr = r.toSparse();                     // CSR of the pruned matrix
 *      SparseMatrix q = r.toSparseInt8(SparseFormat.CSR)) {  // the same, int8 per row
 *     byte[] keep = r.mask().toByteArray();
 * }
 * }</pre>
 */
public final class PruneResult implements AutoCloseable {
    private final Pruning spec;
    private final Tensor mask;
    private final Tensor pruned;
    private final PruneReport report;

    PruneResult(Pruning spec, Tensor mask, Tensor pruned, PruneReport report) {
        this.spec = spec;
        this.mask = mask;
        this.pruned = pruned;
        this.report = report;
    }

    /** The pruning that made this. */
    public Pruning pruning() {
        return spec;
    }

    /** I8 [N, K]: 1 = kept, 0 = removed. Owned by this result. */
    public Tensor mask() {
        return mask;
    }

    /** F32 [N, K]: W with removed weights set to 0. Owned by this result. */
    public Tensor pruned() {
        return pruned;
    }

    public PruneReport report() {
        return report;
    }

    /**
     * The pruned matrix in the format its structure fits: 2:4 for {@code nm(n, 4)} with {@code n <= 2}, BSR with the
     * pruning's block for block pruning, else CSR.
     */
    public SparseMatrix toSparse() {
        return switch (spec.structure()) {
            case N_M -> spec.nmM() == 4 && spec.nmN() <= 2 ? toSparse(SparseFormat.TWO_FOUR) : toSparse(SparseFormat.CSR);
            case BLOCK -> toSparse(SparseFormat.BSR, spec.blockShape());
            default -> toSparse(SparseFormat.CSR);
        };
    }

    /** The pruned matrix in {@code format}; BSR takes the block of block pruning (else use the two-argument form). */
    public SparseMatrix toSparse(SparseFormat format) {
        return toSparse(format, blockFor(format));
    }

    /** {@code SparseMatrix.fromDense(pruned(), format, block)}. */
    public SparseMatrix toSparse(SparseFormat format, BlockShape block) {
        return SparseMatrix.fromDense(pruned, format, block);
    }

    /** As {@link #toSparse(SparseFormat)}, with int8 values per row ({@link SparseMatrix#fromDenseInt8}). */
    public SparseMatrix toSparseInt8(SparseFormat format) {
        return toSparseInt8(format, blockFor(format));
    }

    /** {@code SparseMatrix.fromDenseInt8(pruned(), format, block)}. */
    public SparseMatrix toSparseInt8(SparseFormat format, BlockShape block) {
        return SparseMatrix.fromDenseInt8(pruned, format, block);
    }

    private BlockShape blockFor(SparseFormat format) {
        Checks.notNull(format, "format");
        if (format != SparseFormat.BSR) return null;
        if (spec.blockShape() == null)
            throw new IllegalArgumentException("BSR needs a block shape: " + spec + " is not block pruning, use "
                    + "toSparse(SparseFormat.BSR, shape)");
        return spec.blockShape();
    }

    /** Frees the mask and the pruned matrix. */
    @Override
    public void close() {
        mask.close();
        pruned.close();
    }

    @Override
    public String toString() {
        return "PruneResult[" + spec + ", " + report + "]";
    }
}
