package dev.isthmus;

import dev.isthmus.bindings.cuda.IsthmusCuda;
import dev.isthmus.bindings.cuda.isthmus_cuda_device_props;
import dev.isthmus.internal.Cuda;
import dev.isthmus.internal.Resources;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Optional;

/**
 * Where a {@link Tensor}'s memory lives and where an op runs: the CPU, or one CUDA device of the optional
 * {@code libisthmus_cuda.so}.
 *
 * <p>{@link #cpu()} always exists. {@link #cuda(int)} returns a CUDA device only when the CUDA library is in this
 * build, an NVIDIA driver recent enough is installed and the device exists; otherwise it throws a
 * {@link DeviceUnavailableException} saying which of these is missing. {@link #cudaCount()} and
 * {@link #isCudaAvailable()} ask without throwing (0 / false without a GPU). The answer is computed once per JVM.
 *
 * <p>Devices are values: {@code Device.cuda(0).equals(Device.cuda(0))}, printed as {@code "cpu"} and
 * {@code "cuda:0"}. Every CUDA call isthmus makes for a device runs in that device's primary context (the CUDA
 * runtime's; {@code cuDevicePrimaryCtxRetain} in the driver API), which is what lets memory and streams from JCuda
 * or PyTorch be used (see {@link Tensor#wrapDevicePointer} and {@link Stream#wrap}).
 *
 * <p><b>The calling thread's current context.</b> Every isthmus CUDA call makes the device's primary context current
 * on the calling thread ({@code cudaSetDevice}), and leaves it current. A JCuda (driver API) user who made a context
 * of their own current on that thread ({@code cuCtxCreate} + {@code cuCtxSetCurrent}) finds it replaced after the
 * call: make it current again, or use the primary context ({@code cuDevicePrimaryCtxRetain}) throughout.
 *
 * <pre>{@code
 * Device dev = Device.isCudaAvailable() ? Device.cuda(0) : Device.cpu();
 * try (Tensor x = hostTensor.to(dev)) { ... }
 * System.out.println(Device.cudaUnavailableReason().orElse("CUDA: " + Device.cudaCount() + " device(s)"));
 * }</pre>
 */
public final class Device {
    /** The kinds of device. */
    public enum Kind {
        /** Host memory, CPU kernels of libisthmus.so. */
        CPU,
        /** A CUDA device, kernels of libisthmus_cuda.so. */
        CUDA
    }

    private static final Device CPU = new Device(Kind.CPU, 0);
    private static volatile Device[] cudaDevices;

    private final Kind kind;
    private final int index;
    private volatile DeviceProperties properties;

    private Device(Kind kind, int index) {
        this.kind = kind;
        this.index = index;
    }

    /** The CPU (host memory). */
    public static Device cpu() {
        return CPU;
    }

    /**
     * The CUDA device {@code index} (0-based, as {@code cudaSetDevice} counts, after {@code CUDA_VISIBLE_DEVICES}).
     *
     * @throws IllegalArgumentException    for a negative index
     * @throws DeviceUnavailableException  when there is no such device, saying why: the CUDA library is not in this
     *                                     build/jar, no NVIDIA driver, a driver too old, no CUDA device, or the index
     *                                     is out of range
     */
    public static Device cuda(int index) {
        if (index < 0) throw new IllegalArgumentException("index must be >= 0, got " + index);
        Cuda.Availability a = Cuda.availability();
        if (a.count() == 0)
            throw new DeviceUnavailableException(a.reason(), "cuda:" + index + " is not available: " + a.message());
        if (index >= a.count())
            throw new DeviceUnavailableException(DeviceUnavailableException.Reason.INDEX_OUT_OF_RANGE,
                    "cuda:" + index + " is not available: index " + index + " out of range: " + a.count() + " device(s)");
        Device[] all = cudaDevices;
        if (all == null) {
            synchronized (Device.class) {
                if (cudaDevices == null) {
                    Device[] d = new Device[a.count()];
                    for (int i = 0; i < d.length; i++) d[i] = new Device(Kind.CUDA, i);
                    cudaDevices = d;
                }
                all = cudaDevices;
            }
        }
        return all[index];
    }

    /** Number of usable CUDA devices: 0 without the CUDA library, a driver or a device. Never throws. */
    public static int cudaCount() {
        return Cuda.availability().count();
    }

