package dev.isthmus;

import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_gemm_f32_s8_args;
import dev.isthmus.bindings.isthmus_gemm_s8_args;
import dev.isthmus.bindings.isthmus_gemm_s8_s32_args;
import dev.isthmus.bindings.isthmus_rmsnorm_args;
import dev.isthmus.bindings.isthmus_swiglu_args;
import dev.isthmus.bindings.cuda.IsthmusCuda;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Cuda;
import dev.isthmus.internal.CudaKernels;
import dev.isthmus.quant.DeviceWeights;
import dev.isthmus.quant.Quant;
import dev.isthmus.internal.Outputs;
import dev.isthmus.internal.Native;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The operations, as plain static methods. Shapes follow the usual convention: activations
 * {@code [M, K]}, weights {@code [N, K]} (a row per output channel), output {@code [M, N]}. Every
 * entry checks its arguments before native code runs: a wrong shape, dtype or closed tensor is an
 * {@link IllegalArgumentException} / {@link IllegalStateException} naming the argument and shapes.
 *
 * <pre>{@code
 * try (PackedWeights w = PackedWeights.quantize(weights, QuantScheme.int8PerRow());
 *      Tensor y = Ops.matmul(x, w)) {          // x f32 [M, K] is quantized per row on the fly
 *     ...
 * }
 * }</pre>
 */
public final class Ops {
    private Ops() {}

    /**
     * {@code Y = quant(X) . W^T} in f32, quantizing the f32 activations per row (or per group, when the
     * weights have groups) on the fly, exactly as {@code Quant.quantize} would. Returns a new owned tensor.
     */
    public static Tensor matmul(Tensor x, PackedWeights w) {
        if (x != null) onCpu(x, "x");
        Checks.matrix(x, "x", DType.F32);
        Checks.notNull(w, "w");
        return Outputs.allocate(DType.F32, x.dim(0), w.n(), y -> matmul(x, w, null, y));
    }

    /** As {@link #matmul(Tensor, PackedWeights)}, adding {@code bias} [N] (or null) and writing {@code out} [M, N]. */
    public static void matmul(Tensor x, PackedWeights w, Tensor bias, Tensor out) {
        onCpu(x, "x");
        onCpu(bias, "bias");
        onCpu(out, "out");
        Checks.matrix(x, "x", DType.F32);
        long m = x.dim(0), k = x.dim(1);
        MemorySegment wp = weights(w, k, "x", x);
        checkBiasOut(bias, out, m, w.n(), x);
        Checks.noOverlap(out, "out", x, "x");
        Checks.noOverlap(out, "out", wp, "w (packed weights)");
        Native.ensureLoaded();
        try (Tensor.Lease lx = x.lease(); Tensor.Lease lo = out.lease(); Tensor.Lease lb = lease(bias);
             Tensor.Lease lw = w.lease(); Arena call = Arena.ofConfined()) {
            MemorySegment a = isthmus_gemm_f32_s8_args.allocate(call);
            isthmus_gemm_f32_s8_args.m(a, m);
            isthmus_gemm_f32_s8_args.n(a, w.n());
            isthmus_gemm_f32_s8_args.k(a, k);
            isthmus_gemm_f32_s8_args.x(a, x.segment());
            isthmus_gemm_f32_s8_args.ldx(a, x.stride(0));
            isthmus_gemm_f32_s8_args.w_packed(a, wp);
            isthmus_gemm_f32_s8_args.bias(a, bias == null ? MemorySegment.NULL : bias.segment());
            isthmus_gemm_f32_s8_args.y(a, out.segment());
            isthmus_gemm_f32_s8_args.ldy(a, out.stride(0));
            isthmus_gemm_f32_s8_args.workspace(a, MemorySegment.NULL);
            isthmus_gemm_f32_s8_args.workspace_size(a, 0);
            Native.checkInput(Isthmus.isthmus_gemm_f32_s8(a), "matmul", "x " + Checks.shape(x), "not finite");
        }
    }

    /** {@code Y = (Aq . W^T) * scales} for activations already quantized. Returns a new owned tensor. */
    public static Tensor matmul(QuantizedTensor a, PackedWeights w) {
        Checks.notNull(a, "a");
        onCpu(a.values(), "a");
        return Outputs.allocate(DType.F32, a.rows(), Checks.notNull(w, "w").n(), y -> matmul(a, w, null, y));
    }

