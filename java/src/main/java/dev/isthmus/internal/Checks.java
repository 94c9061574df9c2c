package dev.isthmus.internal;

import dev.isthmus.DType;
import dev.isthmus.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/** Argument checks shared by the public entries; every message names the argument and its shape. */
public final class Checks {
    private Checks() {}

    public static <T> T notNull(T value, String name) {
        if (value == null) throw new IllegalArgumentException(name + " is null");
        return value;
    }

    /** A live, reachable, native rank-2 tensor of the given dtype whose rows are contiguous. */
    public static Tensor matrix(Tensor t, String name, DType dtype) {
        notNull(t, name);
        usable(t, name);
        if (t.dtype() != dtype)
            throw new IllegalArgumentException(name + " must be " + dtype + " but is " + t.dtype() + " " + shape(t));
        return rowMajorMatrix(t, name);
    }

    /** An output: a matrix as above whose memory may be written. */
    public static Tensor output(Tensor t, String name, DType dtype) {
        matrix(t, name, dtype);
        if (t.segment().isReadOnly())
            throw new IllegalArgumentException(name + " " + shape(t) + " is read-only memory and cannot take a result");
        return t;
    }

    /** out must not share any byte with the segment {@code in} (e.g. packed weights). */
    public static void noOverlap(Tensor out, String outName, MemorySegment in, String inName) {
        long a0 = out.segment().address(), a1 = a0 + out.segment().byteSize();
        long b0 = in.address(), b1 = b0 + in.byteSize();
        if (a0 < b1 && b0 < a1) throw new IllegalArgumentException(outName + " " + shape(out) + " overlaps " + inName);
    }

    /** A live, reachable, native vector of {@code length} elements of the given dtype (contiguous). */
    public static Tensor vector(Tensor t, String name, DType dtype, long length) {
        notNull(t, name);
        usable(t, name);
        if (t.dtype() != dtype)
            throw new IllegalArgumentException(name + " must be " + dtype + " but is " + t.dtype() + " " + shape(t));
        if (t.elementCount() != length || (t.rank() > 1 && !t.isContiguous()))
            throw new IllegalArgumentException(name + " must hold " + length + " contiguous elements but has shape "
                    + shape(t));
        if (t.rank() == 1 && t.stride(0) != 1)
            throw new IllegalArgumentException(name + " must be contiguous but has stride " + t.stride(0));
        return t;
    }

    /** Open arena, accessible from this thread, off-heap memory, on the CPU. */
    public static void usable(Tensor t, String name) {
        if (!t.device().isCpu())
            throw new IllegalArgumentException(name + " " + shape(t) + " is on " + t.device() + " but this operation runs "
                    + "on the CPU: copy it with to(Device.cpu()), or use the operation's CUDA form");
        if (!t.segment().scope().isAlive())
            throw new IllegalStateException(name + " " + shape(t) + " is closed: its arena or tensor was closed");
        if (!t.segment().isAccessibleBy(Thread.currentThread()))
            throw new IllegalStateException(name + " " + shape(t) + " belongs to a confined arena of another thread");
        if (!t.segment().isNative())
            throw new IllegalArgumentException(name + " " + shape(t) + " is backed by a Java heap array: native kernels "
                    + "need off-heap memory (use Tensor.of(array), which copies, or allocate from an Arena)");
    }

    /** out must not share any byte with in (the kernels read inputs while writing outputs). */
    public static void noOverlap(Tensor out, String outName, Tensor in, String inName) {
        if (in == null) return;
        long a0 = out.segment().address(), a1 = a0 + out.segment().byteSize();
        long b0 = in.segment().address(), b1 = b0 + in.segment().byteSize();
        if (a0 < b1 && b0 < a1)
            throw new IllegalArgumentException(outName + " " + shape(out) + " overlaps " + inName + " " + shape(in));
    }

    /**
     * Per-head rows: F32 {@code [rows, heads * headDim]} or {@code [rows, heads, headDim]}, the heads of
     * one row contiguous, rows at any stride {@code >= heads * headDim} (so a view of a fused QKV buffer
     * fits). Returns the row stride in elements.
     */
    public static long headRows(Tensor t, String name, long rows, long heads, long headDim) {
        notNull(t, name);
        usable(t, name);
        long cols = heads * headDim;
        String want = name + " must be F32[" + rows + ", " + cols + "] or F32[" + rows + ", " + heads + ", " + headDim
                + "]";
        if (t.dtype() != DType.F32) throw new IllegalArgumentException(want + " but is " + shape(t));
        if (t.rank() == 2) {
            if (t.dim(0) != rows || t.dim(1) != cols) throw new IllegalArgumentException(want + " but is " + shape(t));
            if (t.stride(1) != 1)
                throw new IllegalArgumentException(name + " " + shape(t) + " must have contiguous rows (column stride 1)"
                        + " but has strides " + Arrays.toString(t.strides()));
        } else if (t.rank() == 3) {
            if (t.dim(0) != rows || t.dim(1) != heads || t.dim(2) != headDim)
                throw new IllegalArgumentException(want + " but is " + shape(t));
            if (t.stride(2) != 1 || (heads > 1 && t.stride(1) != headDim))
                throw new IllegalArgumentException(name + " " + shape(t) + " must have the heads of a row contiguous"
                        + " (strides [ld, " + headDim + ", 1]) but has strides " + Arrays.toString(t.strides()));
        } else {
            throw new IllegalArgumentException(want + " but is " + shape(t));
        }
        if (rows > 1 && t.stride(0) < cols)
            throw new IllegalArgumentException(name + " " + shape(t) + " has row stride " + t.stride(0) + " < " + cols
                    + ": its rows overlap");
        return rows > 1 ? t.stride(0) : Math.max(t.stride(0), cols);
    }

