package dev.isthmus;

/**
 * A CUDA device was asked for ({@link Device#cuda(int)}, or an operation that needs CUDA) but cannot be used here.
 * {@link #reason()} says why, and the message says it in words, e.g. "libisthmus_cuda.so is not in this build/jar",
 * "no NVIDIA driver found (libcuda.so.1)", "CUDA driver 12040 is older than this library's runtime 13000",
 * "no CUDA device" or "index 3 out of range: 1 device(s)".
 *
 * <p>It is an {@link IllegalStateException}: the state of the machine (or of this build), not an argument, is what
 * is wrong. {@link Device#cudaCount()} and {@link Device#isCudaAvailable()} ask the same question without throwing.
 *
 * <pre>{@code
 * try {
 *     Device gpu = Device.cuda(0);
 * } catch (DeviceUnavailableException e) {
 *     log.info("running on the CPU: " + e.getMessage());
 * }
 * }</pre>
 */
public final class DeviceUnavailableException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /** Why no CUDA device can be used. */
    public enum Reason {
        /** {@code libisthmus_cuda.so} is not in this build or jar, or cannot be loaded (a missing dependency, a
         *  mismatched ABI). */
        NO_LIBRARY,
        /** No NVIDIA driver ({@code libcuda.so.1}) on this machine. */
        NO_DRIVER,
        /** The driver is older than the CUDA runtime the library was built with. */
        DRIVER_TOO_OLD,
        /** A driver, but no CUDA device (or none visible: {@code CUDA_VISIBLE_DEVICES}). */
        NO_DEVICE,
        /** Devices exist, but not the index asked for. */
        INDEX_OUT_OF_RANGE
    }

    private final Reason reason;

    /** An exception for {@code reason} with the given message. */
    public DeviceUnavailableException(Reason reason, String message) {
        super(message);
        this.reason = reason;
    }

    /** Why the device cannot be used. */
    public Reason reason() {
        return reason;
    }
}
