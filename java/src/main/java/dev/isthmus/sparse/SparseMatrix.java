package dev.isthmus.sparse;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Tensor;
import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_sparse_info;
import dev.isthmus.bindings.isthmus_sparse_matrix;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Leases;
import dev.isthmus.internal.Resources;
import dev.isthmus.internal.Native;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;

/**
 * An immutable sparse weight matrix W[N, K] (a row per output channel) in one {@link SparseFormat},
 * with F32 values or S8 values and one f32 scale per row ({@code W ~= q * rowScales[row]}). It holds the
 * exchange arrays of its format in native memory and, made once at construction by
 * {@code isthmus_sparse_pack}, the packed layout the kernels of the ISA active then read
 * ({@link #isa()}). Usable from many threads at once ({@link Sparse#matmul}); owns native memory until
 * {@link #close()}, which fails with {@link IllegalStateException} while a call is using it.
 *
 * <p>Three ways to make one:
 * <ul>
 *   <li>from a dense F32 tensor: {@link #fromDense} (zeros are dropped for CSR; BSR keeps every block
 *       that holds a nonzero; 2:4 needs at most 2 nonzeros in every group of 4 along K) and
 *       {@link #fromDenseInt8} (the same structure, values quantized per row as
 *       {@code Quant.quantize(w, QuantScheme.int8PerRow())} does: {@code s = max|w_row| / 127},
 *       {@code q = round_half_even(w / s)});</li>
 *   <li>from the exchange arrays: {@link #csr}, {@link #bsr}, {@link #twoFour} and their int8 overloads,
 *       checked completely in Java before any native call (array lengths against the shape, row
 *       pointers, column order, 2:4 metadata, int8 range, scales);</li>
 *   <li>from an F32 sparse matrix: {@link #quantizeInt8()} keeps the structure.</li>
 * </ul>
 * Dense to format to dense round trips are exact ({@link #toDense()}; S8 values come back as
 * {@code (float) q * scale}).
 *
 * <pre>{@code
 * try (Tensor w = Tensor.of(weights, n, k);
 *      PruneResult p = Pruning.nm(2, 4).prune(w);
 *      SparseMatrix ws = p.toSparse(SparseFormat.TWO_FOUR);
 *      Tensor y = Sparse.matmul(x, ws, bias)) {        // y[M, N] = x . W^T + bias
 *     System.out.println(ws);                          // SparseMatrix[2:4 F32 [n, k], ...]
 * }
 * }</pre>
 */
public final class SparseMatrix implements AutoCloseable {
    private final Arena arena;
    private final long n, k;
    private final SparseFormat format;
    private final DType dtype;
    private final BlockShape block;
    /** CSR: stored elements; BSR: stored blocks; 2:4: 0 (no row pointers). */
    private final long entries;
    private final MemorySegment rowPtr, colIdx, values, meta, scales, packed;
    private final Isa isa;
    /** Native calls reading the matrix now. */
    private final Leases leases = new Leases();
    /** The accounting record ({@link dev.isthmus.Isthmus#memoryStats()}). */
    private final Resources.Handle handle;

    private SparseMatrix(Arena arena, Parts p, MemorySegment rowPtr, MemorySegment colIdx, MemorySegment values,
                         MemorySegment meta, MemorySegment scales, MemorySegment packed, Isa isa) {
        this.arena = arena;
        this.n = p.n;
        this.k = p.k;
        this.format = p.format;
        this.dtype = p.s8 != null ? DType.I8 : DType.F32;
        this.block = p.block;
        this.entries = p.colIdx == null ? 0 : p.colIdx.length;
        this.rowPtr = rowPtr;
        this.colIdx = colIdx;
        this.values = values;
        this.meta = meta;
        this.scales = scales;
        this.packed = packed;
        this.isa = isa;
        long bytes = 0;
        for (MemorySegment m : new MemorySegment[] {rowPtr, colIdx, values, meta, scales, packed}) bytes += m.byteSize();
        String what = describe() + ", packed for " + isa;
        this.handle = Resources.open(this, "SparseMatrix", bytes, () -> what);
    }

    // ------------------------------------------------------------------ from dense

    /** {@link #fromDense(Tensor, SparseFormat, BlockShape)} for CSR and 2:4 (no block shape). */
    public static SparseMatrix fromDense(Tensor w, SparseFormat format) {
        return fromDense(w, format, null);
    }

