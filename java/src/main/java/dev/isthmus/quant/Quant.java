package dev.isthmus.quant;

import dev.isthmus.DType;
import dev.isthmus.Device;
import dev.isthmus.Stream;
import dev.isthmus.internal.Cleanup;
import dev.isthmus.internal.Cuda;
import dev.isthmus.internal.CudaKernels;
import dev.isthmus.Tensor;
import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_dequantize_args;
import dev.isthmus.bindings.isthmus_quantize_args;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Native;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Quantization and dequantization. Native schemes ({@link QuantScheme#isNative()}) run on the
 * library's kernels, which round {@code x / s} half to even with {@code s = max|x| / 127} per tensor,
 * row or group (s = 0 and q = 0 for an all-zero block), bit-identical across ISA variants. Any other
 * scheme runs the Java reference here, so its error can be measured.
 *
 * <pre>{@code
 * try (Tensor x = Tensor.of(data, rows, cols);
 *      QuantizedTensor q = Quant.quantize(x, QuantScheme.int8PerGroup(32))) {
 *     QuantError e = Quant.error(x, q);      // SQNR, max error, RMSE
 * }
 * }</pre>
 */
public final class Quant {
    private Quant() {}

    /**
     * Quantizes an F32 matrix [rows, cols] (rows contiguous) into new owned tensors. A tensor on a CUDA device is
     * quantized there: {@code quantize(x, scheme, null)}.
     *
     * @throws IllegalArgumentException for a null argument, a wrong dtype/shape, a heap tensor, or a NaN/infinite input
     * @throws IllegalStateException    for a closed tensor or one confined to another thread
     */
    public static QuantizedTensor quantize(Tensor x, QuantScheme scheme) {
        Checks.notNull(scheme, "scheme");
        Checks.notNull(x, "x");
        if (x.device().isCuda()) return quantize(x, scheme, null);
        Checks.matrix(x, "x", DType.F32);
        if (!scheme.isNative()) return quantizeReference(x, scheme);
        Native.ensureLoaded();
        long rows = x.dim(0), cols = x.dim(1);
        Tensor q = Tensor.allocate(DType.I8, rows, cols);
        Tensor s = Tensor.allocate(DType.F32, scheme.scaleCount(rows, cols));
        try (Tensor.Lease lx = x.lease(); Arena call = Arena.ofConfined()) {
            MemorySegment a = isthmus_quantize_args.allocate(call);
            isthmus_quantize_args.rows(a, rows);
            isthmus_quantize_args.cols(a, cols);
            isthmus_quantize_args.x(a, x.segment());
            isthmus_quantize_args.ldx(a, x.stride(0));
            isthmus_quantize_args.granularity(a, scheme.nativeGranularity());
            isthmus_quantize_args.group(a, scheme.group());
            isthmus_quantize_args.q(a, q.segment());
            isthmus_quantize_args.ldq(a, cols);
            isthmus_quantize_args.scales(a, s.segment());
            Native.checkInput(Isthmus.isthmus_quantize_s8(a), "quantize", "x " + Checks.shape(x), "not finite");
        } catch (RuntimeException e) {
            Cleanup.closeQuietly(q, e);
            Cleanup.closeQuietly(s, e);
            throw e;
        }
        return new QuantizedTensor(q, s, scheme);
    }

    /**
     * Quantizes an F32 or BF16 matrix {@code [rows, cols]} on a CUDA device into new owned device tensors (values I8
     * {@code [rows, cols]}, scales F32), row by row: for F32 input, values and scales are bit-identical to
     * {@link #quantize(Tensor, QuantScheme)} on the CPU (BF16 is widened to F32 first, exactly). The device kernel
     * does not refuse NaN or infinities (that would need a synchronization): a row (group) holding one gets scale NaN
     * and values 0, and a following matmul makes that row NaN.
     *
     * <p>With a {@code stream}, the work is queued and this returns without waiting (the tensors are allocated
     * before); with {@code null}, it runs on the legacy default stream and waits.
     *
     * @param x      F32 or BF16 {@code [rows, cols]} on a CUDA device, rows contiguous
     * @param scheme int8, symmetric, round half even, unclipped, per row or per group of 32, 64, 128 or 256 (per
     *               tensor needs a grid-wide maximum and is not offered on the device)
     * @param stream a stream of x's device, or null
     * @throws IllegalArgumentException naming x, scheme or stream: a null x or scheme, a CPU tensor, a wrong dtype or
     *                                  shape, an unsupported scheme, a stream of another device
     * @throws IllegalStateException    for a closed x or stream
     */
    public static QuantizedTensor quantize(Tensor x, QuantScheme scheme, Stream stream) {
        Checks.notNull(x, "x");
        Checks.notNull(scheme, "scheme");
        if (!x.device().isCuda())
            throw new IllegalArgumentException("x " + Checks.shape(x) + " is on " + x.device() + ": quantize(x, scheme, "
                    + "stream) runs on a CUDA device; use quantize(x, scheme) on the CPU");
        Device device = x.device();
        if (stream != null) {
            if (!stream.device().equals(device))
                throw new IllegalArgumentException("stream is on " + stream.device() + " but x is on " + device);
            if (!stream.isAlive()) throw new IllegalStateException("stream " + stream + " is closed");
        }
        Checks.deviceMatrix(x, "x", DType.F32, DType.BF16);
        if (!scheme.isNative() || scheme.granularity() == QuantScheme.Granularity.PER_TENSOR)
            throw new IllegalArgumentException("scheme " + scheme + " has no CUDA kernel: the device quantizes int8 "
                    + "symmetric, round half even, unclipped, per row or per group of 32, 64, 128 or 256");
        long rows = x.dim(0), cols = x.dim(1);
        Cuda.require("Quant.quantize on " + device);
        Tensor q = Tensor.allocate(DType.I8, device, rows, cols);
        Tensor s = null;
        try {
            s = Tensor.allocate(DType.F32, device, scheme.scaleCount(rows, cols));
            try (Tensor.Lease lx = x.lease(); Tensor.Lease ls = stream == null ? Tensor.Lease.NONE : stream.lease()) {
                long h = stream == null ? 0 : stream.handle();
                CudaKernels.quantize(device.index(), rows, cols, x.devicePointer(), x.dtype(), Math.max(x.stride(0), cols),
                        CudaKernels.granularity(scheme), scheme.granularity() == QuantScheme.Granularity.PER_GROUP
                                ? scheme.group() : 0, q.devicePointer(), cols, s.devicePointer(), h,
                        "quantize x " + Checks.shape(x) + " on " + device);
                if (stream == null) Cuda.synchronize(device.index(), 0, "quantize");
            }
            return new QuantizedTensor(q, s, scheme);
        } catch (RuntimeException | Error e) {
            Cleanup.closeQuietly(q, e);
            Cleanup.closeQuietly(s, e);
            throw e;
        }
    }

    /**
     * Dequantizes into a new owned F32 matrix [rows, cols].
     *
     * @throws IllegalArgumentException for a null q or values that are not an I8 matrix
     * @throws IllegalStateException    for values, scales or zero points that are closed or confined to another thread
     */
    public static Tensor dequantize(QuantizedTensor q) {
        Checks.notNull(q, "q");
        Checks.matrix(q.values(), "q.values", DType.I8);
        Checks.usable(q.scales(), "q.scales");
        QuantScheme scheme = q.scheme();
        if (!scheme.isNative()) return dequantizeReference(q);
        Native.ensureLoaded();
        long rows = q.rows(), cols = q.cols();
        Tensor x = Tensor.allocate(DType.F32, rows, cols);
        try (Tensor.Lease lq = q.values().lease(); Tensor.Lease ls = q.scales().lease(); Arena call = Arena.ofConfined()) {
            MemorySegment a = isthmus_dequantize_args.allocate(call);
            isthmus_dequantize_args.rows(a, rows);
            isthmus_dequantize_args.cols(a, cols);
            isthmus_dequantize_args.q(a, q.values().segment());
            isthmus_dequantize_args.ldq(a, q.values().stride(0));
            isthmus_dequantize_args.granularity(a, scheme.nativeGranularity());
            isthmus_dequantize_args.group(a, scheme.group());
            isthmus_dequantize_args.scales(a, q.scales().segment());
            isthmus_dequantize_args.x(a, x.segment());
            isthmus_dequantize_args.ldx(a, cols);
            Native.check(Isthmus.isthmus_dequantize_s8(a), "dequantize");
        } catch (RuntimeException e) {
            Cleanup.closeQuietly(x, e);
            throw e;
        }
        return x;
    }

    /**
     * SQNR, max absolute error and RMSE of {@code q} against the original {@code x}.
     *
     * @throws IllegalArgumentException for a null argument, or x not an F32 matrix of q's shape
     * @throws IllegalStateException    for a closed tensor (x or q's)
     */
    public static QuantError error(Tensor x, QuantizedTensor q) {
        Checks.matrix(x, "x", DType.F32);
        Checks.notNull(q, "q");
        if (x.dim(0) != q.rows() || x.dim(1) != q.cols())
            throw new IllegalArgumentException("x " + Checks.shape(x) + " and q " + q + " differ in shape");
        float[] a = x.toFloatArray();
        float[] b;
        try (Tensor d = dequantize(q)) {
            b = d.toFloatArray();
        }
        double sig = 0, noise = 0, max = 0;
        for (int i = 0; i < a.length; i++) {
            double e = (double) a[i] - b[i];
            sig += (double) a[i] * a[i];
            noise += e * e;
            max = Math.max(max, Math.abs(e));
        }
        double sqnr = noise == 0 ? Double.POSITIVE_INFINITY : 10 * Math.log10(sig / noise);
        return new QuantError(sqnr, max, Math.sqrt(noise / a.length));
    }

    // ------------------------------------------------------------------ Java reference path

    /**
     * The Java reference for any scheme (the oracle the native path is tested against: for native
     * schemes both give identical bits). NaN or infinite inputs are refused.
     */
    public static QuantizedTensor quantizeReference(Tensor x, QuantScheme scheme) {
        Checks.notNull(scheme, "scheme");
        Checks.matrix(x, "x", DType.F32);
        long rows = x.dim(0), cols = x.dim(1);
        int g = blockCols(scheme, cols);
        long perRow = (cols + g - 1) / g;
        Tensor q = Tensor.allocate(DType.I8, rows, cols);
        Tensor s = Tensor.allocate(DType.F32, scheme.scaleCount(rows, cols));
        Tensor z = scheme.symmetric() ? null : Tensor.allocate(DType.I32, scheme.scaleCount(rows, cols));
        try {
            MemorySegment xs = x.segment();
            long ldx = x.stride(0);
            if (scheme.granularity() == QuantScheme.Granularity.PER_TENSOR) {
                float lo = 0, hi = 0;
                for (long r = 0; r < rows; r++)
                    for (long c = 0; c < cols; c++) {
                        float v = finite(xs.getAtIndex(ValueLayout.JAVA_FLOAT, r * ldx + c), x, r, c);
                        lo = Math.min(lo, v);
                        hi = Math.max(hi, v);
                    }
                for (long r = 0; r < rows; r++) quantBlock(x, r, 0, cols, lo, hi, scheme, q, s, z, 0, r == 0);
            } else {
                for (long r = 0; r < rows; r++)
                    for (long j = 0; j < perRow; j++) {
                        long c0 = j * g, c1 = Math.min(cols, c0 + g);
                        float lo = 0, hi = 0;
                        for (long c = c0; c < c1; c++) {
                            float v = finite(xs.getAtIndex(ValueLayout.JAVA_FLOAT, r * ldx + c), x, r, c);
                            lo = Math.min(lo, v);
                            hi = Math.max(hi, v);
                        }
                        quantBlock(x, r, c0, c1, lo, hi, scheme, q, s, z, r * perRow + j, true);
                    }
            }
        } catch (RuntimeException e) {
            Cleanup.closeQuietly(q, e);
            Cleanup.closeQuietly(s, e);
            Cleanup.closeQuietly(z, e);
            throw e;
        }
        return new QuantizedTensor(q, s, z, scheme);
    }

    /** The Java reference dequantization: x = (q - zp) * s. */
    public static Tensor dequantizeReference(QuantizedTensor qt) {
        Checks.notNull(qt, "q");
        Checks.matrix(qt.values(), "q.values", DType.I8);
        Checks.usable(qt.scales(), "q.scales");
        if (qt.zeroPoints() != null) Checks.usable(qt.zeroPoints(), "q.zeroPoints");
        QuantScheme scheme = qt.scheme();
        long rows = qt.rows(), cols = qt.cols();
        int g = blockCols(scheme, cols);
        long perRow = (cols + g - 1) / g;
        Tensor x = Tensor.allocate(DType.F32, rows, cols);
        MemorySegment qs = qt.values().segment();
        long ldq = qt.values().stride(0);
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < cols; c++) {
                long si = switch (scheme.granularity()) {
                    case PER_TENSOR -> 0;
                    case PER_ROW -> r;
                    case PER_GROUP -> r * perRow + c / g;
                };
                byte b = qs.get(ValueLayout.JAVA_BYTE, r * ldq + c);
                int level = scheme.symmetric() ? b : (b & 0xFF) - qt.zeroPoints().segment().getAtIndex(ValueLayout.JAVA_INT, si);
                x.segment().setAtIndex(ValueLayout.JAVA_FLOAT, r * cols + c,
                        (float) level * qt.scales().segment().getAtIndex(ValueLayout.JAVA_FLOAT, si));
            }
        return x;
    }

    private static int blockCols(QuantScheme scheme, long cols) {
        return switch (scheme.granularity()) {
            case PER_GROUP -> scheme.group();
            default -> (int) Math.min(cols, Integer.MAX_VALUE);
        };
    }

    private static float finite(float v, Tensor x, long r, long c) {
        if (!Float.isFinite(v))
            throw new IllegalArgumentException("x " + Checks.shape(x) + ": x[" + r + ", " + c + "] = " + v + " is not finite");
        return v;
    }

    private static float round(float v, QuantScheme.Rounding mode) {
        return mode == QuantScheme.Rounding.HALF_EVEN ? (float) Math.rint(v)
                : (float) (Math.signum(v) * Math.floor(Math.abs((double) v) + 0.5));
    }

    private static void quantBlock(Tensor x, long r, long c0, long c1, float lo, float hi, QuantScheme scheme,
                                   Tensor q, Tensor s, Tensor z, long si, boolean writeScale) {
        MemorySegment xs = x.segment();
        long ldx = x.stride(0), cols = q.dim(1);
        int qmax = scheme.maxLevel();
        if (scheme.symmetric()) {
            float amax = Math.max(-lo, hi) * scheme.clip();
            float scale = amax / qmax;
            if (scale == 0f && amax > 0f) scale = Float.MIN_VALUE;
            if (writeScale) s.segment().setAtIndex(ValueLayout.JAVA_FLOAT, si, scale);
            for (long c = c0; c < c1; c++) {
                float v = scale == 0f ? 0f : round(xs.getAtIndex(ValueLayout.JAVA_FLOAT, r * ldx + c) / scale, scheme.rounding());
                v = Math.max(-qmax, Math.min(qmax, v));
                q.segment().set(ValueLayout.JAVA_BYTE, r * cols + c, (byte) v);
            }
        } else {
            lo *= scheme.clip();
            hi *= scheme.clip();
            float scale = (hi - lo) / qmax;
            int zp = scale == 0f ? 0 : (int) Math.max(0, Math.min(qmax, round(-lo / scale, scheme.rounding())));
            if (writeScale) {
                s.segment().setAtIndex(ValueLayout.JAVA_FLOAT, si, scale);
                z.segment().setAtIndex(ValueLayout.JAVA_INT, si, zp);
            }
            for (long c = c0; c < c1; c++) {
                float v = scale == 0f ? zp : round(xs.getAtIndex(ValueLayout.JAVA_FLOAT, r * ldx + c) / scale, scheme.rounding()) + zp;
                v = Math.max(0, Math.min(qmax, v));
                q.segment().set(ValueLayout.JAVA_BYTE, r * cols + c, (byte) (int) v);
            }
        }
    }
}
