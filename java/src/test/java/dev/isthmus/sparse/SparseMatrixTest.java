package dev.isthmus.sparse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.DType;
import dev.isthmus.Isthmus;
import dev.isthmus.Tensor;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;
import dev.isthmus.sparse.SparseTestSupport.Fmt;

import java.util.Random;

import org.junit.jupiter.api.Test;

/**
 * SparseMatrix construction and read-back: exact dense -> format -> dense round trips for every format,
 * dtype and sparsity, the documented structure of each format (CSR drops zeros, BSR keeps blocks with a
 * nonzero, 2:4 fills zeros at the lowest free indices), the wrap API against hand-built arrays, the
 * accessors and toString.
 */
class SparseMatrixTest {
    private static int[] bits(float[] a) {
        int[] b = new int[a.length];
        for (int i = 0; i < a.length; i++) b[i] = Float.floatToRawIntBits(a[i] == 0f ? 0f : a[i]);
        return b;
    }

    @Test
    void roundTripsAreExactForEveryFormatAndDtype() {
        Random r = new Random(7);
        int[][] shapes = {{4, 8}, {1, 16}, {12, 40}, {36, 72}, {8, 128}};
        int cases = 0;
        for (Fmt f : SparseTestSupport.FORMATS)
            for (double s : SparseTestSupport.SPARSITIES)
                for (int[] nk : shapes) {
                    int n = nk[0] - nk[0] % f.rowMultiple() == 0 ? f.rowMultiple() : nk[0] - nk[0] % f.rowMultiple();
                    int k = nk[1];
                    float[] w = SparseTestSupport.randomSparse(r, n, k, f, s);
                    String what = f + " [" + n + ", " + k + "] s=" + s;
                    try (Tensor wt = Tensor.of(w, n, k); SparseMatrix ws = SparseMatrix.fromDense(wt, f.format(), f.block());
                         Tensor back = ws.toDense()) {
                        assertArrayEquals(bits(w), bits(back.toFloatArray()), what + ": F32 round trip");
                        try (SparseMatrix again = rewrap(ws); Tensor back2 = again.toDense()) {
                            assertArrayEquals(bits(w), bits(back2.toFloatArray()), what + ": exchange arrays round trip");
                        }
                        try (QuantizedTensor q = Quant.quantize(wt, QuantScheme.int8PerRow()); Tensor deq = Quant.dequantize(q);
                             SparseMatrix w8 = SparseMatrix.fromDenseInt8(wt, f.format(), f.block());
                             SparseMatrix w8b = ws.quantizeInt8(); Tensor back8 = w8.toDense(); Tensor back8b = w8b.toDense()) {
                            assertArrayEquals(bits(deq.toFloatArray()), bits(back8.toFloatArray()), what + ": S8 round trip");
                            assertArrayEquals(bits(deq.toFloatArray()), bits(back8b.toFloatArray()), what + ": quantizeInt8");
                            assertEquals(ws.nnz(), w8.nnz(), what + ": S8 keeps the F32 structure");
                            assertArrayEquals(w8.int8Values(), w8b.int8Values(), what);
                            assertArrayEquals(q.scales().toFloatArray(), w8.rowScales(), what + ": per-row scales");
                            try (SparseMatrix again8 = rewrap(w8); Tensor b3 = again8.toDense()) {
                                assertArrayEquals(bits(back8.toFloatArray()), bits(b3.toFloatArray()), what + ": S8 arrays");
                            }
                        }
                        cases++;
                    }
                }
        System.out.println("SparseMatrixTest round trips: " + cases);
    }

    /** The same matrix again, through the public wrap API and the accessors' copies. */
    private static SparseMatrix rewrap(SparseMatrix w) {
        boolean f32 = w.dtype() == DType.F32;
        return switch (w.format()) {
            case CSR -> f32 ? SparseMatrix.csr(w.n(), w.k(), w.rowPtr(), w.colIdx(), w.values())
                    : SparseMatrix.csr(w.n(), w.k(), w.rowPtr(), w.colIdx(), w.int8Values(), w.rowScales());
            case BSR -> f32 ? SparseMatrix.bsr(w.n(), w.k(), w.blockShape(), w.rowPtr(), w.colIdx(), w.values())
                    : SparseMatrix.bsr(w.n(), w.k(), w.blockShape(), w.rowPtr(), w.colIdx(), w.int8Values(), w.rowScales());
            case TWO_FOUR -> f32 ? SparseMatrix.twoFour(w.n(), w.k(), w.values(), w.meta())
                    : SparseMatrix.twoFour(w.n(), w.k(), w.int8Values(), w.meta(), w.rowScales());
        };
    }

