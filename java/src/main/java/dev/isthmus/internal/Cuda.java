package dev.isthmus.internal;

import dev.isthmus.DeviceUnavailableException;
import dev.isthmus.IsthmusException;
import dev.isthmus.bindings.cuda.IsthmusCuda;
import dev.isthmus.loader.CudaLibrary;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The only door to {@code libisthmus_cuda}: loads it on demand ({@link CudaLibrary}), answers once whether CUDA
 * is usable and why not, and turns native statuses into exceptions. No {@code IsthmusCuda} function is called
 * before {@link #available()} said yes (the generated bindings would fail for good otherwise).
 */
public final class Cuda {
    private Cuda() {}

    /** What {@link #availability()} found: the device count, or zero and the reason. */
    public record Availability(int count, DeviceUnavailableException.Reason reason, String message) {}

    private static volatile Availability availability;

    /** The one answer of this JVM (computed on the first call; never throws). */
    public static Availability availability() {
        Availability a = availability;
        if (a != null) return a;
        synchronized (Cuda.class) {
            if (availability != null) return availability;
            availability = probe();
            return availability;
        }
    }

    private static Availability probe() {
        if (!CudaLibrary.isLoaded())
            return new Availability(0, DeviceUnavailableException.Reason.NO_LIBRARY, CudaLibrary.unavailableReason());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(ValueLayout.JAVA_INT);
            int status = IsthmusCuda.isthmus_cuda_device_count(count);
            String why = lastError();
            if (status == IsthmusCuda.ISTHMUS_CUDA_OK() && count.get(ValueLayout.JAVA_INT, 0) > 0)
                return new Availability(count.get(ValueLayout.JAVA_INT, 0), null, null);
            MemorySegment runtime = arena.allocate(ValueLayout.JAVA_INT), driver = arena.allocate(ValueLayout.JAVA_INT);
            int vs = IsthmusCuda.isthmus_cuda_versions(runtime, driver);
            int rt = runtime.get(ValueLayout.JAVA_INT, 0), drv = driver.get(ValueLayout.JAVA_INT, 0);
            DeviceUnavailableException.Reason reason;
            if (vs == IsthmusCuda.ISTHMUS_CUDA_OK() && drv == 0) reason = DeviceUnavailableException.Reason.NO_DRIVER;
            else if (vs == IsthmusCuda.ISTHMUS_CUDA_OK() && drv < rt) reason = DeviceUnavailableException.Reason.DRIVER_TOO_OLD;
            else reason = DeviceUnavailableException.Reason.NO_DEVICE;
            if (why == null || why.isBlank()) why = switch (reason) {
                case NO_DRIVER -> "no NVIDIA driver found";
                case DRIVER_TOO_OLD -> "CUDA driver " + drv + " is older than this library's runtime " + rt;
                default -> "no CUDA device";
            };
            if (status != IsthmusCuda.ISTHMUS_CUDA_OK()) why = "isthmus_cuda_device_count failed (status " + status + "): " + why;
            return new Availability(0, reason, why);
        } catch (RuntimeException | LinkageError e) {
            return new Availability(0, DeviceUnavailableException.Reason.NO_LIBRARY,
                    "isthmus: " + CudaLibrary.LIBRARY_FILE + " is loaded but cannot be called: " + e);
        }
    }

    /** Fails with the reason unless CUDA has at least one device (then the bindings may be called). */
    public static void require(String what) {
        Availability a = availability();
        if (a.count() == 0) throw new DeviceUnavailableException(a.reason(), what + " needs CUDA: " + a.message());
    }

    /** {@code isthmus_cuda_last_error()} of this thread. */
    public static String lastError() {
        return IsthmusCuda.isthmus_cuda_last_error().getString(0);
    }

    /** Throws {@link IsthmusException} with the native message unless {@code status} is ISTHMUS_CUDA_OK. */
    public static void check(int status, String operation) {
        if (status != IsthmusCuda.ISTHMUS_CUDA_OK()) throw new IsthmusException(operation, status, lastError());
    }

    /** A native pointer argument: the address as a zero-length segment (NULL for 0). Never dereferenced here. */
    public static MemorySegment ptr(long address) {
        return address == 0 ? MemorySegment.NULL : MemorySegment.ofAddress(address);
    }

    /** {@code bytes >= 1} of device memory on {@code device}; the address. */
    public static long malloc(int device, long bytes, String operation) {
        require(operation);
        return created(out -> IsthmusCuda.isthmus_cuda_malloc(device, bytes, out), operation);
    }

    /** Runs a native call that returns a pointer through {@code void **out} (malloc, stream and event create); the
     *  pointer, after {@link #check} of the call's status. */
    public static long created(java.util.function.ToIntFunction<MemorySegment> call, String operation) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            check(call.applyAsInt(out), operation);
            return out.get(ValueLayout.ADDRESS, 0).address();
        }
    }

    /** Frees device memory (synchronizes the device, as cudaFree does). */
    public static void free(int device, long address, String operation) {
        require(operation);
        check(IsthmusCuda.isthmus_cuda_free(device, ptr(address)), operation);
    }

    public static void synchronize(int device, long stream, String operation) {
        require(operation);
        check(IsthmusCuda.isthmus_cuda_stream_synchronize(device, ptr(stream)), operation);
    }
}
