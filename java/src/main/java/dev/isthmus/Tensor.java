package dev.isthmus;

import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Leases;
import dev.isthmus.internal.Resources;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * An n-dimensional array in native memory: shape, strides (in elements), {@link DType}, and a
 * {@link MemorySegment} whose lifetime is an {@link Arena}.
 *
 * <p>Who owns the memory decides what {@link #close()} does:
 * <ul>
 *   <li>{@link #allocate(DType, long...)} and {@link #of(float[], long...)} give a tensor that owns
 *       its memory (a shared arena of its own): {@code close()} frees it;</li>
 *   <li>{@link #allocate(Arena, DType, long...)} and {@link #wrap(MemorySegment, DType, long...)}
 *       borrow memory whose arena the caller controls: {@code close()} does nothing, closing the arena
 *       frees it, and every op refuses a tensor whose arena is closed.</li>
 * </ul>
 * Java arrays cannot be handed to native code without a copy; {@code of(array)} copies once.
 *
 * <p><b>Threads and closing.</b> Ops lease an owned tensor's memory for the length of their native call
 * ({@link #lease()}), so {@code close()} while another thread's op uses it throws
 * {@link IllegalStateException} instead of freeing memory under a kernel, and an op on a closed tensor throws
 * {@code IllegalStateException}. Borrowed memory is not leased: its address reaches native code inside an
 * argument struct, which the FFM linker does not keep alive, so the owner of that {@code Arena} must keep it
 * open until every op using it has returned. Owned tensors are counted by {@link Isthmus#memoryStats()} and,
 * in debug mode, listed by {@link Isthmus#openResources()} until closed.
 *
 * <p><b>Errors.</b> A null {@code dtype}, {@code arena}, {@code segment} or {@code strides} given to a factory is a
 * {@link NullPointerException} naming it; a null or empty shape, a dimension {@code < 1}, a stride {@code < 1},
 * data of the wrong length, a view whose segment is too small (sliced past its end) or whose extent overflows,
 * row bounds out of range and an accessor of another dtype are an {@link IllegalArgumentException} naming the
 * argument; an element index out of range is an {@link IndexOutOfBoundsException}. Memory whose arena is closed
 * is an {@link IllegalStateException} (also when allocating in a closed arena), memory of a confined arena
 * used from another thread a {@link WrongThreadException} (the FFM rules); the ops refuse both up front with an
 * {@link IllegalStateException} naming the argument.
 *
 * <pre>{@code
 * try (Arena arena = Arena.ofConfined()) {
 *     Tensor x = Tensor.allocate(arena, DType.F32, 2, 3);   // zeroed, rows contiguous
 *     x.set(1.5f, 0, 2);
 *     float[] flat = x.toFloatArray();                        // row-major copy
 * }
 * }</pre>
 */
public final class Tensor implements AutoCloseable {
    private final MemorySegment segment;
    private final DType dtype;
    private final long[] shape;
    private final long[] strides;
    private final Arena owned;
    /** For a view (rows()), the tensor whose memory it shows; leases go to it. */
    private final Tensor parent;
    /** Native calls using this tensor's memory (owned tensors only). */
    private final Leases leases = new Leases();
    /** The accounting record of owned memory ({@link Isthmus#memoryStats()}), else null. */
    private final Resources.Handle handle;

    /**
     * Held by every op for the length of its native call: while a lease is open, {@link #close()} of a
     * tensor that owns its memory fails instead of freeing memory native code is using. Tensors that
     * borrow memory get a no-op lease: their arena's owner must not close it during a call.
     */
    public interface Lease extends AutoCloseable {
        /** The lease of borrowed memory: nothing to hold. */
        Lease NONE = () -> {};

        @Override
        void close();
    }

    /**
     * Takes a lease on this tensor's memory (see {@link Lease}); fails if the tensor is closed.
     * Ops do this themselves; call it when handing {@link #segment()} to native code of your own.
     */
    public Lease lease() {
        if (parent != null) return parent.lease();
        if (owned == null) {
            MemorySegment seg = segment; // keeps an automatic arena's memory reachable until close()
            return () -> java.lang.ref.Reference.reachabilityFence(seg);
        }
        Runnable release = leases.acquire(this);
        return release::run;
    }

    private Tensor(MemorySegment segment, DType dtype, long[] shape, long[] strides, Arena owned) {
        this(segment, dtype, shape, strides, owned, null);
    }

    private Tensor(MemorySegment segment, DType dtype, long[] shape, long[] strides, Arena owned, Tensor parent) {
        this.parent = parent;
        this.segment = segment;
        this.dtype = dtype;
        this.shape = shape;
        this.strides = strides;
        this.owned = owned;
        if (owned != null) {
            String what = dtype + Arrays.toString(shape);
            this.handle = Resources.open(this, "Tensor", segment.byteSize(), () -> what);
        } else {
            this.handle = null;
        }
    }

    // ------------------------------------------------------------------ factories

    /** A zeroed, row-major tensor that owns its memory (64-byte aligned); free it with {@link #close()}. */
    public static Tensor allocate(DType dtype, long... shape) {
        Objects.requireNonNull(dtype, "dtype");
        long bytes = byteSizeOf(dtype, checkShape(shape));
        Arena arena = Arena.ofShared();
        try {
            return new Tensor(arena.allocate(Math.max(bytes, 1), 64), dtype, shape.clone(), rowMajor(shape), arena);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** A zeroed, row-major tensor in the caller's arena (freed when that arena closes). */
    public static Tensor allocate(Arena arena, DType dtype, long... shape) {
        Objects.requireNonNull(arena, "arena");
        Objects.requireNonNull(dtype, "dtype");
        long bytes = byteSizeOf(dtype, checkShape(shape));
        return new Tensor(arena.allocate(Math.max(bytes, 1), 64), dtype, shape.clone(), rowMajor(shape), null);
    }

    /** Copies {@code data} (row-major) into a new owned F32 tensor of the given shape. */
    public static Tensor of(float[] data, long... shape) {
        Tensor t = allocate(DType.F32, checkLength(data == null ? -1 : data.length, shape, "data"));
        MemorySegment.copy(data, 0, t.segment, ValueLayout.JAVA_FLOAT, 0, data.length);
        return t;
    }

    /** Copies {@code data} (row-major) into a new owned I8 tensor of the given shape. */
    public static Tensor of(byte[] data, long... shape) {
        Tensor t = allocate(DType.I8, checkLength(data == null ? -1 : data.length, shape, "data"));
        MemorySegment.copy(data, 0, t.segment, ValueLayout.JAVA_BYTE, 0, data.length);
        return t;
    }

    /** Copies {@code data} (row-major) into a new owned I32 tensor of the given shape. */
    public static Tensor of(int[] data, long... shape) {
        Tensor t = allocate(DType.I32, checkLength(data == null ? -1 : data.length, shape, "data"));
        MemorySegment.copy(data, 0, t.segment, ValueLayout.JAVA_INT, 0, data.length);
        return t;
    }

    /** Views an existing segment as a row-major tensor, without copying. */
    public static Tensor wrap(MemorySegment segment, DType dtype, long... shape) {
        Objects.requireNonNull(dtype, "dtype");
        checkShape(shape);
        return wrap(segment, dtype, shape, rowMajor(shape));
    }

    /**
     * Views an existing segment with explicit strides (in elements, each >= 1), without copying. The
     * segment must hold every addressed element.
     */
    public static Tensor wrap(MemorySegment segment, DType dtype, long[] shape, long[] strides) {
        Objects.requireNonNull(segment, "segment");
        Objects.requireNonNull(dtype, "dtype");
        checkShape(shape);
        Objects.requireNonNull(strides, "strides");
        if (strides.length != shape.length)
            throw new IllegalArgumentException("strides " + Arrays.toString(strides) + " do not match shape "
                    + Arrays.toString(shape));
        long last = 0, need;
        for (int i = 0; i < shape.length; i++)
            if (strides[i] < 1)
                throw new IllegalArgumentException("strides must be >= 1, got " + Arrays.toString(strides));
        try {
            for (int i = 0; i < shape.length; i++) last = Math.addExact(last, Math.multiplyExact(shape[i] - 1, strides[i]));
            need = Math.multiplyExact(last + 1, (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("strides " + Arrays.toString(strides) + " over shape "
                    + Arrays.toString(shape) + " of " + dtype + " address more than 2^63 bytes: no segment holds them");
        }
        if (segment.byteSize() < need)
            throw new IllegalArgumentException("segment of " + segment.byteSize() + " bytes is too small for "
                    + dtype + Arrays.toString(shape) + " with strides " + Arrays.toString(strides) + " (needs "
                    + need + " bytes)");
        if (segment.address() % dtype.byteSize() != 0)
            throw new IllegalArgumentException("segment address " + segment.address() + " is not aligned to "
                    + dtype.byteSize() + " bytes for " + dtype);
        return new Tensor(segment.asSlice(0, need), dtype, shape.clone(), strides.clone(), null);
    }

    // ------------------------------------------------------------------ accessors

    public DType dtype() {
        return dtype;
    }

    /** A copy of the shape. */
    public long[] shape() {
        return shape.clone();
    }

    /** A copy of the strides, in elements. */
    public long[] strides() {
        return strides.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long dim(int i) {
        return shape[i];
    }

    public long stride(int i) {
        return strides[i];
    }

    public long elementCount() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    /** The memory: from the first element to just past the last addressed one. */
    public MemorySegment segment() {
        return segment;
    }

    /** True when row-major with no gaps. */
    public boolean isContiguous() {
        return Arrays.equals(strides, rowMajor(shape));
    }

    /** True while the memory can be used (the owning arena is open). */
    public boolean isAlive() {
        return segment.scope().isAlive();
    }

    /** True when this tensor frees its memory on {@link #close()}. */
    public boolean ownsMemory() {
        return owned != null;
    }

    /** Rows [from, to) of a matrix, sharing memory (the view owns nothing). */
    public Tensor rows(long from, long to) {
        if (rank() != 2) throw new IllegalArgumentException("rows() needs a matrix, not " + Checks.shape(this));
        if (from < 0 || to > shape[0] || from >= to)
            throw new IllegalArgumentException("rows [" + from + ", " + to + ") out of " + Checks.shape(this));
        long off = from * strides[0] * dtype.byteSize();
        long[] s = {to - from, shape[1]};
        long need = ((s[0] - 1) * strides[0] + (s[1] - 1) * strides[1] + 1) * dtype.byteSize();
        return new Tensor(segment.asSlice(off, need), dtype, s, strides.clone(), null, parent != null ? parent : this);
    }

    // ------------------------------------------------------------------ element access

    private long offset(long[] idx) {
        if (idx.length != shape.length)
            throw new IllegalArgumentException("index " + Arrays.toString(idx) + " for shape " + Arrays.toString(shape));
        long off = 0;
        for (int i = 0; i < idx.length; i++) {
            if (idx[i] < 0 || idx[i] >= shape[i])
                throw new IndexOutOfBoundsException("index " + Arrays.toString(idx) + " out of " + Checks.shape(this));
            off += idx[i] * strides[i];
        }
        return off;
    }

    private void expect(DType want) {
        if (dtype != want) throw new IllegalArgumentException("tensor is " + dtype + ", not " + want);
    }

    public float getFloat(long... idx) {
        expect(DType.F32);
        return segment.getAtIndex(ValueLayout.JAVA_FLOAT, offset(idx));
    }

    public void set(float value, long... idx) {
        expect(DType.F32);
        segment.setAtIndex(ValueLayout.JAVA_FLOAT, offset(idx), value);
    }

    public byte getByte(long... idx) {
        expect(DType.I8);
        return segment.get(ValueLayout.JAVA_BYTE, offset(idx));
    }

    public void set(byte value, long... idx) {
        expect(DType.I8);
        segment.set(ValueLayout.JAVA_BYTE, offset(idx), value);
    }

    public int getInt(long... idx) {
        expect(DType.I32);
        return segment.getAtIndex(ValueLayout.JAVA_INT, offset(idx));
    }

    public void set(int value, long... idx) {
        expect(DType.I32);
        segment.setAtIndex(ValueLayout.JAVA_INT, offset(idx), value);
    }

    /** A row-major copy of an F32 tensor. */
    public float[] toFloatArray() {
        expect(DType.F32);
        float[] out = new float[Math.toIntExact(elementCount())];
        if (strides[strides.length - 1] != 1) forEachElement((src, dst) -> out[dst] = segment.getAtIndex(ValueLayout.JAVA_FLOAT, src));
        else forEachRow((row, dst) -> MemorySegment.copy(segment, ValueLayout.JAVA_FLOAT, row * 4, out, dst, (int) lastDim()));
        return out;
    }

    /** A row-major copy of an I8 tensor. */
    public byte[] toByteArray() {
        expect(DType.I8);
        byte[] out = new byte[Math.toIntExact(elementCount())];
        if (strides[strides.length - 1] != 1) forEachElement((src, dst) -> out[dst] = segment.get(ValueLayout.JAVA_BYTE, src));
        else forEachRow((row, dst) -> MemorySegment.copy(segment, ValueLayout.JAVA_BYTE, row, out, dst, (int) lastDim()));
        return out;
    }

    /** A row-major copy of an I32 tensor. */
    public int[] toIntArray() {
        expect(DType.I32);
        int[] out = new int[Math.toIntExact(elementCount())];
        if (strides[strides.length - 1] != 1) forEachElement((src, dst) -> out[dst] = segment.getAtIndex(ValueLayout.JAVA_INT, src));
        else forEachRow((row, dst) -> MemorySegment.copy(segment, ValueLayout.JAVA_INT, row * 4, out, dst, (int) lastDim()));
        return out;
    }

    private long lastDim() {
        return shape.length == 0 ? 1 : shape[shape.length - 1];
    }

    private interface RowCopy {
        void copy(long srcElementOffset, int dstIndex);
    }

    /** Visits every element (row-major order) of a tensor whose last stride is not 1: one element at a time. */
    private void forEachElement(RowCopy c) {
        long n = elementCount();
        for (long e = 0; e < n; e++) {
            long off = 0, rem = e;
            for (int i = shape.length - 1; i >= 0; i--) {
                off += (rem % shape[i]) * strides[i];
                rem /= shape[i];
            }
            c.copy(off, Math.toIntExact(e));
        }
    }

    /** Visits every innermost row (whose last stride is 1: the bulk copies). */
    private void forEachRow(RowCopy c) {
        long rows = elementCount() / lastDim();
        long[] idx = new long[shape.length];
        for (long r = 0; r < rows; r++) {
            long off = 0;
            long rem = r;
            for (int i = shape.length - 2; i >= 0; i--) {
                idx[i] = rem % shape[i];
                rem /= shape[i];
                off += idx[i] * strides[i];
            }
            c.copy(off, Math.toIntExact(r * lastDim()));
        }
    }

    /**
     * Frees the memory if this tensor owns it; otherwise does nothing. Idempotent.
     *
     * @throws IllegalStateException if an op on another thread is using the memory right now
     */
    @Override
    public void close() {
        if (owned != null && leases.markClosed(Checks.shape(this))) {
            owned.close();
            handle.close();
        }
    }

    @Override
    public String toString() {
        return "Tensor[" + dtype + Arrays.toString(shape) + (isContiguous() ? "" : " strides " + Arrays.toString(strides))
                + (segment.scope().isAlive() ? "" : " closed") + "]";
    }

    // ------------------------------------------------------------------ helpers

    static long[] rowMajor(long[] shape) {
        long[] s = new long[shape.length];
        long acc = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            s[i] = acc;
            acc *= shape[i];
        }
        return s;
    }

    private static long[] checkShape(long[] shape) {
        if (shape == null || shape.length == 0)
            throw new IllegalArgumentException("shape must have at least one dimension");
        long n = 1;
        for (long d : shape) {
            if (d < 1) throw new IllegalArgumentException("shape " + Arrays.toString(shape) + ": dimensions must be >= 1");
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " overflows a long element count");
            }
        }
        return shape;
    }

    private static long byteSizeOf(DType dtype, long[] shape) {
        long n = 1;
        for (long d : shape) n *= d;
        try {
            return Math.multiplyExact(n, (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " of " + dtype + " overflows");
        }
    }

    private static long[] checkLength(int length, long[] shape, String name) {
        if (length < 0) throw new IllegalArgumentException(name + " is null");
        checkShape(shape);
        long n = 1;
        for (long d : shape) n *= d;
        if (n != length)
            throw new IllegalArgumentException(name + " has " + length + " elements but shape " + Arrays.toString(shape)
                    + " needs " + n);
        return shape;
    }
}
