package dev.isthmus;

import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_gemm_f32_s8_args;
import dev.isthmus.bindings.isthmus_gemm_s8_args;
import dev.isthmus.bindings.isthmus_gemm_s8_s32_args;
import dev.isthmus.internal.Checks;
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
        Checks.matrix(x, "x", DType.F32);
        Checks.notNull(w, "w");
        return Outputs.allocate(DType.F32, x.dim(0), w.n(), y -> matmul(x, w, null, y));
    }

    /** As {@link #matmul(Tensor, PackedWeights)}, adding {@code bias} [N] (or null) and writing {@code out} [M, N]. */
    public static void matmul(Tensor x, PackedWeights w, Tensor bias, Tensor out) {
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
        return Outputs.allocate(DType.F32, a.rows(), Checks.notNull(w, "w").n(), y -> matmul(a, w, null, y));
    }

    /**
     * {@code Y[M,N] = sum over K-groups of (Aq . Wq^T) * sa * sw (+ bias)}, f32. The activations' scheme
     * must be native; per-group activations need weights with the same group.
     */
    public static void matmul(QuantizedTensor a, PackedWeights w, Tensor bias, Tensor out) {
        Checks.notNull(a, "a");
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
        Checks.matrix(a, "a", DType.I8);
        return Outputs.allocate(DType.I32, a.dim(0), Checks.notNull(w, "w").n(), c -> matmulInt32(a, w, c));
    }

    /** Exact int32 {@code C[M,N] = Aq[M,K] . Wq[N,K]^T} into {@code out}. */
    public static void matmulInt32(Tensor a, PackedWeights w, Tensor out) {
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
