package dev.isthmus;

import static dev.isthmus.PropertySupport.count;
import static dev.isthmus.PropertySupport.nonZero;
import static dev.isthmus.PropertySupport.refused;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;

/**
 * Properties of {@link Tensor}'s factories, views and element access: copies round-trip, strided views address
 * {@code sum idx[i] * strides[i]}, row views share memory; bad shapes, strides, segments too small for the view
 * (sliced past their end), indices and dtypes are refused with the documented exception naming the argument;
 * a closed tensor refuses element access.
 */
class TensorPropertyTest {
    @AfterContainer
    static void report() {
        PropertySupport.report(TensorPropertyTest.class);
    }

    @Provide
    Arbitrary<Integer> d() {
        return PropertySupport.dim(70);
    }

    @Property
    void copiesRoundTrip(@ForAll("d") int rows, @ForAll("d") int cols, @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        float[] f = nonZero(r, rows * cols, 3);
        byte[] b = PropertySupport.nonZeroInt8(r, rows * cols);
        int[] i = r.ints(rows * cols).map(v -> v == 0 ? 1 : v).toArray();
        try (Tensor tf = Tensor.of(f, rows, cols); Tensor tb = Tensor.of(b, rows, cols); Tensor ti = Tensor.of(i, rows, cols)) {
            assertArrayEquals(f, tf.toFloatArray());
            assertArrayEquals(b, tb.toByteArray());
            assertArrayEquals(i, ti.toIntArray());
            int rr = r.nextInt(rows), cc = r.nextInt(cols);
            assertEquals(f[rr * cols + cc], tf.getFloat(rr, cc));
            assertEquals(b[rr * cols + cc], tb.getByte(rr, cc));
            assertEquals(i[rr * cols + cc], ti.getInt(rr, cc));
            assertTrue(tf.isContiguous() && tf.ownsMemory() && tf.isAlive());
            assertEquals((long) rows * cols, tf.elementCount());
            assertEquals(2, tf.rank());
            assertArrayEquals(new long[] {cols, 1}, tf.strides());
            // row views share memory with their parent
            int from = r.nextInt(rows), to = from + 1 + r.nextInt(rows - from);
            Tensor v = tf.rows(from, to);
            assertFalse(v.ownsMemory());
            assertArrayEquals(java.util.Arrays.copyOfRange(f, from * cols, to * cols), v.toFloatArray());
            v.set(42f, 0, cc);
            assertEquals(42f, tf.getFloat(from, cc));
        }
    }

