package dev.isthmus.quant;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.internal.Checks;

/**
 * Quantized values with their scales (and zero points for asymmetric schemes) and the
 * {@link QuantScheme} that made them. Values are an I8 matrix [rows, cols]; for asymmetric schemes
 * each byte holds an unsigned level (read it as {@code b & 0xFF}). Scales are F32 with
 * {@link QuantScheme#scaleCount} elements: [1], [rows], or [rows, ceil(cols / group)] row-major. Values and scales
 * may also live on a CUDA device (both on the same one; symmetric schemes only), as {@code Quant.quantize} of a
 * device tensor makes them; host access to them then throws (see {@link Tensor#device()}).
 *
 * <pre>{@code
 * try (Tensor w = Tensor.of(weights, n, k);
 *      QuantizedTensor wq = Quant.quantize(w, QuantScheme.int8PerRow())) {
 *     Tensor approx = Quant.dequantize(wq);
 * }
 * }</pre>
 */
public final class QuantizedTensor implements AutoCloseable {
    private final Tensor values;
    private final Tensor scales;
    private final Tensor zeroPoints;
    private final QuantScheme scheme;

    /**
     * Wraps existing values and scales (no copy). Shapes and dtypes are checked against the scheme;
     * closing this object closes the tensors (which frees them only if they own their memory).
     *
     * @throws IllegalArgumentException naming the argument for a null values, scales or scheme, a wrong dtype, shape
     *                                  or scale count, zero points given to a symmetric scheme or missing from an
     *                                  asymmetric one
     * @throws IllegalStateException    for a closed tensor or one confined to another thread
     */
    public QuantizedTensor(Tensor values, Tensor scales, Tensor zeroPoints, QuantScheme scheme) {
        Checks.notNull(scheme, "scheme");
        Checks.notNull(values, "values");
        if (values.device().isCuda()) {
            // quantized values on a CUDA device (Quant.quantize of a device tensor, DeviceWeights): symmetric only
            Checks.deviceMatrix(values, "values", DType.I8);
            Checks.notNull(scales, "scales");
            Checks.sameDevice(scales, "scales", values.device(), "values");
            Checks.deviceVector(scales, "scales", DType.F32, scheme.scaleCount(values.dim(0), values.dim(1)));
            if (!scheme.symmetric() || zeroPoints != null)
                throw new IllegalArgumentException("values are on " + values.device() + ": quantized tensors on a CUDA "
                        + "device are symmetric (no zeroPoints), but the scheme is " + scheme);
            this.values = values;
            this.scales = scales;
            this.zeroPoints = null;
            this.scheme = scheme;
            return;
        }
        Checks.matrix(values, "values", DType.I8);
        long count = scheme.scaleCount(values.dim(0), values.dim(1));
        Checks.vector(scales, "scales", DType.F32, count);
        if (scheme.symmetric()) {
            if (zeroPoints != null) throw new IllegalArgumentException("zeroPoints must be null for a symmetric scheme");
        } else {
            Checks.vector(zeroPoints, "zeroPoints", DType.I32, count);
        }
        this.values = values;
        this.scales = scales;
        this.zeroPoints = zeroPoints;
        this.scheme = scheme;
    }

    /** Symmetric values and scales. */
    public QuantizedTensor(Tensor values, Tensor scales, QuantScheme scheme) {
        this(values, scales, null, scheme);
    }

    public Tensor values() {
        return values;
    }

    public Tensor scales() {
        return scales;
    }

    /** I32 zero points of an asymmetric scheme, else null. */
    public Tensor zeroPoints() {
        return zeroPoints;
    }

    public QuantScheme scheme() {
        return scheme;
    }

    public long rows() {
        return values.dim(0);
    }

    public long cols() {
        return values.dim(1);
    }

    /**
     * Closes values, scales and zero points; each is closed even when closing another throws (the first failure is
     * thrown, later ones are added to it as suppressed).
     */
    @Override
    public void close() {
        RuntimeException first = null;
        for (Tensor t : new Tensor[] {values, scales, zeroPoints}) {
            if (t == null) continue;
            try {
                t.close();
            } catch (RuntimeException e) {
                if (first == null) first = e;
                else first.addSuppressed(e);
            }
        }
        if (first != null) throw first;
    }

    @Override
    public String toString() {
        return "QuantizedTensor[" + rows() + "x" + cols() + ", " + scheme + "]";
    }
}
