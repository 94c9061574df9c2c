package dev.isthmus;

import dev.isthmus.bindings.cuda.IsthmusCuda;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Cleanup;
import dev.isthmus.internal.Cuda;
import dev.isthmus.internal.Leases;
import dev.isthmus.internal.Resources;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * An n-dimensional array in native memory: shape, strides (in elements), {@link DType}, and a
 * {@link MemorySegment} whose lifetime is an {@link Arena}; or, on a CUDA {@link Device}, device memory
 * ({@link #allocate(DType, Device, long...)}, {@link #wrapDevicePointer}, {@link #to(Device)}) that the host cannot
 * read: its {@link #device()} says where, {@link #devicePointer()} gives the address, copies go through
 * {@link #to(Device)} and {@link #copyFrom(Tensor, Stream)}, and host accessors throw. Every device tensor, wrapped
 * ones included, is closed by {@link #close()} (freeing only memory it owns).
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
 * {@link NullPointerException} naming it (a null {@link Device} is an {@link IllegalArgumentException}
 * {@code "device is null"}, as everywhere in the CUDA API); a null or empty shape, a dimension {@code < 1}, a stride {@code < 1},
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
    /** Where the memory is: the CPU (segment != null) or a CUDA device (segment == null, deviceAddress != 0). */
    private final Device device;
    /** Device address of the first element (CUDA tensors), else 0. */
    private final long deviceAddress;
    /** Bytes from the first element to just past the last addressed one (CUDA tensors), else 0. */
    private final long deviceBytes;
    /** True when this CUDA tensor frees its device memory on close() (isthmus_cuda_malloc'd). */
    private final boolean ownsDevice;

    /**
     * Held by every op for the length of its native call: while a lease is open, {@link #close()} of a
     * tensor that owns its memory, and of any CUDA tensor, fails instead of freeing (or marking closed) memory
     * native code is using. Host tensors that borrow memory get a no-op lease: their arena's owner must not close
     * it during a call.
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
        if (segment == null) {
            // every device tensor has its own closed flag (borrowed memory too); a view also leases its parent
            Runnable release = leases.acquire(this);
            if (parent == null) return release::run;
            try {
                Lease p = parent.lease();
                return () -> {
                    try {
                        p.close();
                    } finally {
                        release.run();
                    }
                };
            } catch (RuntimeException | Error e) {
                release.run();
                throw e;
            }
        }
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
        this.device = Device.cpu();
        this.deviceAddress = 0;
        this.deviceBytes = 0;
        this.ownsDevice = false;
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

    /** A CUDA tensor: device memory at {@code address} of {@code bytes} bytes, owned (freed on close) or not. */
    private Tensor(Device device, long address, long bytes, DType dtype, long[] shape, long[] strides, boolean owns,
                   Tensor parent) {
        this.device = device;
        this.deviceAddress = address;
        this.deviceBytes = bytes;
        this.ownsDevice = owns;
        this.parent = parent;
        this.segment = null;
        this.dtype = dtype;
        this.shape = shape;
        this.strides = strides;
        this.owned = null;
        if (owns) {
            String what = dtype + Arrays.toString(shape) + " on " + device;
            this.handle = Resources.openDevice(this, "Tensor", device.index(), bytes, () -> what);
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
            Cleanup.closeQuietly(arena, e);
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

    /**
     * A zeroed, row-major tensor on {@code device} that owns its memory: for the CPU, {@link #allocate(DType, long...)};
     * for a CUDA device, device memory from {@code isthmus_cuda_malloc} (256-byte aligned), zeroed before this returns,
     * freed by {@link #close()} (which waits for the device, as {@code cudaFree} does, so closing a tensor that queued
     * work still reads is safe), and counted by {@link Device#ownedBytes()} and the debug mode's
     * {@link Isthmus#openResources()}. Every dtype may live on a device; the CUDA ops take F32, BF16, I8 (S8) and I32.
     *
     * @throws NullPointerException     for a null dtype
     * @throws IllegalArgumentException for a null device ("device is null"), a null or empty shape or a dimension
     *                                  {@code < 1}
     * @throws IsthmusException         when the device is out of memory ({@link IsthmusException#OUT_OF_MEMORY})
     */
    public static Tensor allocate(DType dtype, Device device, long... shape) {
        Objects.requireNonNull(dtype, "dtype");
        Checks.notNull(device, "device");
        if (device.isCpu()) return allocate(dtype, shape);
        return allocateDevice(dtype, device, shape, true);
    }

    private static Tensor allocateDevice(DType dtype, Device device, long[] shape, boolean zero) {
        long bytes = byteSizeOf(dtype, checkShape(shape));
        Cuda.require("Tensor.allocate on " + device);
        long ptr = Cuda.malloc(device.index(), bytes, "Tensor.allocate " + dtype + Arrays.toString(shape) + " on " + device);
        try {
            if (zero) {
                Cuda.check(IsthmusCuda.isthmus_cuda_memset_async(device.index(), Cuda.ptr(ptr), 0,
                        bytes, MemorySegment.NULL), "Tensor.allocate");
                Cuda.synchronize(device.index(), 0, "Tensor.allocate");
            }
            return new Tensor(device, ptr, bytes, dtype, shape.clone(), rowMajor(shape), true, null);
        } catch (RuntimeException | Error e) {
            Cleanup.closeQuietly(() -> Cuda.free(device.index(), ptr, "Tensor.allocate (cleanup)"), e);
            throw e;
        }
    }

    /**
     * Views device memory that someone else allocated (JCuda's {@code cuMemAlloc}, the CUDA runtime, PyTorch's
     * {@code data_ptr()}) as a row-major tensor on {@code device}, without copying and without owning it:
     * {@link #close()} does not free it, and the owner must keep it allocated while isthmus uses it. The memory must
     * be usable in the device's <b>primary context</b> (any {@code cudaMalloc}; with JCuda's driver API, allocate after
     * {@code cuDevicePrimaryCtxRetain} + {@code cuCtxSetCurrent}) and hold at least {@code elementCount * byteSize}
     * bytes from {@code devicePtr}: isthmus cannot check a device pointer's size, a wrong one is undefined behaviour on
     * the device, reported at the next synchronization at best. On systems where the GPU can address host memory
     * (HMM, ATS: recent drivers on Linux, Grace Hopper) a wrong pointer can make a kernel write <b>host</b> memory,
     * the JVM's included, and <b>crash the process</b>: isthmus cannot check a device pointer, and the JVM's
     * guarantee that user input never crashes it does not cover this call. {@link #close()} marks the tensor closed
     * (later use is an {@link IllegalStateException}) without freeing the memory.
     *
     * <pre>{@code
     * CUdeviceptr p = new CUdeviceptr();
     * cuMemAlloc(p, (long) m * k * Sizeof.FLOAT);
     * Tensor x = Tensor.wrapDevicePointer(Device.cuda(0), p.getNativePointer(), DType.F32, m, k);
     * }</pre>
     *
     * @throws NullPointerException     for a null dtype
     * @throws IllegalArgumentException for a null device ("device is null"), a CPU device (use {@link #wrap(MemorySegment, DType, long...)}), a null (0)
     *                                  pointer, one not aligned to the dtype's size, a bad shape, or an extent that
     *                                  passes the end of the address space
     */
    public static Tensor wrapDevicePointer(Device device, long devicePtr, DType dtype, long... shape) {
        Checks.notNull(device, "device");
        Objects.requireNonNull(dtype, "dtype");
        if (!device.isCuda())
            throw new IllegalArgumentException("device is " + device + ": wrapDevicePointer is for CUDA memory; wrap host "
                    + "memory with Tensor.wrap(MemorySegment, ...)");
        if (devicePtr == 0) throw new IllegalArgumentException("devicePtr is 0 (NULL)");
        if (Long.remainderUnsigned(devicePtr, dtype.byteSize()) != 0)
            throw new IllegalArgumentException("devicePtr 0x" + Long.toHexString(devicePtr) + " is not aligned to "
                    + dtype.byteSize() + " bytes for " + dtype);
        long bytes = byteSizeOf(dtype, checkShape(shape));
        if (Long.compareUnsigned(devicePtr, -1L - bytes) > 0)
            throw new IllegalArgumentException("devicePtr 0x" + Long.toHexString(devicePtr) + " + " + bytes
                    + " bytes for " + dtype + Arrays.toString(shape) + " passes the end of the address space");
        return new Tensor(device, devicePtr, bytes, dtype, shape.clone(), rowMajor(shape), false, null);
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

    /**
     * The memory: from the first element to just past the last addressed one.
     *
     * @throws IllegalStateException for a tensor on a CUDA device (its memory is not host memory: copy it with
     *                               {@link #to(Device) to(Device.cpu())}, or pass {@link #devicePointer()} to CUDA code)
     */
    public MemorySegment segment() {
        return host();
    }

    /** The host memory, or an IllegalStateException naming the device. */
    private MemorySegment host() {
        if (segment == null)
            throw new IllegalStateException("tensor " + Checks.shape(this) + " is on " + device + ": its memory cannot "
                    + "be accessed from the host; copy it with to(Device.cpu())");
        return segment;
    }

    /** True when row-major with no gaps. */
    public boolean isContiguous() {
        return Arrays.equals(strides, rowMajor(shape));
    }

    /**
     * True while the memory can be used: for host memory, while its arena is open; for a CUDA tensor (owned, wrapped
     * with {@link #wrapDevicePointer} or a row view), until its {@link #close()} (and, for a view, its parent's).
     */
    public boolean isAlive() {
        if (segment == null) return !leases.isClosed() && (parent == null || parent.isAlive());
        return segment.scope().isAlive();
    }

    /** True when this tensor frees its memory on {@link #close()}. */
    public boolean ownsMemory() {
        return owned != null || ownsDevice;
    }

    /** Where the memory is: {@link Device#cpu()} for host memory, or a CUDA device. */
    public Device device() {
        return device;
    }

    /**
     * The device address of the first element of a CUDA tensor (e.g. for a {@code CUdeviceptr} of JCuda, or a
     * kernel of your own). The tensor must stay open while the address is in use.
     *
     * @throws IllegalStateException for a CPU tensor (use {@link #segment()}) or a closed one
     */
    public long devicePointer() {
        if (segment != null)
            throw new IllegalStateException("tensor " + Checks.shape(this) + " is on cpu: use segment() for its address");
        if (!isAlive()) throw new IllegalStateException("tensor " + Checks.shape(this) + " on " + device + " is closed");
        return deviceAddress;
    }

    /** Rows [from, to) of a matrix, sharing memory (the view owns nothing). */
    public Tensor rows(long from, long to) {
        if (rank() != 2) throw new IllegalArgumentException("rows() needs a matrix, not " + Checks.shape(this));
        if (from < 0 || to > shape[0] || from >= to)
            throw new IllegalArgumentException("rows [" + from + ", " + to + ") out of " + Checks.shape(this));
        long off = from * strides[0] * dtype.byteSize();
        long[] s = {to - from, shape[1]};
        long need = ((s[0] - 1) * strides[0] + (s[1] - 1) * strides[1] + 1) * dtype.byteSize();
        if (segment == null)
            return new Tensor(device, deviceAddress + off, need, dtype, s, strides.clone(), false,
                    parent != null ? parent : this);
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
        return host().getAtIndex(ValueLayout.JAVA_FLOAT, offset(idx));
    }

    public void set(float value, long... idx) {
        expect(DType.F32);
        host().setAtIndex(ValueLayout.JAVA_FLOAT, offset(idx), value);
    }

    public byte getByte(long... idx) {
        expect(DType.I8);
        return host().get(ValueLayout.JAVA_BYTE, offset(idx));
    }

    public void set(byte value, long... idx) {
        expect(DType.I8);
        host().set(ValueLayout.JAVA_BYTE, offset(idx), value);
    }

    public int getInt(long... idx) {
        expect(DType.I32);
        return host().getAtIndex(ValueLayout.JAVA_INT, offset(idx));
    }

    public void set(int value, long... idx) {
        expect(DType.I32);
        host().setAtIndex(ValueLayout.JAVA_INT, offset(idx), value);
    }

    /** A row-major copy of an F32 tensor. */
    public float[] toFloatArray() {
        expect(DType.F32);
        MemorySegment segment = host();
        float[] out = new float[Math.toIntExact(elementCount())];
        if (strides[strides.length - 1] != 1) forEachElement((src, dst) -> out[dst] = segment.getAtIndex(ValueLayout.JAVA_FLOAT, src));
        else forEachRow((row, dst) -> MemorySegment.copy(segment, ValueLayout.JAVA_FLOAT, row * 4, out, dst, (int) lastDim()));
        return out;
    }

    /** A row-major copy of an I8 tensor. */
    public byte[] toByteArray() {
        expect(DType.I8);
        MemorySegment segment = host();
        byte[] out = new byte[Math.toIntExact(elementCount())];
        if (strides[strides.length - 1] != 1) forEachElement((src, dst) -> out[dst] = segment.get(ValueLayout.JAVA_BYTE, src));
        else forEachRow((row, dst) -> MemorySegment.copy(segment, ValueLayout.JAVA_BYTE, row, out, dst, (int) lastDim()));
        return out;
    }

    /** A row-major copy of an I32 tensor. */
    public int[] toIntArray() {
        expect(DType.I32);
        MemorySegment segment = host();
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

    // ------------------------------------------------------------------ copies between devices

    /**
     * A copy of this tensor on {@code target}, as a new owned, row-major tensor (also when {@code target} is this
     * tensor's own device). Synchronous: when a CUDA device is involved, {@code to} first waits for <b>all</b> work
     * queued on that device, on every stream ({@link Device#synchronize()}: so a kernel still writing this tensor on
     * a non-blocking {@link Stream#create created} stream finishes before it is read), then copies on the legacy
     * default stream and waits until the copy is done: the result is ready to use, and an earlier error on the device
     * surfaces here. For asynchronous copies use {@link #copyFrom(Tensor, Stream)}. Copying between two CUDA devices
     * is not supported (copy through the CPU).
     *
     * <pre>{@code
     * try (Tensor onGpu = hostX.to(Device.cuda(0));
     *      Tensor back = onGpu.to(Device.cpu())) { ... }
     * }</pre>
     *
     * @throws IllegalArgumentException for a null target, a tensor that is not contiguous (row-major, no gaps), a heap
     *                                  segment, or two different CUDA devices
     * @throws IllegalStateException    for a closed tensor
     */
    public Tensor to(Device target) {
        Checks.notNull(target, "target");
        checkCopyable(this, "this");
        if (device.isCuda() && target.isCuda() && !device.equals(target))
            throw new IllegalArgumentException("this tensor is on " + device + " but target is " + target
                    + ": copies between CUDA devices are not supported; copy through Device.cpu()");
        if (device.isCpu() && target.isCpu()) {
            Tensor out = allocate(dtype, shape);
            try (Lease l = lease()) {
                MemorySegment.copy(host(), 0, out.segment, 0, byteSizeOf(dtype, shape));
            } catch (RuntimeException | Error e) {
                Cleanup.closeQuietly(out, e);
                throw e;
            }
            return out;
        }
        Device cuda = device.isCuda() ? device : target;
        Cuda.require("Tensor.to " + target);
        Tensor out = target.isCpu() ? allocate(dtype, shape) : allocateDevice(dtype, target, shape, false);
        try {
            // streams from Stream.create do not wait for the legacy default stream: wait for every stream first
            Cuda.check(IsthmusCuda.isthmus_cuda_device_synchronize(cuda.index()), "Tensor.to " + target
                    + " (waiting for " + cuda + ")");
            copy(this, "this", out, "target", null);
        } catch (RuntimeException | Error e) {
            Cleanup.closeQuietly(out, e);
            throw e;
        }
        return out;
    }

    /**
     * Copies {@code src} into this tensor on {@code stream} (host to device, device to host, or within one device).
     * Both tensors have the same dtype and shape and are contiguous; the CUDA side(s) must be on the stream's device.
     * <ul>
     *   <li><b>Device to device</b>: queued on the stream; returns without waiting. Call {@link Stream#synchronize()}
     *       before reading the result; closing a CUDA tensor waits for the device by itself.</li>
     *   <li><b>Host to device, device to host</b>: queued on the stream after the work already there, then this
     *       <b>waits for the stream</b> ({@link Stream#synchronize()}) before it returns, so the host memory is done
     *       with and, device to host, written, whatever kind it is (pinned memory, e.g. JCuda's {@code cuMemAllocHost}
     *       wrapped with {@link #wrap(MemorySegment, DType, long...)}, would otherwise still be read or written by
     *       the device after its lease ended). Device errors of earlier work on the stream surface here.</li>
     * </ul>
     * A {@code null} stream means the device's legacy default stream, and the call waits for the copy in every
     * direction; it does not wait for work on non-blocking streams ({@link Stream#create}): synchronize those first,
     * or use {@link #to(Device)}, which waits for the whole device.
     *
     * @throws IllegalArgumentException naming src, this, stream: a null src, a dtype or shape mismatch, a tensor that
     *                                  is not contiguous, a read-only or heap destination, overlapping tensors, devices
     *                                  that do not match the stream's, or two CPU tensors
     * @throws IllegalStateException    for a closed tensor or stream
     */
    public void copyFrom(Tensor src, Stream stream) {
        Checks.notNull(src, "src");
        copy(src, "src", this, "this", stream);
    }

    /**
     * Copies this tensor into {@code dst} on {@code stream} (or the legacy default stream for null):
     * {@code dst.copyFrom(this, stream)}, with the same waiting rules (host memory involved: waits for the stream).
     */
    public void copyTo(Tensor dst, Stream stream) {
        Checks.notNull(dst, "dst");
        copy(this, "this", dst, "dst", stream);
    }

    private static void checkCopyable(Tensor t, String name) {
        if (t.device.isCpu()) Checks.usable(t, name);
        else if (!t.isAlive()) throw new IllegalStateException(name + " " + Checks.shape(t) + " on " + t.device + " is closed");
        if (!t.isContiguous())
            throw new IllegalArgumentException(name + " " + Checks.shape(t) + " with strides " + Arrays.toString(t.strides)
                    + " is not contiguous: copies between devices take row-major tensors without gaps");
    }

    /**
     * A copy between two devices (at least one CUDA) on stream, or on the legacy default stream if null; waits for the
     * stream unless both sides are device memory and a stream was given.
     */
    private static void copy(Tensor src, String srcName, Tensor dst, String dstName, Stream stream) {
        if (stream != null && !stream.isAlive()) throw new IllegalStateException("stream " + stream + " is closed");
        if (src.device.isCpu() && dst.device.isCpu())
            throw new IllegalArgumentException(srcName + " and " + dstName + " are both on cpu: a Stream copies to or "
                    + "from a CUDA device (copy host memory with MemorySegment.copy or to(Device.cpu()))");
        Device on = src.device.isCuda() ? src.device : dst.device;
        if (src.device.isCuda() && dst.device.isCuda() && !src.device.equals(dst.device))
            throw new IllegalArgumentException(srcName + " is on " + src.device + " but " + dstName + " is on " + dst.device
                    + ": copies between CUDA devices are not supported; copy through Device.cpu()");
        if (stream != null && !stream.device().equals(on))
            throw new IllegalArgumentException("stream is on " + stream.device() + " but " + (src.device.isCuda() ? srcName
                    : dstName) + " is on " + on);
        checkCopyable(src, srcName);
        checkCopyable(dst, dstName);
        if (src.dtype != dst.dtype || !Arrays.equals(src.shape, dst.shape))
            throw new IllegalArgumentException(dstName + " " + Checks.shape(dst) + " does not match " + srcName + " "
                    + Checks.shape(src) + ": a copy needs the same dtype and shape");
        if (dst.device.isCpu()) Checks.writable(dst, dstName);
        long bytes = byteSizeOf(src.dtype, src.shape);
        int kind;
        if (src.device.isCpu()) kind = IsthmusCuda.ISTHMUS_CUDA_COPY_H2D();
        else if (dst.device.isCpu()) kind = IsthmusCuda.ISTHMUS_CUDA_COPY_D2H();
        else {
            kind = IsthmusCuda.ISTHMUS_CUDA_COPY_D2D();
            long a = src.deviceAddress, b = dst.deviceAddress;
            if (Long.compareUnsigned(a, b + bytes) < 0 && Long.compareUnsigned(b, a + bytes) < 0)
                throw new IllegalArgumentException(dstName + " " + Checks.shape(dst) + " overlaps " + srcName + " "
                        + Checks.shape(src) + " on " + on);
        }
        Cuda.require("copy to " + dst.device);
        try (Lease ls = src.lease(); Lease ld = dst.lease(); Lease lst = stream == null ? Lease.NONE : stream.lease()) {
            MemorySegment from = src.device.isCpu() ? src.segment : Cuda.ptr(src.deviceAddress);
            MemorySegment to = dst.device.isCpu() ? dst.segment : Cuda.ptr(dst.deviceAddress);
            long h = stream == null ? 0 : stream.handle();
            String what = "copy " + Checks.shape(src) + " " + src.device + " -> " + dst.device;
            Cuda.check(IsthmusCuda.isthmus_cuda_memcpy_async(on.index(), to, from, bytes, kind,
                    Cuda.ptr(h)), what);
            // host memory is leased only until this returns (and pinned memory is read/written asynchronously):
            // wait for the stream whenever one side is host memory; device-to-device stays asynchronous
            if (stream == null || src.device.isCpu() || dst.device.isCpu()) Cuda.synchronize(on.index(), h, what);
        }
    }

    /**
     * Frees the memory if this tensor owns it. A CUDA tensor that does not own its memory (wrapped with
     * {@link #wrapDevicePointer}, or a row view) is marked closed without freeing anything: later use of it is an
     * {@link IllegalStateException}. A host tensor that borrows memory is left as it is (its arena decides).
     * Idempotent.
     *
     * @throws IllegalStateException if an op on another thread is using the memory right now
     */
    @Override
    public void close() {
        if (owned != null && leases.markClosed(Checks.shape(this))) {
            owned.close();
            handle.close();
        } else if (segment == null && !ownsDevice) {
            leases.markClosed(Checks.shape(this) + " on " + device);
        } else if (ownsDevice && leases.markClosed(Checks.shape(this) + " on " + device)) {
            try {
                Cuda.free(device.index(), deviceAddress, "Tensor.close " + Checks.shape(this) + " on " + device);
            } finally {
                handle.close();
            }
        }
    }

    @Override
    public String toString() {
        return "Tensor[" + dtype + Arrays.toString(shape) + (isContiguous() ? "" : " strides " + Arrays.toString(strides))
                + (device.isCpu() ? "" : " " + device) + (isAlive() ? "" : " closed") + "]";
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