    @Test
    void csrDropsZerosAndKeepsRowOrder() {
        float[] w = {0, 1.5f, 0, -2f,
                     0, 0, 0, 0,
                     -0f, 0, 3f, 0};
        try (Tensor wt = Tensor.of(w, 3, 4); SparseMatrix s = SparseMatrix.fromDense(wt, SparseFormat.CSR)) {
            assertArrayEquals(new long[] {0, 2, 2, 3}, s.rowPtr());
            assertArrayEquals(new int[] {1, 3, 2}, s.colIdx());
            assertArrayEquals(new float[] {1.5f, -2f, 3f}, s.values());
            assertEquals(3, s.nnz());
            assertEquals(3.0 / 12, s.density(), 1e-15);
            assertEquals(SparseFormat.CSR, s.format());
            assertEquals(DType.F32, s.dtype());
            assertNull(s.blockShape());
            assertEquals(Isthmus.isa(), s.isa());
            assertEquals(4 * 8 + 3 * 4 + 3 * 4, s.exchangeBytes());
            assertTrue(s.packedBytes() > 0);
            assertThrows(IllegalStateException.class, s::meta);
            assertThrows(IllegalStateException.class, s::int8Values);
            assertThrows(IllegalStateException.class, s::rowScales);
            assertTrue(s.toString().startsWith("SparseMatrix[CSR F32 [3, 4], nnz 3"), s.toString());
        }
    }

    @Test
    void bsrKeepsEveryBlockWithANonzeroAndItsZeros() {
        float[] w = new float[4 * 8];
        w[1] = 1f;          // block row 0, block col 0 (1x4) / block (0, 0) (4x4)
        w[3 * 8 + 6] = 2f;  // row 3, col 6: block col 1
        try (Tensor wt = Tensor.of(w, 4, 8);
             SparseMatrix b14 = SparseMatrix.fromDense(wt, SparseFormat.BSR, BlockShape.B1x4);
             SparseMatrix b44 = SparseMatrix.fromDense(wt, SparseFormat.BSR, BlockShape.B4x4);
             SparseMatrix b18 = SparseMatrix.fromDense(wt, SparseFormat.BSR, BlockShape.B1x8)) {
            assertArrayEquals(new long[] {0, 1, 1, 1, 2}, b14.rowPtr());
            assertArrayEquals(new int[] {0, 1}, b14.colIdx());
            assertArrayEquals(new float[] {0, 1f, 0, 0, 0, 0, 2f, 0}, b14.values());
            assertEquals(8, b14.nnz());
            assertSame(BlockShape.B1x4, b14.blockShape());
            assertArrayEquals(new long[] {0, 2}, b44.rowPtr());
            assertArrayEquals(new int[] {0, 1}, b44.colIdx());
            assertEquals(32, b44.nnz());
            float[] v = b44.values();
            assertEquals(1f, v[1]);          // block 0, row 0, col 1
            assertEquals(2f, v[16 + 3 * 4 + 2]); // block 1, row 3, col 2
            assertArrayEquals(new long[] {0, 1, 1, 1, 2}, b18.rowPtr());
            assertArrayEquals(new int[] {0, 0}, b18.colIdx());
            assertTrue(b44.toString().contains("BSR 4x4 F32 [4, 8]"), b44.toString());
        }
    }

    @Test
    void twoFourFillsZerosAtTheLowestFreeIndices() {
        // groups: {a,b,0,0} {0,0,0,0} {0,0,0,c} {0,d,0,e}, then {f,0,0,0}
        float[] w = {1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 4, 0, 5, 6, 0, 0, 0};
        try (Tensor wt = Tensor.of(w, 1, 20); SparseMatrix s = SparseMatrix.fromDense(wt, SparseFormat.TWO_FOUR)) {
            assertArrayEquals(new float[] {1, 2, 0, 0, 0, 3, 4, 5, 6, 0}, s.values());
            int g0 = 0 | 1 << 2, g1 = 0 | 1 << 2, g2 = 0 | 3 << 2, g3 = 1 | 3 << 2, g4 = 0 | 1 << 2;
            short[] meta = {(short) (g0 | g1 << 4 | g2 << 8 | g3 << 12), (short) g4};
            assertArrayEquals(meta, s.meta());
            assertEquals(10, s.nnz());
            assertThrows(IllegalStateException.class, s::rowPtr);
            assertThrows(IllegalStateException.class, s::colIdx);
            assertTrue(s.toString().startsWith("SparseMatrix[2:4 F32 [1, 20]"), s.toString());
        }
    }