    /**
     * {@code Y[M,N] = sum over K-groups of (Aq . Wq^T) * sa * sw (+ bias)}, f32. The activations' scheme
     * must be native; per-group activations need weights with the same group.
     */
    public static void matmul(QuantizedTensor a, PackedWeights w, Tensor bias, Tensor out) {
        Checks.notNull(a, "a");
        onCpu(a.values(), "a");
        onCpu(bias, "bias");
        onCpu(out, "out");
        Tensor av = Checks.matrix(a.values(), "a.values", DType.I8);
        Checks.usable(a.scales(), "a.scales");
        QuantScheme as = a.scheme();
        if (!as.isNative())
            throw new IllegalArgumentException("a has scheme " + as + ", which has no native kernel");
        long m = av.dim(0), k = av.dim(1);
        MemorySegment wp = weights(w, k, "a", av);
        if (as.granularity() == QuantScheme.Granularity.PER_GROUP && as.group() != w.scheme().group())
            throw new IllegalArgumentException("a is quantized per group of " + as.group() + " but w has "
                    + w.scheme() + ": per-group activations need the weights' group");
        checkBiasOut(bias, out, m, w.n(), av);
        Checks.noOverlap(out, "out", av, "a.values");
        Checks.noOverlap(out, "out", a.scales(), "a.scales");
        Checks.noOverlap(out, "out", wp, "w (packed weights)");
        Native.ensureLoaded();
        try (Tensor.Lease la = av.lease(); Tensor.Lease ls = a.scales().lease(); Tensor.Lease lo = out.lease();
             Tensor.Lease lb = lease(bias); Tensor.Lease lw = w.lease(); Arena call = Arena.ofConfined()) {
            MemorySegment s = isthmus_gemm_s8_args.allocate(call);
            isthmus_gemm_s8_args.m(s, m);
            isthmus_gemm_s8_args.n(s, w.n());
            isthmus_gemm_s8_args.k(s, k);
            isthmus_gemm_s8_args.a(s, av.segment());
            isthmus_gemm_s8_args.lda(s, av.stride(0));
            isthmus_gemm_s8_args.a_granularity(s, as.granularity().ordinal());
            isthmus_gemm_s8_args.a_scales(s, a.scales().segment());
            isthmus_gemm_s8_args.w_packed(s, wp);
            isthmus_gemm_s8_args.bias(s, bias == null ? MemorySegment.NULL : bias.segment());
            isthmus_gemm_s8_args.y(s, out.segment());
            isthmus_gemm_s8_args.ldy(s, out.stride(0));
            Native.check(Isthmus.isthmus_gemm_s8(s), "matmul");
        }
    }

    /** Exact int32 {@code C = Aq . Wq^T} (no scales), for custom epilogues. Returns a new owned I32 tensor. */
    public static Tensor matmulInt32(Tensor a, PackedWeights w) {
        onCpu(a, "a");
        Checks.matrix(a, "a", DType.I8);
        return Outputs.allocate(DType.I32, a.dim(0), Checks.notNull(w, "w").n(), c -> matmulInt32(a, w, c));
    }

    /** Exact int32 {@code C[M,N] = Aq[M,K] . Wq[N,K]^T} into {@code out}. */
    public static void matmulInt32(Tensor a, PackedWeights w, Tensor out) {
        onCpu(a, "a");
        onCpu(out, "out");
        Checks.matrix(a, "a", DType.I8);
        long m = a.dim(0), k = a.dim(1);
        MemorySegment wp = weights(w, k, "a", a);
        Checks.output(out, "out", DType.I32);
        if (out.dim(0) != m || out.dim(1) != w.n())
            throw new IllegalArgumentException("out must be [" + m + ", " + w.n() + "] for a " + Checks.shape(a)
                    + " and w [" + w.n() + ", " + w.k() + "] but is " + Checks.shape(out));
        Checks.noOverlap(out, "out", a, "a");
        Checks.noOverlap(out, "out", wp, "w (packed weights)");
        Native.ensureLoaded();
        try (Tensor.Lease la = a.lease(); Tensor.Lease lo = out.lease(); Tensor.Lease lw = w.lease();
             Arena call = Arena.ofConfined()) {
            MemorySegment s = isthmus_gemm_s8_s32_args.allocate(call);
            isthmus_gemm_s8_s32_args.m(s, m);
            isthmus_gemm_s8_s32_args.n(s, w.n());
            isthmus_gemm_s8_s32_args.k(s, k);
            isthmus_gemm_s8_s32_args.a(s, a.segment());
            isthmus_gemm_s8_s32_args.lda(s, a.stride(0));
            isthmus_gemm_s8_s32_args.w_packed(s, wp);
            isthmus_gemm_s8_s32_args.c(s, out.segment());
            isthmus_gemm_s8_s32_args.ldc(s, out.stride(0));
            Native.check(Isthmus.isthmus_gemm_s8_s32(s), "matmulInt32");
        }
    }

