package dev.isthmus.internal;

import dev.isthmus.DType;
import dev.isthmus.Tensor;

import java.util.function.Consumer;

/** The ops' "into a new tensor" forms: allocate the output, let the op fill it, and never leak it on failure. */
public final class Outputs {
    private Outputs() {}

    /** A new owned {@code [rows, cols]} tensor written by {@code fill}; closed again if {@code fill} throws. */
    public static Tensor allocate(DType type, long rows, long cols, Consumer<Tensor> fill) {
        Tensor out = Tensor.allocate(type, rows, cols);
        try {
            fill.accept(out);
        } catch (RuntimeException | Error e) {
            Cleanup.closeQuietly(out, e);
            throw e;
        }
        return out;
    }
}