    /**
     * The sparse form of a dense F32 matrix {@code w} [N, K] (rows contiguous; w may be closed afterwards).
     * CSR stores the nonzeros of each row (zeros, also -0.0, are dropped; NaN is kept); BSR stores every
     * block of {@code block} that holds a nonzero (N and K multiples of the block); 2:4 needs
     * {@code K % 4 == 0} and at most 2 nonzeros in every group of 4 columns, and a group with fewer keeps
     * zeros at its lowest free indices.
     *
     * @param block the BSR block shape; must be null for CSR and 2:4
     * @throws IllegalArgumentException for a bad tensor, a shape the format refuses, or a 2:4 group with
     *                                  more than 2 nonzeros (naming its row and group)
     */
    public static SparseMatrix fromDense(Tensor w, SparseFormat format, BlockShape block) {
        float[] d = dense(w, format, block);
        Parts s = structure(d, w.dim(0), w.dim(1), format, block);
        float[] v = new float[s.positions.length];
        for (int i = 0; i < v.length; i++) v[i] = d[s.positions[i]];
        s.f32 = v;
        return build(s);
    }

    /** {@link #fromDenseInt8(Tensor, SparseFormat, BlockShape)} for CSR and 2:4 (no block shape). */
    public static SparseMatrix fromDenseInt8(Tensor w, SparseFormat format) {
        return fromDenseInt8(w, format, null);
    }

    /**
     * Like {@link #fromDense}, with S8 values: {@code w} is quantized per row exactly as
     * {@code Quant.quantize(w, QuantScheme.int8PerRow())} (isthmus_quantize_s8 PER_ROW) does, and the
     * structure is that of {@code fromDense(w, format, block)} (the same stored positions, even where a
     * small weight rounds to 0). {@link #toDense()} then gives {@code Quant.dequantize} of that
     * quantization, bit for bit.
     *
     * @throws IllegalArgumentException as {@link #fromDense}, or for a NaN or infinite weight
     */
    public static SparseMatrix fromDenseInt8(Tensor w, SparseFormat format, BlockShape block) {
        float[] d = dense(w, format, block);
        Parts s = structure(d, w.dim(0), w.dim(1), format, block);
        byte[] q;
        float[] scales;
        try (QuantizedTensor wq = Quant.quantize(w, QuantScheme.int8PerRow())) {
            q = wq.values().toByteArray();
            scales = wq.scales().toFloatArray();
        }
        byte[] v = new byte[s.positions.length];
        for (int i = 0; i < v.length; i++) v[i] = q[s.positions[i]];
        s.s8 = v;
        s.scales = scales;
        return build(s);
    }

    /**
     * A new S8 matrix with this F32 matrix's structure (the same stored positions), its values quantized
     * per row as {@link #fromDenseInt8} does (the row's maximum is over its stored values, which is the
     * dense row's maximum).
     *
     * @throws IllegalStateException if this matrix already is S8, or is closed
     */
    public SparseMatrix quantizeInt8() {
        if (dtype != DType.F32) throw new IllegalStateException(this + " already has int8 values");
        Parts p = parts();
        int[] pos = positions(p);
        float[] d = scatter(p, pos);
        byte[] q;
        float[] s;
        try (Tensor t = Tensor.of(d, n, k); QuantizedTensor wq = Quant.quantize(t, QuantScheme.int8PerRow())) {
            q = wq.values().toByteArray();
            s = wq.scales().toFloatArray();
        }
        byte[] v = new byte[pos.length];
        for (int i = 0; i < v.length; i++) v[i] = q[pos[i]];
        p.f32 = null;
        p.s8 = v;
        p.scales = s;
        return build(p);
    }

    // ------------------------------------------------------------------ from exchange arrays

    /**
     * Wraps CSR arrays (copied into native memory): {@code rowPtr[n + 1]} with {@code rowPtr[0] = 0},
     * non-decreasing, last = nnz; {@code colIdx[nnz]} in [0, k), strictly increasing within a row;
     * {@code values[nnz]}.
     *
     * @throws IllegalArgumentException naming the argument, row and index, and the shape, for any
     *                                  inconsistency (before any native call)
     */
    public static SparseMatrix csr(long n, long k, long[] rowPtr, int[] colIdx, float[] values) {
        Checks.notNull(values, "values");
        return build(new Parts(n, k, SparseFormat.CSR, null, rowPtr, colIdx, values, null, null, null));
    }

    /** CSR with int8 values in [-127, 127] and {@code rowScales[n]} (finite, >= 0); see {@link #csr(long, long, long[], int[], float[])}. */
    public static SparseMatrix csr(long n, long k, long[] rowPtr, int[] colIdx, byte[] values, float[] rowScales) {
        Checks.notNull(values, "values");
        return build(new Parts(n, k, SparseFormat.CSR, null, rowPtr, colIdx, null, values, null, rowScales));
    }