    // ------------------------------------------------------------------ CUDA matmul

    /**
     * {@code Y = quant(X) . W^T} on a CUDA device: the F32 or BF16 activations are quantized per row (or per group,
     * when the weights have groups) on the device, exactly as {@link Quant#quantize} does on the CPU, then multiplied
     * by the INT8 weights. Returns a new owned F32 {@code [M, N]} tensor on the weights' device; waits until it is
     * computed (see {@link #matmul(Tensor, DeviceWeights, Tensor, Tensor, Stream)} for the asynchronous form).
     *
     * <p>Agreement with the CPU: for F32 activations and weights with one scale per row or per tensor, the result is
     * bit-identical to {@link #matmul(Tensor, PackedWeights)} with weights quantized by the same scheme; with groups,
     * the f32 sum over groups runs in a kernel-dependent order and the result is, as isthmus_cuda.h guarantees,
     * within {@code (G + 3) * 2^-24 * (sum_g |acc_g * sa_g * sw_g| + |bias[n]|)} of the exact value,
     * {@code G = ceil(K / group)} (each term is rounded at most twice before the sum, a sum of G terms in any order
     * adds at most G - 1 roundings, the bias one more).
     *
     * <p>A literal {@code Ops.matmul(x, null)} does not compile: it is ambiguous between this method and
     * {@link #matmul(Tensor, PackedWeights)}. Cast the null ({@code (DeviceWeights) null}) to get the
     * {@code "w is null"} IllegalArgumentException.
     *
     * @throws IllegalArgumentException naming the argument: a null, tensors on different devices ("x is on cpu but w
     *                                  is on cuda:0"), a wrong dtype or shape, inner dimensions that differ
     * @throws IllegalStateException    for a closed tensor or weights
     */
    public static Tensor matmul(Tensor x, DeviceWeights w) {
        Device d = validateMatmul(x, w, null, null, null, false);
        return Outputs.allocate(DType.F32, d, x.dim(0), w.n(), y -> matmul(x, w, null, y, null));
    }

    /**
     * {@code out = quant(x) . W^T (+ bias)} on a CUDA device (see {@link #matmul(Tensor, DeviceWeights)}), into
     * {@code out}.
     *
     * <p><b>Streams.</b> With a {@code stream}, the quantization and the GEMM are queued on it and this returns
     * without waiting: call {@link Stream#synchronize()} before reading {@code out}; device errors surface there. The
     * quantized activations and the GEMM's workspace live in the stream's scratch (reused by later calls on the stream,
     * freed by its {@code close()}). With {@code null}, the call runs on the device's legacy default stream, waits
     * until {@code out} is written and frees its scratch; it does not wait for work queued on other (non-blocking)
     * streams, so synchronize those first.
     *
     * <p>Layouts: every tensor's rows are contiguous; row strides may exceed the column count. Addresses or row
     * strides that are not multiples of 16 bytes are not an error: the library then runs its SKINNY kernel family.
     *
     * @param x      F32 or BF16 {@code [M, K]} on w's device
     * @param w      weights {@code [N, K]} on a CUDA device
     * @param bias   F32 {@code [N]} on the same device, or null
     * @param out    F32 or BF16 {@code [M, N]} on the same device; must not overlap x, w or bias
     * @param stream a stream of the same device, or null (see above)
     * @throws IllegalArgumentException naming the argument and its device or shape: a null, mixed devices, a wrong
     *                                  dtype or shape, inner dimensions that differ, K above 131072, overlaps
     * @throws IllegalStateException    for a closed tensor, weights or stream
     * @throws IsthmusException         for a failure the CUDA library reports (a launch error, out of memory)
     */
    public static void matmul(Tensor x, DeviceWeights w, Tensor bias, Tensor out, Stream stream) {
        Device d = validateMatmul(x, w, bias, out, stream, true);
        long m = x.dim(0), k = x.dim(1);
        QuantScheme ws = w.scheme();
        boolean grouped = ws.granularity() == QuantScheme.Granularity.PER_GROUP;
        long group = grouped ? ws.group() : 0;
        long scaleCount = grouped ? Math.multiplyExact(m, (k + group - 1) / group) : m;
        Cuda.require("matmul on " + d);
        onStream(d, stream, (s, h) -> {
            try (Tensor.Lease lx = x.lease(); Tensor.Lease lw = w.values().lease(); Tensor.Lease lws = w.scales().lease();
                 Tensor.Lease lb = lease(bias); Tensor.Lease lo = out.lease()) {
                CudaKernels.Gemm g = gemm(d, m, k, 0, k, grouped ? 2 : 1, 0, w, bias, out);
                long qBytes = CudaKernels.align256(Math.multiplyExact(m, k));
                long sBytes = CudaKernels.align256(Math.multiplyExact(scaleCount, 4L));
                long wsBytes = g.workspaceSize("matmul");
                long base = s.scratch(Math.max(1, qBytes + sBytes + wsBytes));
                long q = base, sc = base + qBytes, ws0 = wsBytes == 0 ? 0 : base + qBytes + sBytes;
                String what = "matmul x " + Checks.shape(x) + " . w [" + w.n() + ", " + w.k() + "] on " + d;
                CudaKernels.quantize(d.index(), m, k, x.devicePointer(), x.dtype(), ld(x), grouped ? 2 : 1, group, q, k,
                        sc, h, what);
                withA(g, q, sc).launch(ws0, wsBytes, h, what);
            }
        });
    }

