package dev.isthmus.quant;

import dev.isthmus.DType;
import dev.isthmus.Device;
import dev.isthmus.Tensor;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Cleanup;
import dev.isthmus.internal.CudaKernels;

/**
 * INT8 weights {@code [N, K]} on a CUDA device, for {@link dev.isthmus.Ops#matmul(Tensor, DeviceWeights)}: the
 * quantized values row-major (one row per output channel, as the CPU's weights before packing: the GPU kernels need
 * no packing step) and their F32 scales, with the {@link QuantScheme} that made them. The GPU counterpart of
 * {@link PackedWeights}; the same quantization gives the same values, so a matmul on either device agrees (see
 * {@code Ops}).
 *
 * <p>Schemes: int8, symmetric, round half even, unclipped, per tensor, per row, or per group of 32, 64, 128 or 256
 * ({@link QuantScheme#isNative()}). {@link #close()} closes the two tensors (freeing device memory they own).
 *
 * <pre>{@code
 * Device gpu = Device.cuda(0);
 * try (Tensor w = Tensor.of(weights, n, k);                            // f32 [N, K] on the host
 *      DeviceWeights dw = DeviceWeights.quantize(w, QuantScheme.int8PerRow(), gpu);
 *      Tensor x = hostX.to(gpu);
 *      Tensor y = Ops.matmul(x, dw);                                   // f32 [M, N] on the GPU
 *      Tensor yHost = y.to(Device.cpu())) {                            // a host copy, closed too
 *     float[] out = yHost.toFloatArray();
 * }
 * }</pre>
 */
public final class DeviceWeights implements AutoCloseable {
    private final QuantizedTensor q;

    private DeviceWeights(QuantizedTensor q) {
        this.q = q;
    }

    /**
     * Quantizes F32 host weights {@code [N, K]} on the CPU ({@link Quant#quantize}, exactly as
     * {@link PackedWeights#quantize} does) and copies values and scales to {@code device} (waiting for the copy).
     *
     * @throws IllegalArgumentException naming w, scheme or device: a null, a non-native scheme, a wrong dtype or
     *                                  shape, a NaN or infinite weight, a CPU device, K above the GEMM's limit
     * @throws IllegalStateException    for a closed w
     */
    public static DeviceWeights quantize(Tensor w, QuantScheme scheme, Device device) {
        Checks.notNull(w, "w");
        Checks.notNull(scheme, "scheme");
        cudaDevice(device);
        Checks.sameDevice(w, "w", Device.cpu(), "the host quantization (DeviceWeights.quantize takes host weights)");
        requireNative(scheme);
        Checks.matrix(w, "w", DType.F32);
        checkK(w.dim(1), "w " + Checks.shape(w));
        QuantizedTensor host;
        try {
            host = Quant.quantize(w, scheme);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("w: " + e.getMessage(), e);
        }
        try (host) {
            return upload(host, device);
        }
    }

    /**
     * Copies host weights already quantized ({@code values} I8 {@code [N, K]}, {@code scales} F32) to {@code device},
     * waiting for the copy. The argument stays open (close it yourself). Values of -128 are used as they are (the
     * int32 result is exact; the CPU's packing refuses them).
     *
     * @throws IllegalArgumentException naming w or device: a null, a non-native scheme, host tensors that are not
     *                                  contiguous, a CPU device, K above the GEMM's limit
     */
    public static DeviceWeights upload(QuantizedTensor w, Device device) {
        Checks.notNull(w, "w");
        cudaDevice(device);
        requireNative(w.scheme());
        Checks.sameDevice(w.values(), "w.values", Device.cpu(), "the upload's source (the host)");
        checkK(w.cols(), "w " + Checks.shape(w.values()));
        Tensor v = w.values().to(device), s = null;
        try {
            s = w.scales().to(device);
            return new DeviceWeights(new QuantizedTensor(v, s, w.scheme()));
        } catch (RuntimeException | Error e) { // the scales too, when the QuantizedTensor constructor refuses them
            Cleanup.closeQuietly(v, e);
            Cleanup.closeQuietly(s, e);
            throw e;
        }
    }

    /**
     * Uses quantized weights that are already on a CUDA device (no copy; e.g. tensors wrapping JCuda memory with
     * {@link Tensor#wrapDevicePointer}). {@link #close()} closes them.
     *
     * @throws IllegalArgumentException for a null, host tensors, a non-native scheme, K above the GEMM's limit
     */
    public static DeviceWeights of(QuantizedTensor onDevice) {
        Checks.notNull(onDevice, "onDevice");
        requireNative(onDevice.scheme());
        if (!onDevice.values().device().isCuda())
            throw new IllegalArgumentException("onDevice.values is on " + onDevice.values().device()
                    + ": DeviceWeights.of takes tensors on a CUDA device (use upload to copy host weights)");
        checkK(onDevice.cols(), "onDevice " + Checks.shape(onDevice.values()));
        return new DeviceWeights(onDevice);
    }

    /** Output channels N. */
    public long n() {
        return q.rows();
    }

    /** Inner dimension K. */
    public long k() {
        return q.cols();
    }

    /** The scheme the weights were quantized with. */
    public QuantScheme scheme() {
        return q.scheme();
    }

    /** The CUDA device holding the weights. */
    public Device device() {
        return q.values().device();
    }

    /** I8 {@code [N, K]} on the device. */
    public Tensor values() {
        return q.values();
    }

    /** F32 scales on the device: [1], [N] or [N * ceil(K / group)]. */
    public Tensor scales() {
        return q.scales();
    }

    /**
     * True until this object, or one of its two tensors, is closed. Every device tensor has a closed flag, wrapped
     * memory ({@link Tensor#wrapDevicePointer}) included: closing marks it closed without freeing it.
     */
    public boolean isAlive() {
        return q.values().isAlive() && q.scales().isAlive();
    }

    /** Closes the values and scales (freeing the device memory they own; wrapped memory stays its owner's). */
    @Override
    public void close() {
        q.close();
    }

    @Override
    public String toString() {
        return "DeviceWeights[" + n() + "x" + k() + ", " + scheme() + ", " + device() + "]";
    }

    private static void cudaDevice(Device device) {
        Checks.notNull(device, "device");
        if (!device.isCuda())
            throw new IllegalArgumentException("device is " + device + ": DeviceWeights live on a CUDA device (use "
                    + "PackedWeights on the CPU)");
    }

    private static void requireNative(QuantScheme scheme) {
        Checks.notNull(scheme, "scheme");
        if (!scheme.isNative())
            throw new IllegalArgumentException("scheme " + scheme + " has no CUDA kernel: weights must be int8 "
                    + "symmetric, round half even, unclipped, per tensor / per row / per group of 32, 64, 128 or 256");
    }

    private static void checkK(long k, String what) {
        if (k > CudaKernels.maxK())
            throw new IllegalArgumentException(what + ": K = " + k + " exceeds " + CudaKernels.maxK()
                    + " (int32 accumulators would overflow)");
    }
}