    /**
     * Wraps BSR arrays (copied): blocks of {@code block} ({@code n % rows == 0}, {@code k % cols == 0});
     * {@code rowPtr[n / rows + 1]} over block rows; {@code colIdx[blocks]} = block column in
     * [0, k / cols), strictly increasing within a block row; {@code values[blocks * rows * cols]}, each
     * block row-major.
     *
     * @throws IllegalArgumentException naming the argument, block row and index, and the shape
     */
    public static SparseMatrix bsr(long n, long k, BlockShape block, long[] rowPtr, int[] colIdx, float[] values) {
        Checks.notNull(values, "values");
        return build(new Parts(n, k, SparseFormat.BSR, Checks.notNull(block, "block"), rowPtr, colIdx, values, null,
                null, null));
    }

    /** BSR with int8 values and {@code rowScales[n]} (one per row of W, not per block row). */
    public static SparseMatrix bsr(long n, long k, BlockShape block, long[] rowPtr, int[] colIdx, byte[] values,
                                   float[] rowScales) {
        Checks.notNull(values, "values");
        return build(new Parts(n, k, SparseFormat.BSR, Checks.notNull(block, "block"), rowPtr, colIdx, null, values,
                null, rowScales));
    }

    /**
     * Wraps 2:4 arrays (copied): {@code k % 4 == 0}; {@code values[n * k / 2]}, the two kept values of each
     * group in column order; {@code meta[n * ceil(k / 16)]}, group g of a row in the 4 bits at
     * {@code 4 * (g % 4)} of word {@code g / 4}: {@code i0 | i1 << 2} with {@code i0 < i1}; unused bits of a
     * row's last word 0.
     *
     * @throws IllegalArgumentException naming the argument, row and group, and the shape
     */
    public static SparseMatrix twoFour(long n, long k, float[] values, short[] meta) {
        Checks.notNull(values, "values");
        return build(new Parts(n, k, SparseFormat.TWO_FOUR, null, null, null, values, null, meta, null));
    }

    /** 2:4 with int8 values and {@code rowScales[n]}; see {@link #twoFour(long, long, float[], short[])}. */
    public static SparseMatrix twoFour(long n, long k, byte[] values, short[] meta, float[] rowScales) {
        Checks.notNull(values, "values");
        return build(new Parts(n, k, SparseFormat.TWO_FOUR, null, null, null, null, values, meta, rowScales));
    }

    // ------------------------------------------------------------------ accessors

    /** Rows N (output channels). */
    public long n() {
        return n;
    }

    /** Columns K (input features). */
    public long k() {
        return k;
    }

    public SparseFormat format() {
        return format;
    }

    /** {@link DType#F32} or {@link DType#I8} (int8 values with per-row scales). */
    public DType dtype() {
        return dtype;
    }

    /** The BSR block shape; null for CSR and 2:4. */
    public BlockShape blockShape() {
        return block;
    }

    /**
     * Stored values: CSR its entries, BSR blocks x block size (zeros inside a block count), 2:4
     * {@code N * K / 2}.
     */
    public long nnz() {
        return switch (format) {
            case CSR -> entries;
            case BSR -> entries * block.size();
            case TWO_FOUR -> n * k / 2;
        };
    }

    /** {@link #nnz()} / (N * K). */
    public double density() {
        return (double) nnz() / ((double) n * k);
    }

    /** Bytes of the exchange arrays (row pointers, indices, values, metadata, scales). */
    public long exchangeBytes() {
        return rowPtr.byteSize() + colIdx.byteSize() + values.byteSize() + meta.byteSize() + scales.byteSize();
    }

    /** Bytes of the packed layout the kernels read. */
    public long packedBytes() {
        return packed.byteSize();
    }

    /** The ISA variant the packed layout was made for (the kernels that run on it). */
    public Isa isa() {
        return isa;
    }

    public boolean isAlive() {
        return arena.scope().isAlive();
    }

    /** A copy of the row pointers (CSR: N + 1; BSR: N / blockRows + 1). */
    public long[] rowPtr() {
        requireIndexed("rowPtr");
        return read(rowPtr, ValueLayout.JAVA_LONG, long[]::new);
    }

    /** A copy of the column indices (CSR: columns; BSR: block columns). */
    public int[] colIdx() {
        requireIndexed("colIdx");
        return read(colIdx, ValueLayout.JAVA_INT, int[]::new);
    }

    /** A copy of the F32 values (in the format's order). */
    public float[] values() {
        if (dtype != DType.F32) throw new IllegalStateException(this + " has int8 values: use int8Values()");
        return read(values, ValueLayout.JAVA_FLOAT, float[]::new);
    }