    /** {@code Y = (Aq . W^T) * scales} on a CUDA device for activations already quantized there; a new owned F32
     *  tensor, computed before this returns. */
    public static Tensor matmul(QuantizedTensor a, DeviceWeights w) {
        Device d = validateMatmul(a, w, null, null, null, false);
        return Outputs.allocate(DType.F32, d, a.rows(), w.n(), y -> matmul(a, w, null, y, null));
    }

    /**
     * {@code out = sum over K-groups of (Aq . Wq^T) * sa * sw (+ bias)} on a CUDA device, for activations quantized on
     * the device ({@link Quant#quantize(Tensor, QuantScheme, Stream)}) or wrapped there. Per-group activations need the
     * weights' group (as on the CPU). Streams as in {@link #matmul(Tensor, DeviceWeights, Tensor, Tensor, Stream)}.
     *
     * @param out F32 or BF16 {@code [M, N]} on the weights' device
     */
    public static void matmul(QuantizedTensor a, DeviceWeights w, Tensor bias, Tensor out, Stream stream) {
        Device d = validateMatmul(a, w, bias, out, stream, true);
        Tensor av = a.values();
        QuantScheme as = a.scheme();
        long m = av.dim(0), k = av.dim(1);
        Cuda.require("matmul on " + d);
        onStream(d, stream, (s, h) -> {
            try (Tensor.Lease la = av.lease(); Tensor.Lease ls = a.scales().lease(); Tensor.Lease lw = w.values().lease();
                 Tensor.Lease lws = w.scales().lease(); Tensor.Lease lb = lease(bias); Tensor.Lease lo = out.lease()) {
                CudaKernels.Gemm g = gemm(d, m, k, av.devicePointer(), ld(av), CudaKernels.granularity(as),
                        a.scales().devicePointer(), w, bias, out);
                run(g, s, h, "matmul a " + Checks.shape(av) + " . w [" + w.n() + ", " + w.k() + "] on " + d);
            }
        });
    }

    /** Exact int32 {@code C = Aq . Wq^T} on a CUDA device; a new owned I32 tensor, computed before this returns. */
    public static Tensor matmulInt32(Tensor a, DeviceWeights w) {
        Device d = validateMatmulInt32(a, w, null, null, false);
        return Outputs.allocate(DType.I32, d, a.dim(0), w.n(), c -> matmulInt32(a, w, c, null));
    }

    /**
     * Exact int32 {@code out[M, N] = Aq[M, K] . Wq[N, K]^T} on a CUDA device (no scales). Streams as in
     * {@link #matmul(Tensor, DeviceWeights, Tensor, Tensor, Stream)}.
     *
     * @param a   I8 {@code [M, K]} on the weights' device
     * @param out I32 {@code [M, N]} on the same device
     */
    public static void matmulInt32(Tensor a, DeviceWeights w, Tensor out, Stream stream) {
        Device d = validateMatmulInt32(a, w, out, stream, true);
        long m = a.dim(0), k = a.dim(1);
        Cuda.require("matmulInt32 on " + d);
        onStream(d, stream, (s, h) -> {
            try (Tensor.Lease la = a.lease(); Tensor.Lease lw = w.values().lease(); Tensor.Lease lo = out.lease()) {
                // S32 output uses no scales: both sides are described as PER_ROW with group 0, which the native
                // validate() accepts for any weights (PER_GROUP would need the group, and is meaningless here)
                int perRow = IsthmusCuda.ISTHMUS_CUDA_SCALE_PER_ROW();
                CudaKernels.Gemm g = new CudaKernels.Gemm(d.index(), m, w.n(), k, a.devicePointer(), ld(a), perRow, 0,
                        w.values().devicePointer(), ld(w.values()), perRow, 0, 0, 0,
                        out.devicePointer(), DType.I32, ld(out));
                run(g, s, h, "matmulInt32 a " + Checks.shape(a) + " . w [" + w.n() + ", " + w.k() + "] on " + d);
            }
        });
    }