    @Test
    void wrapApiBuildsWhatItIsGiven() {
        // W = [[0, 2, 0, 0, 0, 0, 0, 0],
        //      [1, 0, 0, 0, 0, 0, 0, -3]]
        float[] dense = {0, 2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, -3};
        try (SparseMatrix c = SparseMatrix.csr(2, 8, new long[] {0, 1, 3}, new int[] {1, 0, 7}, new float[] {2, 1, -3});
             Tensor d = c.toDense()) {
            assertArrayEquals(dense, d.toFloatArray());
        }
        try (SparseMatrix b = SparseMatrix.bsr(2, 8, BlockShape.B1x4, new long[] {0, 1, 3}, new int[] {0, 0, 1},
                new float[] {0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, -3}); Tensor d = b.toDense()) {
            assertArrayEquals(dense, d.toFloatArray());
        }
        short m0 = (short) ((0 | 1 << 2) | (0 | 1 << 2) << 4), m1 = (short) ((0 | 1 << 2) | (0 | 3 << 2) << 4);
        try (SparseMatrix t = SparseMatrix.twoFour(2, 8, new float[] {0, 2, 0, 0, 1, 0, 0, -3}, new short[] {m0, m1});
             Tensor d = t.toDense()) {
            assertArrayEquals(dense, d.toFloatArray());
        }
        try (SparseMatrix c8 = SparseMatrix.csr(2, 8, new long[] {0, 1, 3}, new int[] {1, 0, 7}, new byte[] {127, 1, -127},
                new float[] {0.5f, 0.25f}); Tensor d = c8.toDense()) {
            assertArrayEquals(new float[] {0, 63.5f, 0, 0, 0, 0, 0, 0, 0.25f, 0, 0, 0, 0, 0, 0, -31.75f}, d.toFloatArray());
            assertEquals(DType.I8, c8.dtype());
            assertArrayEquals(new float[] {0.5f, 0.25f}, c8.rowScales());
            assertThrows(IllegalStateException.class, c8::values);
            assertThrows(IllegalStateException.class, c8::quantizeInt8);
        }
        try (SparseMatrix empty = SparseMatrix.csr(3, 5, new long[4], new int[0], new float[0]); Tensor d = empty.toDense()) {
            assertArrayEquals(new float[15], d.toFloatArray());
            assertEquals(0, empty.nnz());
            assertEquals(0.0, empty.density());
        }
    }

    @Test
    void enumsMatchTheNativeConstants() {
        assertEquals(dev.isthmus.bindings.Isthmus.ISTHMUS_SPARSE_CSR(), SparseFormat.CSR.code());
        assertEquals(dev.isthmus.bindings.Isthmus.ISTHMUS_SPARSE_BSR(), SparseFormat.BSR.code());
        assertEquals(dev.isthmus.bindings.Isthmus.ISTHMUS_SPARSE_2_4(), SparseFormat.TWO_FOUR.code());
        assertEquals(dev.isthmus.bindings.Isthmus.ISTHMUS_PRUNE_PER_ROW(), Pruning.Structure.PER_ROW.ordinal());
        assertEquals(dev.isthmus.bindings.Isthmus.ISTHMUS_PRUNE_GLOBAL(), Pruning.Structure.GLOBAL.ordinal());
        assertEquals(dev.isthmus.bindings.Isthmus.ISTHMUS_PRUNE_N_M(), Pruning.Structure.N_M.ordinal());
        assertEquals(dev.isthmus.bindings.Isthmus.ISTHMUS_PRUNE_BLOCK(), Pruning.Structure.BLOCK.ordinal());
        assertSame(BlockShape.B1x4, BlockShape.of(1, 4));
        assertSame(BlockShape.B1x8, BlockShape.of(1, 8));
        assertSame(BlockShape.B4x4, BlockShape.of(4, 4));
        assertEquals("4x4", BlockShape.B4x4.toString());
        assertEquals("2:4", SparseFormat.TWO_FOUR.toString());
    }

    @Test
    void denseFromAStridedView() {
        Random r = new Random(3);
        float[] big = SparseTestSupport.randomSparse(r, 8, 16, SparseTestSupport.FORMATS.get(0), 0.5);
        try (Tensor t = Tensor.of(big, 8, 16)) {
            Tensor view = Tensor.wrap(t.segment(), DType.F32, new long[] {4, 12}, new long[] {32, 1}); // rows 0, 2, 4, 6
            try (SparseMatrix s = SparseMatrix.fromDense(view, SparseFormat.CSR); Tensor d = s.toDense()) {
                float[] got = d.toFloatArray();
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 12; j++) assertEquals(big[2 * i * 16 + j], got[i * 12 + j]);
            }
        }
    }
}