    /** A copy of the S8 values (in the format's order). */
    public byte[] int8Values() {
        if (dtype != DType.I8) throw new IllegalStateException(this + " has F32 values: use values()");
        return read(values, ValueLayout.JAVA_BYTE, byte[]::new);
    }

    /** A copy of the per-row scales of S8 values. */
    public float[] rowScales() {
        if (dtype != DType.I8) throw new IllegalStateException(this + " has F32 values and no scales");
        return read(scales, ValueLayout.JAVA_FLOAT, float[]::new);
    }

    /** A copy of the 2:4 metadata, {@code N * ceil(K / 16)} words. */
    public short[] meta() {
        if (format != SparseFormat.TWO_FOUR) throw new IllegalStateException(this + " has no 2:4 metadata");
        return read(meta, ValueLayout.JAVA_SHORT, short[]::new);
    }

    /**
     * The dense F32 matrix [N, K] (a new owned tensor): stored values at their positions (S8:
     * {@code (float) q * rowScales[row]}), zeros elsewhere.
     */
    public Tensor toDense() {
        Parts p = parts();
        return Tensor.of(scatter(p, positions(p)), n, k);
    }

    /**
     * Takes a lease for a native call: while one is open, {@link #close()} fails instead of freeing memory
     * a kernel is reading.
     */
    Tensor.Lease lease() {
        Runnable release = leases.acquire(this);
        return release::run;
    }

    /** The packed buffer (for the kernels; under a lease). */
    MemorySegment packed() {
        return packed;
    }

    /**
     * Frees the native memory. Idempotent.
     *
     * @throws IllegalStateException if a call on another thread is using the matrix right now
     */
    @Override
    public void close() {
        if (leases.markClosed(describe())) {
            arena.close();
            handle.close();
        }
    }

    @Override
    public String toString() {
        return "SparseMatrix[" + describe() + ", nnz " + nnz() + String.format(Locale.ROOT, " (density %.4g)", density())
                + ", packed " + packed.byteSize() + " bytes for " + isa + (isAlive() ? "" : ", closed") + "]";
    }

    private String describe() {
        return (format == SparseFormat.BSR ? "BSR " + block : format.toString()) + " " + dtype + " [" + n + ", " + k + "]";
    }

    // ------------------------------------------------------------------ internals

    /** The exchange arrays of a matrix on the Java side, plus (for the dense factories) value positions. */
    static final class Parts {
        final long n, k;
        final SparseFormat format;
        final BlockShape block;
        long[] rowPtr;
        int[] colIdx;
        float[] f32;
        byte[] s8;
        short[] meta;
        float[] scales;
        /** Dense index r * K + c of each stored value (dense factories only). */
        int[] positions;

        Parts(long n, long k, SparseFormat format, BlockShape block, long[] rowPtr, int[] colIdx, float[] f32, byte[] s8,
              short[] meta, float[] scales) {
            this.n = n;
            this.k = k;
            this.format = format;
            this.block = block;
            this.rowPtr = rowPtr;
            this.colIdx = colIdx;
            this.f32 = f32;
            this.s8 = s8;
            this.meta = meta;
            this.scales = scales;
        }

        String what() {
            return (format == SparseFormat.BSR ? "BSR " + block : format.toString()) + " W[" + n + ", " + k + "]";
        }

        int valueCount() {
            return f32 != null ? f32.length : s8.length;
        }
    }

    private interface ArrayMaker<A> {
        A make(int length);
    }

    private <A> A read(MemorySegment seg, ValueLayout layout, ArrayMaker<A> maker) {
        try (Tensor.Lease l = lease()) {
            A out = maker.make(Math.toIntExact(seg.byteSize() / layout.byteSize()));
            MemorySegment.copy(seg, layout, 0, out, 0, java.lang.reflect.Array.getLength(out));
            return out;
        }
    }

    private void requireIndexed(String what) {
        if (format == SparseFormat.TWO_FOUR) throw new IllegalStateException(this + " has no " + what + " (2:4 format)");
    }

    /** Copies of every exchange array. */
    private Parts parts() {
        return new Parts(n, k, format, block,
                format == SparseFormat.TWO_FOUR ? null : rowPtr(),
                format == SparseFormat.TWO_FOUR ? null : colIdx(),
                dtype == DType.F32 ? values() : null,
                dtype == DType.I8 ? int8Values() : null,
                format == SparseFormat.TWO_FOUR ? meta() : null,
                dtype == DType.I8 ? rowScales() : null);
    }