    /** The GEMM descriptor of an F32/BF16 output (a's pointers may be filled in later with {@link #withA}). */
    private static CudaKernels.Gemm gemm(Device d, long m, long k, long a, long lda, int aGran, long aScales,
                                         DeviceWeights w, Tensor bias, Tensor out) {
        QuantScheme ws = w.scheme();
        long group = ws.granularity() == QuantScheme.Granularity.PER_GROUP ? ws.group() : 0;
        return new CudaKernels.Gemm(d.index(), m, w.n(), k, a, lda, aGran, aScales, w.values().devicePointer(),
                ld(w.values()), CudaKernels.granularity(ws), group, w.scales().devicePointer(),
                bias == null ? 0 : bias.devicePointer(), out.devicePointer(), out.dtype(), ld(out));
    }

    private static CudaKernels.Gemm withA(CudaKernels.Gemm g, long a, long aScales) {
        return new CudaKernels.Gemm(g.device(), g.m(), g.n(), g.k(), a, g.lda(), g.aGranularity(), aScales, g.w(),
                g.ldw(), g.wGranularity(), g.group(), g.wScales(), g.bias(), g.y(), g.yType(), g.ldy());
    }

    /** Launches g with the workspace it needs from the stream's scratch (the caller holds the stream's lock()). */
    private static void run(CudaKernels.Gemm g, Stream s, long h, String what) {
        long wsBytes = g.workspaceSize(what);
        long ws = wsBytes == 0 ? 0 : s.scratch(wsBytes);
        g.launch(ws, wsBytes, h, what);
    }

    private interface StreamWork {
        void run(Stream s, long handle);
    }

    /**
     * Runs work on {@code stream} (holding its lease and lock while it enqueues), or, for null, on a wrapper of the
     * legacy default stream that is synchronized and closed (freeing its scratch) before this returns.
     */
    private static void onStream(Device d, Stream stream, StreamWork work) {
        if (stream != null) {
            try (Tensor.Lease l = stream.lease()) {
                synchronized (stream.lock()) {
                    work.run(stream, stream.handle());
                }
            }
            return;
        }
        try (Stream s = Stream.wrap(d, 0)) {
            synchronized (s.lock()) {
                work.run(s, 0);
            }
            s.synchronize();
        }
    }

    /**
     * The checks of {@code matmul(x, w[, bias, out, stream])} on a CUDA device, all before anything is allocated or
     * launched: devices first (mixing names both), then x's dtype and shape, K against w's, and, with an output
     * ({@code withOut}), bias, out and their overlaps. Returns w's device.
     */
    private static Device validateMatmul(Tensor x, DeviceWeights w, Tensor bias, Tensor out, Stream stream,
                                         boolean withOut) {
        Checks.notNull(x, "x");
        Device d = deviceOf(w);
        if (withOut) checkDevices(d, stream, x, "x", bias, "bias", out, "out");
        else Checks.sameDevice(x, "x", d, "w");
        Checks.deviceMatrix(x, "x", DType.F32, DType.BF16);
        checkDeviceWeights(w, x.dim(1), "x", x);
        if (withOut) {
            checkDeviceBiasOut(bias, out, x.dim(0), w.n(), x, "x", DType.F32, DType.BF16);
            noWeightOverlap(out, w);
        }
        return d;
    }

