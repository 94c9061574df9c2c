package dev.isthmus.sparse;

import static dev.isthmus.sparse.SparseTestSupport.fails;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every malformed argument is an exception that names it (and the row, index and shapes), thrown in Java
 * before native code runs; never a crash or an IsthmusException.
 */
class SparseBadInputTest {
    @TempDir Path tmp;

    private final Random r = new Random(13);

    private static final float[] V3 = {1, 2, 3};

    @Test
    void malformedCsr() {
        // W [2, 4]: row 0 has columns 1, 3; row 1 has column 2
        fails(IllegalArgumentException.class, "rowPtr is null", () -> SparseMatrix.csr(2, 4, null, new int[] {1, 3, 2}, V3));
        fails(IllegalArgumentException.class, "colIdx is null", () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, null, V3));
        fails(IllegalArgumentException.class, "values is null", () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 3, 2}, (float[]) null));
        fails(IllegalArgumentException.class, "colIdx[1] = 4 (row 0) in CSR W[2, 4] is out of range [0, 4)",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 4, 2}, V3));
        fails(IllegalArgumentException.class, "colIdx[2] = -1 (row 1)",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 3, -1}, V3));
        fails(IllegalArgumentException.class, "colIdx[1] = 1 (row 0) in CSR W[2, 4] is below colIdx[0] = 3",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {3, 1, 2}, V3));
        fails(IllegalArgumentException.class, "colIdx[1] = 1 (row 0) in CSR W[2, 4] duplicates colIdx[0] = 1",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 1, 2}, V3));
        fails(IllegalArgumentException.class, "rowPtr[2] = 1 < rowPtr[1] = 2 (row 1) in CSR W[2, 4]",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 1}, new int[] {1, 3, 2}, V3));
        fails(IllegalArgumentException.class, "rowPtr[2] = 2 in CSR W[2, 4]: the last row pointer must equal nnz = colIdx.length = 3",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 1, 2}, new int[] {1, 3, 2}, V3));
        fails(IllegalArgumentException.class, "rowPtr[2] = 4 (row 1) in CSR W[2, 4] exceeds nnz",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 4}, new int[] {1, 3, 2}, V3));
        fails(IllegalArgumentException.class, "rowPtr[0] = 1",
                () -> SparseMatrix.csr(2, 4, new long[] {1, 2, 3}, new int[] {1, 3, 2}, V3));
        fails(IllegalArgumentException.class, "rowPtr has 2 entries but CSR W[2, 4] needs N + 1 = 3",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 3}, new int[] {1, 3, 2}, V3));
        fails(IllegalArgumentException.class, "values has 2 entries but CSR W[2, 4] with 3 stored entries needs 3",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 3, 2}, new float[] {1, 2}));
        fails(IllegalArgumentException.class, "n = 0 and k = 4 must be >= 1",
                () -> SparseMatrix.csr(0, 4, new long[] {0}, new int[0], new float[0]));
        fails(IllegalArgumentException.class, "K = 200000 exceeds",
                () -> SparseMatrix.csr(1, 200000, new long[] {0, 0}, new int[0], new float[0]));
        // int8
        byte[] q3 = {1, 2, 3};
        fails(IllegalArgumentException.class, "values[2] = -128 (row 1) in CSR W[2, 4]",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 3, 2}, new byte[] {1, 2, -128}, new float[] {1, 1}));
        fails(IllegalArgumentException.class, "rowScales is null",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 3, 2}, q3, null));
        fails(IllegalArgumentException.class, "rowScales has 1 entries but CSR W[2, 4] has 2 rows",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 3, 2}, q3, new float[] {1}));
        fails(IllegalArgumentException.class, "rowScales[1] = -1.0",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 3, 2}, q3, new float[] {1, -1}));
        fails(IllegalArgumentException.class, "rowScales[0] = NaN",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 3, 2}, q3, new float[] {Float.NaN, 1}));
        fails(IllegalArgumentException.class, "rowScales[1] = Infinity",
                () -> SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 3, 2}, q3, new float[] {1, Float.POSITIVE_INFINITY}));
    }

    @Test
    void malformedBsr() {
        float[] v8 = new float[8];
        fails(IllegalArgumentException.class, "block is null",
                () -> SparseMatrix.bsr(4, 8, null, new long[] {0, 2}, new int[] {0, 1}, v8));
        fails(IllegalArgumentException.class, "BSR 4x4 W[6, 8]: BSR 4x4 needs N % 4 == 0 and K % 4 == 0, got N = 6",
                () -> SparseMatrix.bsr(6, 8, BlockShape.B4x4, new long[] {0, 0}, new int[0], new float[0]));
        fails(IllegalArgumentException.class, "K % 8 == 0",
                () -> SparseMatrix.bsr(2, 12, BlockShape.B1x8, new long[] {0, 0, 0}, new int[0], new float[0]));
        fails(IllegalArgumentException.class, "rowPtr has 3 entries but BSR 1x4 W[4, 8] needs N / 1 + 1 = 5",
                () -> SparseMatrix.bsr(4, 8, BlockShape.B1x4, new long[] {0, 1, 2}, new int[] {0, 1}, v8));
        fails(IllegalArgumentException.class, "colIdx[1] = 2 (block row 0) in BSR 4x4 W[4, 8] is out of range [0, 2) (block columns)",
                () -> SparseMatrix.bsr(4, 8, BlockShape.B4x4, new long[] {0, 2}, new int[] {0, 2}, new float[32]));
        fails(IllegalArgumentException.class, "duplicates",
                () -> SparseMatrix.bsr(4, 8, BlockShape.B4x4, new long[] {0, 2}, new int[] {1, 1}, new float[32]));
        fails(IllegalArgumentException.class, "values has 8 entries but BSR 4x4 W[4, 8] with 2 blocks of 16 needs 32",
                () -> SparseMatrix.bsr(4, 8, BlockShape.B4x4, new long[] {0, 2}, new int[] {0, 1}, v8));
        fails(IllegalArgumentException.class, "values[20] = -128 (row 1)",
                () -> {
                    byte[] q = new byte[32];
                    q[20] = -128; // block 1, row 1, col 0
                    SparseMatrix.bsr(4, 8, BlockShape.B4x4, new long[] {0, 2}, new int[] {0, 1}, q, new float[4]);
                });
        fails(IllegalArgumentException.class, "block 2x2: supported blocks are 1x4, 1x8 and 4x4", () -> BlockShape.of(2, 2));
    }

    @Test
    void malformedTwoFour() {
        fails(IllegalArgumentException.class, "2:4 W[2, 6]: 2:4 needs K % 4 == 0",
                () -> SparseMatrix.twoFour(2, 6, new float[6], new short[2]));
        fails(IllegalArgumentException.class, "values has 3 entries but 2:4 W[2, 4] with 2 of every 4 columns kept needs 4",
                () -> SparseMatrix.twoFour(2, 4, new float[3], new short[] {4, 4}));
        fails(IllegalArgumentException.class, "meta has 1 words but 2:4 W[2, 4] needs N * ceil(K / 16) = 2",
                () -> SparseMatrix.twoFour(2, 4, new float[4], new short[] {4}));
        fails(IllegalArgumentException.class, "meta is null", () -> SparseMatrix.twoFour(2, 4, new float[4], null));
        fails(IllegalArgumentException.class, "meta[1] (row 1, group 0, columns 0..3) in 2:4 W[2, 4]: field 0x6 gives indices 2, 1",
                () -> SparseMatrix.twoFour(2, 4, new float[4], new short[] {4, 6}));
        fails(IllegalArgumentException.class, "field 0x0 gives indices 0, 0",
                () -> SparseMatrix.twoFour(1, 8, new float[4], new short[] {4}));
        fails(IllegalArgumentException.class, "unused bits of the row's last word are 0x1",
                () -> SparseMatrix.twoFour(1, 8, new float[4], new short[] {(short) (4 | 4 << 4 | 1 << 8)}));
        fails(IllegalArgumentException.class, "values[3] = -128 (row 1)",
                () -> SparseMatrix.twoFour(2, 4, new byte[] {1, 2, 3, -128}, new short[] {4, 4}, new float[2]));
        fails(IllegalArgumentException.class, "rowScales is null",
                () -> SparseMatrix.twoFour(2, 4, new byte[4], new short[] {4, 4}, null));
    }

    @Test
    void badDenseInputs() {
        try (Tensor w = Tensor.of(new float[] {1, 2, 3, 0, 0, 0, 0, 0}, 1, 8); Tensor w6 = Tensor.of(new float[12], 2, 6);
             Tensor i8 = Tensor.of(new byte[8], 1, 8); Tensor vec = Tensor.of(new float[8], 8);
             Tensor nan = Tensor.of(new float[] {Float.NaN, 0, 0, 0}, 1, 4)) {
            fails(IllegalArgumentException.class, "w F32[1, 8] row 0, group 0 (columns 0..3) has 3 nonzeros",
                    () -> SparseMatrix.fromDense(w, SparseFormat.TWO_FOUR));
            fails(IllegalArgumentException.class, "row 0, group 0 (columns 0..3) has 3 nonzeros",
                    () -> SparseMatrix.fromDenseInt8(w, SparseFormat.TWO_FOUR));
            fails(IllegalArgumentException.class, "w F32[2, 6]: 2:4 needs K % 4 == 0",
                    () -> SparseMatrix.fromDense(w6, SparseFormat.TWO_FOUR));
            fails(IllegalArgumentException.class, "w F32[2, 6]: BSR 4x4 needs N % 4 == 0",
                    () -> SparseMatrix.fromDense(w6, SparseFormat.BSR, BlockShape.B4x4));
            fails(IllegalArgumentException.class, "block is null: BSR needs a block shape",
                    () -> SparseMatrix.fromDense(w, SparseFormat.BSR));
            fails(IllegalArgumentException.class, "block 1x4 is given but CSR has no blocks",
                    () -> SparseMatrix.fromDense(w, SparseFormat.CSR, BlockShape.B1x4));
            fails(IllegalArgumentException.class, "w must be F32", () -> SparseMatrix.fromDense(i8, SparseFormat.CSR));
            fails(IllegalArgumentException.class, "rank 2", () -> SparseMatrix.fromDense(vec, SparseFormat.CSR));
            fails(IllegalArgumentException.class, "w is null", () -> SparseMatrix.fromDense(null, SparseFormat.CSR));
            fails(IllegalArgumentException.class, "format is null", () -> SparseMatrix.fromDense(w, null));
            fails(IllegalArgumentException.class, "not finite", () -> SparseMatrix.fromDenseInt8(nan, SparseFormat.CSR));
        }
        Tensor closed = Tensor.of(new float[4], 1, 4);
        closed.close();
        fails(IllegalStateException.class, "closed", () -> SparseMatrix.fromDense(closed, SparseFormat.CSR));
        fails(IllegalArgumentException.class, "Java heap array",
                () -> SparseMatrix.fromDense(Tensor.wrap(MemorySegment.ofArray(new float[4]), DType.F32, 1, 4), SparseFormat.CSR));
    }

    @Test
    void badMatmulArguments() throws IOException {
        int m = 3, n = 4, k = 8;
        try (Tensor wt = Tensor.of(SparseTestSupport.randomSparse(r, n, k, SparseTestSupport.FORMATS.get(0), 0.5), n, k);
             SparseMatrix w = SparseMatrix.fromDense(wt, SparseFormat.CSR);
             SparseMatrix w8 = SparseMatrix.fromDenseInt8(wt, SparseFormat.CSR);
             Tensor x = Tensor.of(SparseTestSupport.randomFloats(r, m * k, 1f), m, k);
             Tensor x7 = Tensor.of(new float[m * 7], m, 7);
             Tensor xi8 = Tensor.of(new byte[m * k], m, k);
             Tensor vec = Tensor.of(new float[k], k);
             Tensor y = Tensor.allocate(DType.F32, m, n);
             Tensor yi = Tensor.allocate(DType.I32, m, n);
             QuantizedTensor xPerTensor = Quant.quantize(x, QuantScheme.int8PerTensor());
             QuantizedTensor xq = Quant.quantize(x, QuantScheme.int8PerRow());
             Arena arena = Arena.ofConfined()) {
            fails(IllegalArgumentException.class, "x F32[3, 7] has K = 7 but w is [4, 8]: inner dimensions differ",
                    () -> Sparse.matmul(x7, w));
            fails(IllegalArgumentException.class, "x must be F32", () -> Sparse.matmul(xi8, w));
            fails(IllegalArgumentException.class, "rank 2", () -> Sparse.matmul(vec, w));
            fails(IllegalArgumentException.class, "x is null", () -> Sparse.matmul((Tensor) null, w));
            fails(IllegalArgumentException.class, "w is null", () -> Sparse.matmul(x, null));
            fails(IllegalArgumentException.class, "out is null", () -> Sparse.matmul(x, w, null, null));
            fails(IllegalArgumentException.class, "out must be [3, 4] for activations F32[3, 8] but is F32[3, 5]",
                    () -> Sparse.matmul(x, w, null, Tensor.allocate(arena, DType.F32, 3, 5)));
            fails(IllegalArgumentException.class, "out must be F32", () -> Sparse.matmul(x, w, null, yi));
            fails(IllegalArgumentException.class, "bias must hold 4 contiguous elements but has shape F32[5]",
                    () -> Sparse.matmul(x, w, Tensor.allocate(arena, DType.F32, 5), y));
            fails(IllegalArgumentException.class, "bias must be F32",
                    () -> Sparse.matmul(x, w, Tensor.allocate(arena, DType.I32, 4), y));
            fails(IllegalArgumentException.class, "out F32[3, 4] overlaps x",
                    () -> Sparse.matmul(x, w, null, Tensor.wrap(x.segment(), DType.F32, 3, 4)));
            fails(IllegalArgumentException.class, "out F32[3, 4] overlaps bias",
                    () -> {
                        Tensor big = Tensor.allocate(arena, DType.F32, 16);
                        Sparse.matmul(x, w, Tensor.wrap(big.segment().asSlice(0, 16), DType.F32, 4),
                                Tensor.wrap(big.segment().asSlice(8), DType.F32, 3, 4));
                    });
            fails(IllegalArgumentException.class, "has row stride 2 < 4 columns: its rows overlap",
                    () -> Sparse.matmul(x, w, null, Tensor.wrap(y.segment(), DType.F32, new long[] {3, 4}, new long[] {2, 1})));
            fails(IllegalArgumentException.class, "column stride 1",
                    () -> Sparse.matmul(Tensor.wrap(x.segment(), DType.F32, new long[] {3, 4}, new long[] {8, 2}), w));
            // int8 paths
            fails(IllegalArgumentException.class, "x is quantized int8 symmetric per tensor but sparse int8 matmul takes one scale per row",
                    () -> Sparse.matmul(xPerTensor, w8, null));
            fails(IllegalArgumentException.class, "has F32 values: quantized activations need int8 weights",
                    () -> Sparse.matmul(xq, w, null));
            fails(IllegalArgumentException.class, "has F32 values: the int32 output needs int8 weights",
                    () -> Sparse.matmulInt32(xi8, w));
            fails(IllegalArgumentException.class, "xq must be I8", () -> Sparse.matmulInt32(x, w8));
            fails(IllegalArgumentException.class, "out must be I32", () -> Sparse.matmulInt32(xi8, w8, y));
            fails(IllegalArgumentException.class, "out must be [3, 4] for xq I8[3, 8]",
                    () -> Sparse.matmulInt32(xi8, w8, Tensor.allocate(arena, DType.I32, 4, 4)));
            fails(IllegalArgumentException.class, "out I32[3, 4] overlaps xq",
                    () -> {
                        MemorySegment buf = arena.allocate(64, 64);
                        Sparse.matmulInt32(Tensor.wrap(buf.asSlice(0, 24), DType.I8, 3, 8), w8,
                                Tensor.wrap(buf.asSlice(16, 48), DType.I32, 3, 4));
                    });
            fails(IllegalArgumentException.class, "xq I8[3, 7] has K = 7",
                    () -> Sparse.matmulInt32(Tensor.allocate(arena, DType.I8, 3, 7), w8));
            try (Tensor nanX = Tensor.of(new float[] {Float.NaN, 0, 0, 0, 0, 0, 0, 0}, 1, 8)) {
                fails(IllegalArgumentException.class, "not finite", () -> Sparse.matmul(nanX, w8));
            }
            // read-only output
            Path f = Files.write(tmp.resolve("ro.bin"), new byte[4096]);
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                MemorySegment ro = ch.map(FileChannel.MapMode.READ_ONLY, 0, 4096, arena);
                fails(IllegalArgumentException.class, "read-only", () -> Sparse.matmul(x, w, null, Tensor.wrap(ro, DType.F32, 3, 4)));
            }
            fails(IllegalArgumentException.class, "read-only",
                    () -> Sparse.matmul(x, w, null, Tensor.wrap(arena.allocate(48).asReadOnly(), DType.F32, 3, 4)));
            // closed and foreign memory
            Tensor closedX = Tensor.of(new float[m * k], m, k);
            closedX.close();
            fails(IllegalStateException.class, "x F32[3, 8] is closed", () -> Sparse.matmul(closedX, w));
            Tensor closedBias = Tensor.of(new float[n], n);
            closedBias.close();
            fails(IllegalStateException.class, "bias F32[4] is closed", () -> Sparse.matmul(x, w, closedBias));
            Tensor closedOut = Tensor.allocate(DType.F32, m, n);
            closedOut.close();
            fails(IllegalStateException.class, "out F32[3, 4] is closed", () -> Sparse.matmul(x, w, null, closedOut));
            Tensor closedXq = Tensor.of(new byte[m * k], m, k);
            closedXq.close();
            fails(IllegalStateException.class, "xq I8[3, 8] is closed", () -> Sparse.matmulInt32(closedXq, w8));
            Tensor heap = Tensor.wrap(MemorySegment.ofArray(new float[m * k]), DType.F32, m, k);
            fails(IllegalArgumentException.class, "Java heap array", () -> Sparse.matmul(heap, w));
        }
    }

    @Test
    void closedMatrixIsRefused() {
        Tensor wt = Tensor.of(new float[] {1, 0, 0, 2}, 1, 4);
        SparseMatrix w = SparseMatrix.fromDense(wt, SparseFormat.CSR);
        w.close();
        w.close(); // idempotent
        try (Tensor x = Tensor.of(new float[4], 1, 4)) {
            fails(IllegalStateException.class, "is closed", () -> Sparse.matmul(x, w));
            fails(IllegalStateException.class, "is closed", w::toDense);
            fails(IllegalStateException.class, "is closed", w::values);
            fails(IllegalStateException.class, "is closed", w::quantizeInt8);
        }
        org.junit.jupiter.api.Assertions.assertTrue(w.toString().endsWith(", closed]"), w.toString());
        wt.close();
    }
}