    /** Memory a kernel may write. */
    public static Tensor writable(Tensor t, String name) {
        if (t.segment().isReadOnly())
            throw new IllegalArgumentException(name + " " + shape(t) + " is read-only memory and cannot take a result");
        return t;
    }

    /**
     * out must not share an element with in. Row-strided matrices with the same row stride whose columns
     * interleave (K and V views of one fused buffer) do not overlap; anything else whose byte ranges
     * intersect does.
     */
    public static void noRowOverlap(Tensor out, String outName, long ldOut, long colsOut, Tensor in, String inName,
                                    long ldIn, long colsIn) {
        if (in == null) return;
        long a0 = out.segment().address(), a1 = a0 + out.segment().byteSize();
        long b0 = in.segment().address(), b1 = b0 + in.segment().byteSize();
        if (a1 <= b0 || b1 <= a0) return;
        long es = out.dtype().byteSize();
        if (ldOut == ldIn && in.dtype().byteSize() == es && (b0 - a0) % es == 0) {
            long r = Math.floorMod((b0 - a0) / es, ldOut); // where in's row starts within out's row period
            if (r >= colsOut && r + colsIn <= ldOut) return;
        }
        throw new IllegalArgumentException(outName + " " + shape(out) + " overlaps " + inName + " " + shape(in));
    }

    // ------------------------------------------------------------------ CUDA tensors

    /** A tensor on {@code device}, else "name is on X but other is on Y" (the mixing-devices error). */
    public static void sameDevice(Tensor t, String name, dev.isthmus.Device device, String otherName) {
        if (!t.device().equals(device))
            throw new IllegalArgumentException(name + " is on " + t.device() + " but " + otherName + " is on " + device
                    + ": the arguments of an operation must be on one device");
    }

    /** A live CUDA matrix of one of {@code dtypes} with contiguous rows (row stride >= columns). */
    public static Tensor deviceMatrix(Tensor t, String name, DType... dtypes) {
        notNull(t, name);
        deviceUsable(t, name);
        if (!Arrays.asList(dtypes).contains(t.dtype()))
            throw new IllegalArgumentException(name + " must be " + (dtypes.length == 1 ? dtypes[0] : "one of "
                    + Arrays.toString(dtypes)) + " but is " + shape(t) + " on " + t.device());
        return rowMajorMatrix(t, name);
    }

    /** A live, contiguous CUDA tensor of {@code length} elements of {@code dtype}. */
    public static Tensor deviceVector(Tensor t, String name, DType dtype, long length) {
        notNull(t, name);
        deviceUsable(t, name);
        if (t.dtype() != dtype)
            throw new IllegalArgumentException(name + " must be " + dtype + " but is " + shape(t) + " on " + t.device());
        if (t.elementCount() != length || !t.isContiguous())
            throw new IllegalArgumentException(name + " must hold " + length + " contiguous elements but has shape "
                    + shape(t) + (t.isContiguous() ? "" : " with strides " + Arrays.toString(t.strides())));
        return t;
    }

    /** A CUDA tensor that is not closed. */
    public static void deviceUsable(Tensor t, String name) {
        if (!t.device().isCuda())
            throw new IllegalArgumentException(name + " " + shape(t) + " is on " + t.device() + ", not a CUDA device");
        if (!t.isAlive()) throw new IllegalStateException(name + " " + shape(t) + " on " + t.device() + " is closed");
    }

    /** First and one-past-last device address of a CUDA tensor's elements. */
    private static long[] extent(Tensor t) {
        long last = 0;
        for (int i = 0; i < t.rank(); i++) last += (t.dim(i) - 1) * t.stride(i);
        long a = t.devicePointer();
        return new long[] {a, a + (last + 1) * t.dtype().byteSize()};
    }

    /** out must not share a byte with in (CUDA tensors of one device; in may be null). */
    public static void noDeviceOverlap(Tensor out, String outName, Tensor in, String inName) {
        if (in == null) return;
        long[] a = extent(out), b = extent(in);
        if (Long.compareUnsigned(a[0], b[1]) < 0 && Long.compareUnsigned(b[0], a[1]) < 0)
            throw new IllegalArgumentException(outName + " " + shape(out) + " overlaps " + inName + " " + shape(in)
                    + " on " + out.device());
    }

    public static String shape(Tensor t) {
        return t.dtype() + Arrays.toString(t.shape());
    }

    /** t is a rank-2 tensor whose rows are contiguous and do not overlap (the layout every matrix kernel takes). */
    private static Tensor rowMajorMatrix(Tensor t, String name) {
        if (t.rank() != 2)
            throw new IllegalArgumentException(name + " must be a matrix (rank 2) but has shape " + shape(t));
        if (t.stride(1) != 1)
            throw new IllegalArgumentException(name + " must have contiguous rows (column stride 1) but has strides "
                    + Arrays.toString(t.strides()));
        if (t.dim(0) > 1 && t.stride(0) < t.dim(1))
            throw new IllegalArgumentException(name + " " + shape(t) + " has row stride " + t.stride(0)
                    + " < " + t.dim(1) + " columns: its rows overlap");
        return t;
    }
}