    /** As {@link #validateMatmul(Tensor, DeviceWeights, Tensor, Tensor, Stream, boolean)} for quantized activations. */
    private static Device validateMatmul(QuantizedTensor a, DeviceWeights w, Tensor bias, Tensor out, Stream stream,
                                         boolean withOut) {
        Checks.notNull(a, "a");
        Device d = deviceOf(w);
        Tensor av = a.values();
        if (withOut) checkDevices(d, stream, av, "a", bias, "bias", out, "out");
        else Checks.sameDevice(av, "a", d, "w");
        Checks.deviceMatrix(av, "a.values", DType.I8);
        Checks.deviceUsable(a.scales(), "a.scales");
        QuantScheme as = a.scheme();
        if (!as.isNative())
            throw new IllegalArgumentException("a has scheme " + as + ", which has no CUDA kernel");
        checkDeviceWeights(w, av.dim(1), "a", av);
        if (as.granularity() == QuantScheme.Granularity.PER_GROUP && as.group() != w.scheme().group())
            throw new IllegalArgumentException("a is quantized per group of " + as.group() + " but w has "
                    + w.scheme() + ": per-group activations need the weights' group");
        if (withOut) {
            checkDeviceBiasOut(bias, out, av.dim(0), w.n(), av, "a", DType.F32, DType.BF16);
            noWeightOverlap(out, w);
            Checks.noDeviceOverlap(out, "out", a.scales(), "a.scales");
        }
        return d;
    }

    /** As {@link #validateMatmul(Tensor, DeviceWeights, Tensor, Tensor, Stream, boolean)} for the int32 GEMM. */
    private static Device validateMatmulInt32(Tensor a, DeviceWeights w, Tensor out, Stream stream, boolean withOut) {
        Checks.notNull(a, "a");
        Device d = deviceOf(w);
        if (withOut) checkDevices(d, stream, a, "a", null, "bias", out, "out");
        else Checks.sameDevice(a, "a", d, "w");
        Checks.deviceMatrix(a, "a", DType.I8);
        checkDeviceWeights(w, a.dim(1), "a", a);
        if (withOut) {
            checkDeviceBiasOut(null, out, a.dim(0), w.n(), a, "a", DType.I32);
            noWeightOverlap(out, w);
        }
        return d;
    }

    private static Device deviceOf(DeviceWeights w) {
        Checks.notNull(w, "w");
        if (!w.isAlive()) throw new IllegalStateException("w " + w + " is closed");
        return w.device();
    }

    /** Every tensor (and the stream) on d, else the mixing error naming both; checked before anything else. */
    private static void checkDevices(Device d, Stream stream, Tensor in, String inName, Tensor bias, String biasName,
                                     Tensor out, String outName) {
        Checks.sameDevice(in, inName, d, "w");
        if (bias != null) Checks.sameDevice(bias, biasName, d, "w");
        Checks.notNull(out, outName);
        Checks.sameDevice(out, outName, d, "w");
        if (stream != null) {
            if (!stream.device().equals(d))
                throw new IllegalArgumentException("stream is on " + stream.device() + " but w is on " + d
                        + ": the arguments of an operation must be on one device");
            if (!stream.isAlive()) throw new IllegalStateException("stream " + stream + " is closed");
        }
    }

    private static void noWeightOverlap(Tensor out, DeviceWeights w) {
        Checks.noDeviceOverlap(out, "out", w.values(), "w.values");
        Checks.noDeviceOverlap(out, "out", w.scales(), "w.scales");
    }

    /** A CPU op's argument that is on a CUDA device: the mixing error (PackedWeights are host memory). */
    private static void onCpu(Tensor t, String name) {
        if (t != null && !t.device().isCpu())
            throw new IllegalArgumentException(name + " is on " + t.device() + " but w is on cpu (PackedWeights): the "
                    + "arguments of an operation must be on one device; use DeviceWeights for CUDA tensors");
    }

    private static void checkDeviceWeights(DeviceWeights w, long k, String actName, Tensor act) {
        if (w.k() != k)
            throw new IllegalArgumentException(actName + " " + Checks.shape(act) + " has K = " + k + " but w is ["
                    + w.n() + ", " + w.k() + "]: inner dimensions differ");
        if (k > CudaKernels.maxK())
            throw new IllegalArgumentException(actName + " " + Checks.shape(act) + ": K = " + k + " exceeds "
                    + CudaKernels.maxK() + " (int32 accumulators would overflow)");
    }

    private static void checkDeviceBiasOut(Tensor bias, Tensor out, long m, long n, Tensor act, String actName,
                                           DType... outTypes) {
        if (bias != null) Checks.deviceVector(bias, "bias", DType.F32, n);
        Checks.deviceMatrix(out, "out", outTypes);
        if (out.dim(0) != m || out.dim(1) != n)
            throw new IllegalArgumentException("out must be [" + m + ", " + n + "] for " + actName + " " + Checks.shape(act)
                    + " but is " + Checks.shape(out));
        Checks.noDeviceOverlap(out, "out", act, actName);
        Checks.noDeviceOverlap(out, "out", bias, "bias");
    }

    // ------------------------------------------------------------------ transformer blocks

