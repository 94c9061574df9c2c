package dev.isthmus.sparse;

/**
 * The block shapes of {@link SparseFormat#BSR} matrices and of block pruning: 1x4, 1x8 and 4x4
 * (rows x columns). These are the shapes the kernels serve; {@link #of(int, int)} refuses any other.
 *
 * <pre>{@code
 * SparseMatrix w = SparseMatrix.fromDense(dense, SparseFormat.BSR, BlockShape.B1x8);
 * BlockShape b = BlockShape.of(4, 4);   // B4x4
 * }</pre>
 */
public enum BlockShape {
    /** One row, four consecutive columns. */
    B1x4(1, 4),
    /** One row, eight consecutive columns. */
    B1x8(1, 8),
    /** Four rows by four columns. */
    B4x4(4, 4);

    private final int rows, cols;

    BlockShape(int rows, int cols) {
        this.rows = rows;
        this.cols = cols;
    }

    /** Rows of a block (along N). */
    public int rows() {
        return rows;
    }

    /** Columns of a block (along K). */
    public int cols() {
        return cols;
    }

    /** Elements of a block. */
    public int size() {
        return rows * cols;
    }

    /**
     * The block shape {@code rows x cols}.
     *
     * @throws IllegalArgumentException unless it is 1x4, 1x8 or 4x4
     */
    public static BlockShape of(int rows, int cols) {
        for (BlockShape b : values())
            if (b.rows == rows && b.cols == cols) return b;
        throw new IllegalArgumentException("block " + rows + "x" + cols + ": supported blocks are 1x4, 1x8 and 4x4");
    }

    @Override
    public String toString() {
        return rows + "x" + cols;
    }
}
