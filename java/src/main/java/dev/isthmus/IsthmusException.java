package dev.isthmus;

/**
 * A native kernel refused or failed a call that passed the Java checks. Carries the native status
 * code ({@code ISTHMUS_ERR_*} of isthmus.h, or {@code ISTHMUS_CUDA_ERR_*} of isthmus_cuda.h, which shares codes
 * 0..4 and adds {@link #NO_DEVICE} and {@link #DEVICE}) and the library's own message.
 *
 * <pre>{@code
 * try {
 *     Ops.matmul(x, weightsPackedUnderAvx512, null, y);   // after Isthmus.setIsaCap(Isa.AVX2)
 * } catch (IsthmusException e) {
 *     if (e.status() == IsthmusException.UNSUPPORTED) ... // repack under the current ISA
 * }
 * }</pre>
 */
public final class IsthmusException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** ISTHMUS_ERR_INVALID_ARGUMENT: the library found an argument invalid. */
    public static final int INVALID_ARGUMENT = 1;
    /** ISTHMUS_ERR_UNSUPPORTED: valid, but not servable by this build or CPU. */
    public static final int UNSUPPORTED = 2;
    /** ISTHMUS_ERR_OUT_OF_MEMORY. */
    public static final int OUT_OF_MEMORY = 3;
    /** ISTHMUS_ERR_INTERNAL: a bug, please report it. */
    public static final int INTERNAL = 4;
    /**
     * ISTHMUS_ERR_CAPACITY: a fixed-size pool is full (the KV cache's blocks or sequence slots, or a
     * sequence at its maximum length). Nothing changed: free or truncate sequences and retry.
     */
    public static final int CAPACITY = 5;
    /** ISTHMUS_CUDA_ERR_NO_DEVICE: no usable GPU (no driver, a driver too old, no device). */
    public static final int NO_DEVICE = 6;
    /** ISTHMUS_CUDA_ERR_DEVICE: the CUDA runtime reported an error (a launch failure, or an illegal address found
     *  at a synchronization); the message names the call and CUDA's error. */
    public static final int DEVICE = 7;

    private final int status;
    private final String nativeMessage;

    public IsthmusException(String operation, int status, String nativeMessage) {
        super(operation + " failed (" + statusName(status) + "): " + nativeMessage);
        this.status = status;
        this.nativeMessage = nativeMessage;
    }

    /** The native status code. */
    public int status() {
        return status;
    }

    /** True for {@link #CAPACITY}: a KV cache pool (blocks or sequence slots) is full. */
    public boolean isCapacity() {
        return status == CAPACITY;
    }

    /** The text of {@code isthmus_last_error()} for the failed call. */
    public String nativeMessage() {
        return nativeMessage;
    }

    static String statusName(int status) {
        return switch (status) {
            case INVALID_ARGUMENT -> "ISTHMUS_ERR_INVALID_ARGUMENT";
            case UNSUPPORTED -> "ISTHMUS_ERR_UNSUPPORTED";
            case OUT_OF_MEMORY -> "ISTHMUS_ERR_OUT_OF_MEMORY";
            case INTERNAL -> "ISTHMUS_ERR_INTERNAL";
            case CAPACITY -> "ISTHMUS_ERR_CAPACITY, the pool is full";
            case NO_DEVICE -> "ISTHMUS_CUDA_ERR_NO_DEVICE";
            case DEVICE -> "ISTHMUS_CUDA_ERR_DEVICE";
            default -> "status " + status;
        };
    }
}