    /**
     * Row-wise RMSNorm: {@code y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight}. With a
     * {@code residual}, {@code x += residual} comes first and the sum is written back to {@code x} (the fused
     * "add, then norm" of a pre-norm transformer: {@code x} is the residual stream, {@code y} the normalized
     * input of the next block). The mean of squares is accumulated in f32 in an order that depends on the ISA
     * variant (within {@code 1e-5} relative of a double reference); rows run in parallel when there are many.
     *
     * <pre>{@code
     * Ops.rmsNorm(hidden, attnOut, normWeight, 1e-5f, normed);   // hidden += attnOut; normed = rmsnorm(hidden)
     * Ops.rmsNorm(x, null, w, 1e-6f, x);                          // in place
     * }</pre>
     *
     * @param x        F32 {@code [rows, dim]}, rows may be strided; read, and written when residual is given
     * @param residual F32 {@code [rows, dim]} or null; must not overlap x or y
     * @param weight   F32 {@code [dim]} (any contiguous shape of dim elements); must not overlap y (nor x with a
     *                 residual)
     * @param eps      finite and {@code > 0}, e.g. {@code 1e-5f}
     * @param y        F32 {@code [rows, dim]}, written; may be x itself (same memory and row stride), otherwise
     *                 must not overlap it (column slices of one buffer with the same row stride are fine)
     * @throws IllegalArgumentException naming the argument for a wrong shape, dtype, stride, eps, read-only output
     *                                  or overlap. Non-finite values are not refused: a row of x (+ residual) holding
     *                                  a NaN or an infinity, or whose sum of squares overflows, comes out all NaN;
     *                                  a NaN weight makes its column NaN
     * @throws IllegalStateException    for a closed tensor
     */
    public static void rmsNorm(Tensor x, Tensor residual, Tensor weight, float eps, Tensor y) {
        Checks.matrix(x, "x", DType.F32);
        long rows = x.dim(0), dim = x.dim(1);
        if (residual != null) {
            Checks.matrix(residual, "residual", DType.F32);
            sameShape(residual, "residual", x, "x");
            Checks.writable(x, "x");
        }
        Checks.vector(weight, "weight", DType.F32, dim);
        if (!(eps > 0) || !Float.isFinite(eps))
            throw new IllegalArgumentException("eps must be finite and > 0, got " + eps);
        Checks.output(y, "y", DType.F32);
        sameShape(y, "y", x, "x");
        long ldx = ld(x), ldy = ld(y), ldr = residual == null ? dim : ld(residual);
        boolean inPlace = y.segment().address() == x.segment().address() && ldy == ldx;
        if (!inPlace) Checks.noRowOverlap(y, "y", ldy, dim, x, "x", ldx, dim);
        Checks.noOverlap(y, "y", weight, "weight");
        if (residual != null) {
            Checks.noRowOverlap(residual, "residual", ldr, dim, x, "x", ldx, dim);
            Checks.noRowOverlap(y, "y", ldy, dim, residual, "residual", ldr, dim);
            Checks.noOverlap(x, "x", weight, "weight");
        }
        Native.ensureLoaded();
        try (Tensor.Lease lx = x.lease(); Tensor.Lease lr = lease(residual); Tensor.Lease lw = weight.lease();
             Tensor.Lease ly = y.lease(); Arena call = Arena.ofConfined()) {
            MemorySegment a = isthmus_rmsnorm_args.allocate(call);
            isthmus_rmsnorm_args.rows(a, rows);
            isthmus_rmsnorm_args.dim(a, dim);
            isthmus_rmsnorm_args.x(a, x.segment());
            isthmus_rmsnorm_args.ldx(a, ldx);
            isthmus_rmsnorm_args.residual(a, residual == null ? MemorySegment.NULL : residual.segment());
            isthmus_rmsnorm_args.ldr(a, ldr);
            isthmus_rmsnorm_args.weight(a, weight.segment());
            isthmus_rmsnorm_args.eps(a, eps);
            isthmus_rmsnorm_args.y(a, y.segment());
            isthmus_rmsnorm_args.ldy(a, ldy);
            Native.check(Isthmus.isthmus_rmsnorm(a), "rmsNorm");
        }
    }

