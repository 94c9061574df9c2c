package dev.isthmus.internal;

import dev.isthmus.DType;
import dev.isthmus.Device;
import dev.isthmus.Tensor;

import java.util.function.Consumer;

/** The ops' "into a new tensor" forms: allocate the output, let the op fill it, and never leak it on failure. */
public final class Outputs {
    private Outputs() {}

    /** A new owned {@code [rows, cols]} tensor written by {@code fill}; closed again if {@code fill} throws. */
    public static Tensor allocate(DType type, long rows, long cols, Consumer<Tensor> fill) {
        return filled(Tensor.allocate(type, rows, cols), fill);
    }

    /** The same on a device (a CUDA device's memory for a CUDA device). */
    public static Tensor allocate(DType type, Device device, long rows, long cols, Consumer<Tensor> fill) {
        return filled(Tensor.allocate(type, device, rows, cols), fill);
    }

    private static Tensor filled(Tensor out, Consumer<Tensor> fill) {
        try {
            fill.accept(out);
        } catch (RuntimeException | Error e) {
            Cleanup.closeQuietly(out, e);
            throw e;
        }
        return out;
    }
}
