package dev.isthmus;

import java.lang.foreign.ValueLayout;

/**
 * Element types of {@link Tensor}.
 *
 * <pre>{@code
 * Tensor acc = Tensor.allocate(DType.I32, m, n);   // int32 accumulators
 * long bytes = acc.elementCount() * DType.I32.byteSize();
 * }</pre>
 */
public enum DType {
    /** 32-bit IEEE float. */
    F32(4, ValueLayout.JAVA_FLOAT),
    /** signed 8-bit integer (quantized values). */
    I8(1, ValueLayout.JAVA_BYTE),
    /** signed 32-bit integer (accumulators). */
    I32(4, ValueLayout.JAVA_INT),
    /**
     * bfloat16: the upper 16 bits of an F32 (read and write it as a {@code short}). The CUDA kernels take and produce
     * it (activations, matmul outputs); no CPU kernel does: on the CPU it is storage, for copies to and from a device.
     */
    BF16(2, ValueLayout.JAVA_SHORT);

    private final int byteSize;
    private final ValueLayout layout;

    DType(int byteSize, ValueLayout layout) {
        this.byteSize = byteSize;
        this.layout = layout;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** The FFM layout of one element (native byte order). */
    public ValueLayout layout() {
        return layout;
    }
}