    /** Reads a dense tensor for the dense factories, after checking it and the format's shape rules. */
    private static float[] dense(Tensor w, SparseFormat format, BlockShape block) {
        Checks.matrix(w, "w", DType.F32);
        Checks.notNull(format, "format");
        long n = w.dim(0), k = w.dim(1);
        if (format == SparseFormat.BSR && block == null)
            throw new IllegalArgumentException("block is null: BSR needs a block shape (BlockShape.B1x4, B1x8 or B4x4)");
        if (format != SparseFormat.BSR && block != null)
            throw new IllegalArgumentException("block " + block + " is given but " + format + " has no blocks (only BSR)");
        checkShape(n, k, format, block, "w " + Checks.shape(w));
        if (n * k > Integer.MAX_VALUE - 8)
            throw new IllegalArgumentException("w " + Checks.shape(w) + " has more than 2^31 - 9 elements: too large "
                    + "for fromDense (build it from exchange arrays)");
        try (Tensor.Lease l = w.lease()) {
            return w.toFloatArray();
        }
    }

    private static void checkShape(long n, long k, SparseFormat format, BlockShape block, String what) {
        if (n < 1 || k < 1)
            throw new IllegalArgumentException(what + ": n = " + n + " and k = " + k + " must be >= 1");
        if (k > Isthmus.ISTHMUS_GEMM_MAX_K())
            throw new IllegalArgumentException(what + ": K = " + k + " exceeds " + Isthmus.ISTHMUS_GEMM_MAX_K()
                    + " (int32 accumulators must stay exact)");
        if (Long.MAX_VALUE / n < k) throw new IllegalArgumentException(what + ": n * k overflows");
        if (format == SparseFormat.BSR && (n % block.rows() != 0 || k % block.cols() != 0))
            throw new IllegalArgumentException(what + ": BSR " + block + " needs "
                    + (block.rows() > 1 ? "N % " + block.rows() + " == 0 and " : "") + "K % " + block.cols()
                    + " == 0, got N = " + n + ", K = " + k);
        if (format == SparseFormat.TWO_FOUR && k % 4 != 0)
            throw new IllegalArgumentException(what + ": 2:4 needs K % 4 == 0 (whole groups of 4 along K), got K = " + k
                    + ": pad W and X with zero columns");
    }

    /** The structure of a dense matrix in a format, with the dense position of every stored value. */
    private static Parts structure(float[] d, long nl, long kl, SparseFormat format, BlockShape block) {
        int n = (int) nl, k = (int) kl;
        Parts p = new Parts(nl, kl, format, block, null, null, null, null, null, null);
        switch (format) {
            case CSR -> {
                int nnz = 0;
                for (float v : d) if (v != 0f) nnz++;
                long[] rp = new long[n + 1];
                int[] ci = new int[nnz], pos = new int[nnz];
                int i = 0;
                for (int r = 0; r < n; r++) {
                    for (int c = 0; c < k; c++)
                        if (d[r * k + c] != 0f) {
                            ci[i] = c;
                            pos[i++] = r * k + c;
                        }
                    rp[r + 1] = i;
                }
                p.rowPtr = rp;
                p.colIdx = ci;
                p.positions = pos;
            }
            case BSR -> {
                int br = block.rows(), bc = block.cols(), nb = n / br, kb = k / bc;
                boolean[] keep = new boolean[nb * kb];
                int blocks = 0;
                for (int b = 0; b < nb; b++)
                    for (int j = 0; j < kb; j++) {
                        boolean any = false;
                        for (int r = b * br; r < (b + 1) * br && !any; r++)
                            for (int c = j * bc; c < (j + 1) * bc; c++)
                                if (d[r * k + c] != 0f) {
                                    any = true;
                                    break;
                                }
                        if (any) {
                            keep[b * kb + j] = true;
                            blocks++;
                        }
                    }
                long[] rp = new long[nb + 1];
                int[] ci = new int[blocks], pos = new int[blocks * br * bc];
                int i = 0, e = 0;
                for (int b = 0; b < nb; b++) {
                    for (int j = 0; j < kb; j++)
                        if (keep[b * kb + j]) {
                            ci[i++] = j;
                            for (int r = 0; r < br; r++)
                                for (int c = 0; c < bc; c++) pos[e++] = (b * br + r) * k + j * bc + c;
                        }
                    rp[b + 1] = i;
                }
                p.rowPtr = rp;
                p.colIdx = ci;
                p.positions = pos;
            }
            case TWO_FOUR -> {
                int groups = k / 4, words = (k + 15) / 16;
                short[] meta = new short[n * words];
                int[] pos = new int[n * (k / 2)];
                int e = 0;
                for (int r = 0; r < n; r++)
                    for (int g = 0; g < groups; g++) {
                        int base = r * k + 4 * g, count = 0, i0 = -1, i1 = -1;
                        for (int j = 0; j < 4; j++)
                            if (d[base + j] != 0f) {
                                count++;
                                if (i0 < 0) i0 = j;
                                else i1 = j;
                            }
                        if (count > 2)
                            throw new IllegalArgumentException("w F32[" + n + ", " + k + "] row " + r + ", group " + g
                                    + " (columns " + 4 * g + ".." + (4 * g + 3) + ") has " + count + " nonzeros: 2:4 keeps "
                                    + "at most 2 of every 4 (prune with Pruning.nm(2, 4) first)");
                        // fewer than 2 nonzeros: zeros at the lowest free indices
                        if (i0 < 0) {
                            i0 = 0;
                            i1 = 1;
                        } else if (i1 < 0) {
                            if (i0 == 0) i1 = 1;
                            else {
                                i1 = i0;
                                i0 = 0;
                            }
                        }
                        meta[r * words + g / 4] |= (short) ((i0 | i1 << 2) << (4 * (g % 4)));
                        pos[e++] = base + i0;
                        pos[e++] = base + i1;
                    }
                p.meta = meta;
                p.positions = pos;
            }
        }
        return p;
    }