    @Property
    void stridedViewsAddressByStrides(@ForAll @IntRange(min = 1, max = 4) int rank, @ForAll long seed) {
        count(getClass());
        Random r = new Random(seed);
        long[] shape = new long[rank], strides = new long[rank];
        long last = 0;
        for (int i = 0; i < rank; i++) {
            shape[i] = 1 + r.nextInt(6);
            strides[i] = 1 + r.nextInt(40);
            last += (shape[i] - 1) * strides[i];
        }
        if (r.nextBoolean()) strides[rank - 1] = 1; // the bulk-copy path of toFloatArray
        last = 0;
        for (int i = 0; i < rank; i++) last += (shape[i] - 1) * strides[i];
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate((last + 1) * 4, 64);
            for (long e = 0; e <= last; e++) seg.setAtIndex(ValueLayout.JAVA_FLOAT, e, e + 1);
            Tensor t = Tensor.wrap(seg, DType.F32, shape, strides);
            float[] flat = t.toFloatArray();
            long[] idx = new long[rank];
            for (int n = 0; n < flat.length; n++) {
                long rem = n, off = 0;
                for (int i = rank - 1; i >= 0; i--) {
                    idx[i] = rem % shape[i];
                    rem /= shape[i];
                    off += idx[i] * strides[i];
                }
                assertEquals(off + 1, flat[n], 0f);
                assertEquals(off + 1, t.getFloat(idx), 0f);
            }
            // the same view on a segment one element short is sliced past its end: refused
            MemorySegment shortSeg = seg.asSlice(0, last * 4);
            refused(IllegalArgumentException.class, "segment", () -> Tensor.wrap(shortSeg, DType.F32, shape, strides));
        }
    }

    @Property
    void badShapesStridesAndIndicesAreRefused(@ForAll @IntRange(min = 1, max = 3) int rank, @ForAll long seed,
                                              @ForAll @IntRange(max = 6) int what) {
        count(getClass());
        Random r = new Random(seed);
        long[] shape = new long[rank];
        for (int i = 0; i < rank; i++) shape[i] = 1 + r.nextInt(5);
        int at = r.nextInt(rank);
        long[] bad = shape.clone();
        bad[at] = -r.nextInt(3); // 0 or negative
        DType dt = DType.values()[r.nextInt(3)];
        switch (what) {
            case 0 -> refused(IllegalArgumentException.class, "shape", () -> Tensor.allocate(dt, bad));
            case 1 -> {
                try (Arena arena = Arena.ofConfined()) {
                    refused(IllegalArgumentException.class, "shape", () -> Tensor.allocate(arena, dt, bad));
                    MemorySegment seg = arena.allocate(1024, 64);
                    refused(IllegalArgumentException.class, "shape", () -> Tensor.wrap(seg, dt, bad));
                    long[] strides = new long[rank];
                    java.util.Arrays.fill(strides, 1);
                    strides[at] = -r.nextInt(3);
                    refused(IllegalArgumentException.class, "strides", () -> Tensor.wrap(seg, dt, shape, strides));
                    refused(IllegalArgumentException.class, "strides", () -> Tensor.wrap(seg, dt, shape, new long[rank + 1]));
                    // a stride whose span overflows a long
                    long[] huge = new long[rank];
                    java.util.Arrays.fill(huge, 1L << 62);
                    long[] big = shape.clone();
                    big[at] = 5;
                    refused(IllegalArgumentException.class, "strides", () -> Tensor.wrap(seg, dt, big, huge));
                }
            }
            case 2 -> {
                long[] ovf = shape.clone();
                ovf[at] = Long.MAX_VALUE / 2;
                long[] ovf2 = java.util.Arrays.copyOf(ovf, rank + 1);
                ovf2[rank] = 3;
                refused(IllegalArgumentException.class, "shape", () -> Tensor.allocate(dt, ovf2));
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment seg = arena.allocate(64, 64);
                    refused(IllegalArgumentException.class, "shape", () -> Tensor.wrap(seg, dt, ovf2));
                    refused(IllegalArgumentException.class, "segment", () -> Tensor.wrap(seg, dt, Long.MAX_VALUE / 2));
                }
            }
            case 3 -> {
                try (Tensor t = Tensor.allocate(dt, shape)) {
                    long[] idx = new long[rank];
                    idx[at] = r.nextBoolean() ? shape[at] + r.nextInt(3) : -1 - r.nextInt(3);
                    switch (dt) {
                        case F32 -> {
                            refused(IndexOutOfBoundsException.class, "index", () -> t.getFloat(idx));
                            refused(IndexOutOfBoundsException.class, "index", () -> t.set(1f, idx));
                            refused(IllegalArgumentException.class, "index", () -> t.getFloat(new long[rank + 1]));
                            refused(IllegalArgumentException.class, "tensor", () -> t.getInt(new long[rank]));
                        }
                        case I8 -> {
                            refused(IndexOutOfBoundsException.class, "index", () -> t.getByte(idx));
                            refused(IndexOutOfBoundsException.class, "index", () -> t.set((byte) 1, idx));
                            refused(IllegalArgumentException.class, "tensor", () -> t.toFloatArray());
                        }
                        case I32 -> {
                            refused(IndexOutOfBoundsException.class, "index", () -> t.getInt(idx));
                            refused(IndexOutOfBoundsException.class, "index", () -> t.set(1, idx));
                            refused(IllegalArgumentException.class, "tensor", () -> t.toByteArray());
                        }
                    }
                }
            }
            case 4 -> {
                try (Tensor t = Tensor.allocate(dt, shape[0], shape[rank - 1])) {
                    long from = r.nextInt(4) - 1, to = from + r.nextInt(3) - 1;
                    if (from < 0 || to > shape[0] || from >= to)
                        refused(IllegalArgumentException.class, "rows", () -> t.rows(from, to));
                    refused(IllegalArgumentException.class, "rows", () -> t.rows(0, shape[0] + 1));
                }
                try (Tensor t3 = Tensor.allocate(dt, 2, 2, 2)) {
                    refused(IllegalArgumentException.class, "rows", () -> t3.rows(0, 1));
                }
            }
            case 5 -> {
                // null arguments: NullPointerException naming them (factories), IllegalArgumentException for data
                refused(NullPointerException.class, "dtype", () -> Tensor.allocate((DType) null, shape));
                refused(NullPointerException.class, "arena", () -> Tensor.allocate(null, dt, shape));
                refused(IllegalArgumentException.class, "data", () -> Tensor.of((float[]) null, shape));
                refused(IllegalArgumentException.class, "data", () -> Tensor.of((byte[]) null, shape));
                refused(IllegalArgumentException.class, "data", () -> Tensor.of((int[]) null, shape));
                refused(IllegalArgumentException.class, "data", () -> Tensor.of(new float[(int) product(shape) + 1], shape));
                refused(NullPointerException.class, "segment", () -> Tensor.wrap(null, dt, shape, new long[rank]));
                refused(IllegalArgumentException.class, "shape", () -> Tensor.allocate(dt, (long[]) null));
                refused(IllegalArgumentException.class, "shape", () -> Tensor.allocate(dt));
            }
            default -> {
                // lifetime: a closed tensor refuses element access and copies; closing is idempotent
                Tensor t = Tensor.allocate(DType.F32, shape);
                t.close();
                t.close();
                assertFalse(t.isAlive());
                refused(IllegalStateException.class, "", () -> t.getFloat(new long[rank]));
                refused(IllegalStateException.class, "", t::toFloatArray);
                try (Arena a = Arena.ofConfined()) {
                    Tensor b = Tensor.allocate(a, DType.F32, shape);
                    b.close(); // borrowed memory: close() does nothing
                    assertTrue(b.isAlive());
                }
                Arena gone = Arena.ofConfined();
                gone.close();
                refused(IllegalStateException.class, "", () -> Tensor.allocate(gone, DType.F32, shape));
            }
        }
    }

    private static long product(long[] s) {
        long n = 1;
        for (long d : s) n *= d;
        return n;
    }

    /** Regression: a wrap whose strides span more than a long failed with ArithmeticException, not the documented
     *  IllegalArgumentException. */
    @Example
    void wrapWithOverflowingStridesIsAnIllegalArgument() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(64, 64);
            refused(IllegalArgumentException.class, "strides",
                    () -> Tensor.wrap(seg, DType.F32, new long[] {4}, new long[] {1L << 62}));
            refused(IllegalArgumentException.class, "segment",
                    () -> Tensor.wrap(seg, DType.F32, new long[] {Long.MAX_VALUE / 2}, new long[] {1}));
        }
    }

    /** Regression: copying out a tensor whose last stride is not 1 threw an undocumented UnsupportedOperationException. */
    @Example
    void copiesOfColumnViewsWork() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1, 2, 3, 4, 5, 6);
            Tensor col = Tensor.wrap(seg, DType.F32, new long[] {3, 1}, new long[] {2, 2});
            Tensor every2 = Tensor.wrap(seg, DType.F32, new long[] {3}, new long[] {2});
            assertArrayEquals(new float[] {1, 3, 5}, every2.toFloatArray());
            assertArrayEquals(new float[] {1, 3, 5}, col.toFloatArray());
        }
    }
}