    /** True when at least one CUDA device can be used ({@code cudaCount() > 0}). Never throws. */
    public static boolean isCudaAvailable() {
        return cudaCount() > 0;
    }

    /** Why there is no CUDA device (the message {@link #cuda(int)} would throw), or empty when there is one. */
    public static Optional<String> cudaUnavailableReason() {
        return Optional.ofNullable(Cuda.availability().message());
    }

    /**
     * A CUDA device object that was not checked against the machine: for tests of the Java-side argument checks on a
     * machine without a GPU. Anything that reaches native code with it fails with {@link DeviceUnavailableException}
     * (every CUDA entry asks {@code internal.Cuda.require} first), never with a crash.
     */
    static Device uncheckedCudaForTests(int index) {
        if (index < 0) throw new IllegalArgumentException("index must be >= 0, got " + index);
        return new Device(Kind.CUDA, index);
    }

    /** CPU or CUDA. */
    public Kind kind() {
        return kind;
    }

    /** The CUDA device index (0 for the CPU). */
    public int index() {
        return index;
    }

    /** True for {@link #cpu()}. */
    public boolean isCpu() {
        return kind == Kind.CPU;
    }

    /** True for a CUDA device. */
    public boolean isCuda() {
        return kind == Kind.CUDA;
    }

    /** "cpu", or the CUDA device's name (e.g. "NVIDIA H200"). */
    public String name() {
        return isCpu() ? "cpu" : properties().name();
    }

    /**
     * The CUDA device's properties (read once).
     *
     * @throws IllegalStateException for the CPU
     */
    public DeviceProperties properties() {
        if (isCpu()) throw new IllegalStateException("cpu has no CUDA device properties");
        DeviceProperties p = properties;
        if (p != null) return p;
        Cuda.require("Device.properties");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = isthmus_cuda_device_props.allocate(arena);
            Cuda.check(IsthmusCuda.isthmus_cuda_device_get_props(index, s), "Device.properties " + this);
            p = new DeviceProperties(isthmus_cuda_device_props.name(s).getString(0),
                    isthmus_cuda_device_props.major(s), isthmus_cuda_device_props.minor(s),
                    isthmus_cuda_device_props.multiprocessors(s), isthmus_cuda_device_props.clock_khz(s),
                    isthmus_cuda_device_props.total_memory(s), isthmus_cuda_device_props.l2_bytes(s),
                    isthmus_cuda_device_props.shared_per_block_optin(s), isthmus_cuda_device_props.memory_bus_bits(s),
                    isthmus_cuda_device_props.memory_clock_khz(s), isthmus_cuda_device_props.pci_bus(s),
                    isthmus_cuda_device_props.pci_device(s), isthmus_cuda_device_props.kernels_available(s) != 0);
        }
        properties = p;
        return p;
    }

    /**
     * Free device memory in bytes now ({@code cudaMemGetInfo}).
     *
     * @throws IllegalStateException for the CPU
     */
    public long freeMemory() {
        if (isCpu()) throw new IllegalStateException("freeMemory() is for CUDA devices; cpu has none to report");
        Cuda.require("Device.freeMemory");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(ValueLayout.JAVA_LONG), total = arena.allocate(ValueLayout.JAVA_LONG);
            Cuda.check(IsthmusCuda.isthmus_cuda_mem_info(index, free, total), "Device.freeMemory " + this);
            return free.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    /**
     * Waits for all work queued on this device, on every stream ({@code cudaDeviceSynchronize}); reports an error
     * a kernel hit earlier as an {@link IsthmusException}. A no-op for the CPU.
     */
    public void synchronize() {
        if (isCuda()) {
            Cuda.require("Device.synchronize");
            Cuda.check(IsthmusCuda.isthmus_cuda_device_synchronize(index), "Device.synchronize " + this);
        }
    }

    /**
     * Bytes of this device's memory held by open isthmus objects (owned device tensors, weights, stream scratch);
     * for the CPU, the native bytes of {@link MemoryStats#ownedBytes()}.
     */
    public long ownedBytes() {
        return isCpu() ? Resources.bytes() : Resources.deviceBytes(index);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Device d && d.kind == kind && d.index == index;
    }

    @Override
    public int hashCode() {
        return kind.hashCode() * 31 + index;
    }

    /** "cpu" or "cuda:N". */
    @Override
    public String toString() {
        return isCpu() ? "cpu" : "cuda:" + index;
    }
}