    /** Dense index r * K + c of every stored value, in the order of the values array. */
    private static int[] positions(Parts p) {
        int k = Math.toIntExact(p.k), n = Math.toIntExact(p.n);
        if ((long) n * k > Integer.MAX_VALUE - 8)
            throw new IllegalArgumentException(p.what() + " has more than 2^31 - 9 elements: too large for a dense copy");
        int[] pos = new int[p.valueCount()];
        switch (p.format) {
            case CSR -> {
                for (int r = 0; r < n; r++)
                    for (long i = p.rowPtr[r]; i < p.rowPtr[r + 1]; i++) pos[(int) i] = r * k + p.colIdx[(int) i];
            }
            case BSR -> {
                int br = p.block.rows(), bc = p.block.cols(), e = 0;
                for (int b = 0; b < n / br; b++)
                    for (long i = p.rowPtr[b]; i < p.rowPtr[b + 1]; i++)
                        for (int r = 0; r < br; r++)
                            for (int c = 0; c < bc; c++) pos[e++] = (b * br + r) * k + p.colIdx[(int) i] * bc + c;
            }
            case TWO_FOUR -> {
                int words = (k + 15) / 16, e = 0;
                for (int r = 0; r < n; r++)
                    for (int g = 0; g < k / 4; g++) {
                        int f = (p.meta[r * words + g / 4] >> (4 * (g % 4))) & 15;
                        pos[e++] = r * k + 4 * g + (f & 3);
                        pos[e++] = r * k + 4 * g + (f >> 2);
                    }
            }
        }
        return pos;
    }

    private static float[] scatter(Parts p, int[] pos) {
        float[] d = new float[Math.toIntExact(p.n * p.k)];
        int k = (int) p.k;
        if (p.f32 != null) for (int i = 0; i < pos.length; i++) d[pos[i]] = p.f32[i];
        else for (int i = 0; i < pos.length; i++) d[pos[i]] = (float) p.s8[i] * p.scales[pos[i] / k];
        return d;
    }