    /**
     * SwiGLU: {@code out[r, i] = silu(gate[r, i]) * up[r, i]}, {@code silu(g) = g / (1 + exp(-g))}, the gated
     * activation of Llama-style MLPs. {@code gate} and {@code up} may be the two column halves of one fused
     * {@code [rows, 2n]} projection (views with the same row stride); {@code out} may be either of them (in
     * place). Rows run in parallel when there are many.
     *
     * <pre>{@code
     * // h = x . [W_gate; W_up]^T is [rows, 2n]: its column halves are gate and up
     * long[] shape = {rows, n}, strides = {2 * n, 1};
     * Tensor gate = Tensor.wrap(h.segment(), DType.F32, shape, strides);
     * Tensor up = Tensor.wrap(h.segment().asSlice(n * 4), DType.F32, shape, strides);
     * Ops.swiglu(gate, up, gate);                                 // the activation, in the gate half
     * }</pre>
     *
     * @param gate F32 {@code [rows, n]}, rows may be strided
     * @param up   F32 {@code [rows, n]}, rows may be strided
     * @param out  F32 {@code [rows, n]}, written; may be gate or up itself (same memory and row stride),
     *             otherwise must not overlap them
     * @throws IllegalArgumentException naming the argument for a wrong shape, dtype, stride, read-only output or
     *                                  overlap. Non-finite values propagate element-wise (a NaN gate or up, or a
     *                                  gate of -inf, gives NaN; see the README, "NaN, infinities, saturation and
     *                                  denormals")
     * @throws IllegalStateException    for a closed tensor
     */
    public static void swiglu(Tensor gate, Tensor up, Tensor out) {
        Checks.matrix(gate, "gate", DType.F32);
        Checks.matrix(up, "up", DType.F32);
        sameShape(up, "up", gate, "gate");
        Checks.output(out, "out", DType.F32);
        sameShape(out, "out", gate, "gate");
        long rows = gate.dim(0), n = gate.dim(1), ldg = ld(gate), ldu = ld(up), ldo = ld(out);
        if (!(out.segment().address() == gate.segment().address() && ldo == ldg))
            Checks.noRowOverlap(out, "out", ldo, n, gate, "gate", ldg, n);
        if (!(out.segment().address() == up.segment().address() && ldo == ldu))
            Checks.noRowOverlap(out, "out", ldo, n, up, "up", ldu, n);
        Native.ensureLoaded();
        try (Tensor.Lease lg = gate.lease(); Tensor.Lease lu = up.lease(); Tensor.Lease lo = out.lease();
             Arena call = Arena.ofConfined()) {
            MemorySegment a = isthmus_swiglu_args.allocate(call);
            isthmus_swiglu_args.rows(a, rows);
            isthmus_swiglu_args.n(a, n);
            isthmus_swiglu_args.gate(a, gate.segment());
            isthmus_swiglu_args.ldg(a, ldg);
            isthmus_swiglu_args.up(a, up.segment());
            isthmus_swiglu_args.ldu(a, ldu);
            isthmus_swiglu_args.out(a, out.segment());
            isthmus_swiglu_args.ldo(a, ldo);
            Native.check(Isthmus.isthmus_swiglu(a), "swiglu");
        }
    }

    /** Row stride of a checked matrix as the kernels take it: at least the column count (a single row's stride
     *  may be anything). */
    private static long ld(Tensor t) {
        return Math.max(t.stride(0), t.dim(1));
    }

    private static void sameShape(Tensor t, String name, Tensor ref, String refName) {
        if (t.dim(0) != ref.dim(0) || t.dim(1) != ref.dim(1))
            throw new IllegalArgumentException(name + " must have the shape of " + refName + " " + Checks.shape(ref)
                    + " but is " + Checks.shape(t));
    }

    private static Tensor.Lease lease(Tensor t) {
        return t == null ? Tensor.Lease.NONE : t.lease();
    }

    private static MemorySegment weights(PackedWeights w, long k, String actName, Tensor act) {
        Checks.notNull(w, "w");
        if (!w.isAlive()) throw new IllegalStateException("w " + w + " is closed");
        if (w.k() != k)
            throw new IllegalArgumentException(actName + " " + Checks.shape(act) + " has K = " + k + " but w is ["
                    + w.n() + ", " + w.k() + "]: inner dimensions differ");
        return w.segment();
    }

    private static void checkBiasOut(Tensor bias, Tensor out, long m, long n, Tensor act) {
        if (bias != null) {
            Checks.vector(bias, "bias", DType.F32, n);
            Checks.noOverlap(out == null ? bias : out, "out", bias, "bias");
        }
        Checks.output(out, "out", DType.F32);
        if (out.dim(0) != m || out.dim(1) != n)
            throw new IllegalArgumentException("out must be [" + m + ", " + n + "] for activations " + Checks.shape(act)
                    + " but is " + Checks.shape(out));
    }
}
