package dev.isthmus.sparse;

/**
 * The exchange formats of a {@link SparseMatrix} W[N, K] (ISTHMUS_SPARSE_* of isthmus.h).
 *
 * <ul>
 *   <li>{@link #CSR}: compressed sparse rows, {@code rowPtr[N + 1]}, {@code colIdx[nnz]} (strictly
 *       increasing within a row), {@code values[nnz]}; only nonzeros are stored.</li>
 *   <li>{@link #BSR}: blocks of a {@link BlockShape} (1x4, 1x8, 4x4) over block rows:
 *       {@code rowPtr[N / br + 1]}, {@code colIdx[blocks]} = block column, {@code values[blocks][br][bc]}
 *       row-major; zeros inside a stored block are stored.</li>
 *   <li>{@link #TWO_FOUR}: 2:4 structured sparsity: every group of 4 consecutive columns keeps exactly
 *       2 values ({@code values[N][K / 2]}) and a 4-bit field {@code i0 | i1 << 2} ({@code i0 < i1}) in
 *       {@code meta[N][ceil(K / 16)]}, NVIDIA's mma.sp order; needs {@code K % 4 == 0}.</li>
 * </ul>
 *
 * <pre>{@code
 * try (SparseMatrix w24 = SparseMatrix.fromDense(pruned, SparseFormat.TWO_FOUR)) {
 *     System.out.println(w24.format() + " keeps " + w24.nnz() + " values");
 * }
 * }</pre>
 */
public enum SparseFormat {
    /** Compressed sparse rows. */
    CSR,
    /** Block sparse rows, blocks of a {@link BlockShape}. */
    BSR,
    /** 2:4 structured sparsity with NVIDIA-order metadata. */
    TWO_FOUR;

    /** The native code, ISTHMUS_SPARSE_*. */
    int code() {
        return ordinal();
    }

    @Override
    public String toString() {
        return this == TWO_FOUR ? "2:4" : name();
    }
}