    /** Validates the exchange arrays completely, copies them into native memory and packs them. */
    private static SparseMatrix build(Parts p) {
        validate(p);
        Native.ensureLoaded();
        Arena arena = Arena.ofShared();
        try (Arena call = Arena.ofConfined()) {
            MemorySegment rp = copy(arena, p.rowPtr, ValueLayout.JAVA_LONG);
            MemorySegment ci = copy(arena, p.colIdx, ValueLayout.JAVA_INT);
            MemorySegment vs = p.f32 != null ? copy(arena, p.f32, ValueLayout.JAVA_FLOAT) : copy(arena, p.s8, ValueLayout.JAVA_BYTE);
            MemorySegment mt = copy(arena, p.meta, ValueLayout.JAVA_SHORT);
            MemorySegment sc = copy(arena, p.scales, ValueLayout.JAVA_FLOAT);
            MemorySegment d = isthmus_sparse_matrix.allocate(call);
            isthmus_sparse_matrix.n(d, p.n);
            isthmus_sparse_matrix.k(d, p.k);
            isthmus_sparse_matrix.format(d, p.format.code());
            isthmus_sparse_matrix.dtype(d, p.f32 != null ? Isthmus.ISTHMUS_DTYPE_F32() : Isthmus.ISTHMUS_DTYPE_S8());
            isthmus_sparse_matrix.block_rows(d, p.block == null ? 0 : p.block.rows());
            isthmus_sparse_matrix.block_cols(d, p.block == null ? 0 : p.block.cols());
            isthmus_sparse_matrix.nnz(d, p.colIdx == null ? 0 : p.colIdx.length);
            isthmus_sparse_matrix.row_ptr(d, p.rowPtr == null ? MemorySegment.NULL : rp);
            isthmus_sparse_matrix.col_idx(d, p.colIdx == null ? MemorySegment.NULL : ci);
            isthmus_sparse_matrix.values(d, vs);
            isthmus_sparse_matrix.meta(d, p.meta == null ? MemorySegment.NULL : mt);
            isthmus_sparse_matrix.scales(d, p.scales == null ? MemorySegment.NULL : sc);
            MemorySegment bytes = call.allocate(ValueLayout.JAVA_LONG);
            String op = "SparseMatrix (" + p.what() + ")";
            Native.check(Isthmus.isthmus_sparse_packed_size(d, bytes), op);
            long size = bytes.get(ValueLayout.JAVA_LONG, 0);
            MemorySegment packed = arena.allocate(size, 64);
            Native.check(Isthmus.isthmus_sparse_pack(d, packed, size), op);
            MemorySegment info = isthmus_sparse_info.allocate(call);
            Native.check(Isthmus.isthmus_sparse_packed_info(packed, info), op);
            return new SparseMatrix(arena, p, rp, ci, vs, mt, sc, packed, Isa.of(isthmus_sparse_info.isa(info)));
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** A 64-byte aligned native copy of {@code array} (an empty segment for null or empty). */
    private static MemorySegment copy(Arena arena, Object array, ValueLayout layout) {
        int len = array == null ? 0 : java.lang.reflect.Array.getLength(array);
        MemorySegment seg = arena.allocate(Math.max(len * layout.byteSize(), 1), 64);
        if (len > 0) MemorySegment.copy(array, 0, seg, layout, 0, len);
        return seg.asSlice(0, len * layout.byteSize());
    }

    // ------------------------------------------------------------------ validation

    private static void validate(Parts p) {
        String what = p.what();
        if (p.block != null && p.format != SparseFormat.BSR)
            throw new IllegalArgumentException("block " + p.block + " is given but " + p.format + " has no blocks");
        checkShape(p.n, p.k, p.format, p.block, what);
        long expectValues;
        if (p.format == SparseFormat.TWO_FOUR) {
            if (p.rowPtr != null || p.colIdx != null)
                throw new IllegalArgumentException(what + ": 2:4 takes no rowPtr or colIdx");
            expectValues = p.n * (p.k / 2);
            checkTwoFourMeta(p, what);
        } else {
            expectValues = checkIndices(p, what);
        }
        if (p.valueCount() != expectValues)
            throw new IllegalArgumentException("values has " + p.valueCount() + " entries but " + what + " with "
                    + (p.format == SparseFormat.TWO_FOUR ? "2 of every 4 columns kept" : p.colIdx.length
                    + (p.format == SparseFormat.BSR ? " blocks of " + p.block.size() : " stored entries"))
                    + " needs " + expectValues);
        if (p.s8 != null) {
            for (int i = 0; i < p.s8.length; i++)
                if (p.s8[i] == -128)
                    throw new IllegalArgumentException("values[" + i + "] = -128 (row " + rowOfValue(p, i) + ") in " + what
                            + ": int8 weights must be in [-127, 127] (symmetric quantization)");
            if (p.scales == null)
                throw new IllegalArgumentException("rowScales is null: int8 values of " + what + " need one scale per row");
            if (p.scales.length != p.n)
                throw new IllegalArgumentException("rowScales has " + p.scales.length + " entries but " + what + " has "
                        + p.n + " rows");
            for (int r = 0; r < p.scales.length; r++)
                if (!(p.scales[r] >= 0f) || !Float.isFinite(p.scales[r]))
                    throw new IllegalArgumentException("rowScales[" + r + "] = " + p.scales[r] + " in " + what
                            + ": scales must be finite and >= 0");
        }
    }

    /** Checks rowPtr and colIdx of CSR / BSR; returns the number of values they call for. */
    private static long checkIndices(Parts p, String what) {
        Checks.notNull(p.rowPtr, "rowPtr");
        Checks.notNull(p.colIdx, "colIdx");
        boolean bsr = p.format == SparseFormat.BSR;
        long rows = bsr ? p.n / p.block.rows() : p.n, cols = bsr ? p.k / p.block.cols() : p.k;
        String row = bsr ? "block row " : "row ";
        if (p.meta != null) throw new IllegalArgumentException(what + ": meta is for 2:4 only");
        if (p.rowPtr.length != rows + 1)
            throw new IllegalArgumentException("rowPtr has " + p.rowPtr.length + " entries but " + what + " needs "
                    + (bsr ? "N / " + p.block.rows() + " + 1 = " : "N + 1 = ") + (rows + 1));
        long nnz = p.colIdx.length;
        if (p.rowPtr[0] != 0)
            throw new IllegalArgumentException("rowPtr[0] = " + p.rowPtr[0] + " in " + what + ": must be 0");
        for (int r = 0; r < rows; r++) {
            long a = p.rowPtr[r], b = p.rowPtr[r + 1];
            if (b < a)
                throw new IllegalArgumentException("rowPtr[" + (r + 1) + "] = " + b + " < rowPtr[" + r + "] = " + a
                        + " (" + row + r + ") in " + what + ": row pointers must be non-decreasing");
            if (b > nnz)
                throw new IllegalArgumentException("rowPtr[" + (r + 1) + "] = " + b + " (" + row + r + ") in " + what
                        + " exceeds nnz = colIdx.length = " + nnz);
        }
        if (p.rowPtr[(int) rows] != nnz)
            throw new IllegalArgumentException("rowPtr[" + rows + "] = " + p.rowPtr[(int) rows] + " in " + what
                    + ": the last row pointer must equal nnz = colIdx.length = " + nnz);
        for (int r = 0; r < rows; r++) {
            long prev = -1;
            for (int i = (int) p.rowPtr[r]; i < p.rowPtr[r + 1]; i++) {
                int c = p.colIdx[i];
                if (c < 0 || c >= cols)
                    throw new IllegalArgumentException("colIdx[" + i + "] = " + c + " (" + row + r + ") in " + what
                            + " is out of range [0, " + cols + ")" + (bsr ? " (block columns)" : ""));
                if (c <= prev)
                    throw new IllegalArgumentException("colIdx[" + i + "] = " + c + " (" + row + r + ") in " + what
                            + (c == prev ? " duplicates" : " is below") + " colIdx[" + (i - 1) + "] = " + prev
                            + ": indices must be strictly increasing within a row (sorted, no duplicates)");
                prev = c;
            }
        }
        return bsr ? nnz * p.block.size() : nnz;
    }

    private static void checkTwoFourMeta(Parts p, String what) {
        Checks.notNull(p.meta, "meta");
        long words = (p.k + 15) / 16, groups = p.k / 4;
        if (p.meta.length != p.n * words)
            throw new IllegalArgumentException("meta has " + p.meta.length + " words but " + what
                    + " needs N * ceil(K / 16) = " + p.n * words);
        for (int r = 0; r < p.n; r++) {
            for (int g = 0; g < groups; g++) {
                int f = (p.meta[(int) (r * words) + g / 4] >> (4 * (g % 4))) & 15, i0 = f & 3, i1 = f >> 2;
                if (i0 >= i1)
                    throw new IllegalArgumentException("meta[" + (r * words + g / 4) + "] (row " + r + ", group " + g
                            + ", columns " + 4 * g + ".." + (4 * g + 3) + ") in " + what + ": field 0x"
                            + Integer.toHexString(f) + " gives indices " + i0 + ", " + i1
                            + "; they must be increasing (i0 < i1)");
            }
            if (groups % 4 != 0) {
                int rest = (p.meta[(int) (r * words + groups / 4)] & 0xFFFF) >> (4 * (groups % 4));
                if (rest != 0)
                    throw new IllegalArgumentException("meta[" + (r * words + groups / 4) + "] (row " + r + ") in " + what
                            + ": the unused bits of the row's last word are 0x" + Integer.toHexString(rest)
                            + ", must be 0");
            }
        }
    }

    /** The row of W that values[i] belongs to (for messages). */
    private static long rowOfValue(Parts p, int i) {
        return switch (p.format) {
            case TWO_FOUR -> i / (p.k / 2);
            case CSR, BSR -> {
                int bs = p.format == SparseFormat.BSR ? p.block.size() : 1;
                long entry = i / bs, r = 0;
                while (r + 1 < p.rowPtr.length - 1 && p.rowPtr[(int) r + 1] <= entry) r++;
                yield p.format == SparseFormat.BSR ? r * p.block.rows() + (i % bs) / p.block.cols() : r;
            }
        };
    }
}
