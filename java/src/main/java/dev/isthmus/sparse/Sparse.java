package dev.isthmus.sparse;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_quantize_args;
import dev.isthmus.bindings.isthmus_spmm_args;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Outputs;
import dev.isthmus.internal.Native;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Sparse matmul, {@code Y[M, N] = X[M, K] . W[N, K]^T (+ bias[N])} with W a {@link SparseMatrix}, on the
 * kernels of the ISA W was packed for ({@code isthmus_spmm}, on the library's thread pool). Every entry
 * checks its arguments first (shapes, dtypes, closed or foreign memory, read-only outputs, an output
 * that overlaps an input), as {@code Ops.matmul} does.
 *
 * <p>Results:
 * <ul>
 *   <li>F32 W: {@code y} is the f32 sum of {@code w * x} over the stored values of the row, in an order
 *       that depends on the ISA; it differs from the exact sum by at most
 *       {@code 2 * nnz_row * 2^-24 * sum |w * x|}, then the bias is added (one more f32 rounding);</li>
 *   <li>S8 W: the activations are int8 with one scale per row: a {@link QuantizedTensor} of
 *       {@link QuantScheme#int8PerRow()}, or F32 {@code x}, which is quantized on the fly exactly as
 *       {@code Quant.quantize(x, QuantScheme.int8PerRow())} would ({@code s = max|x_row| / 127},
 *       {@code q = round_half_even(x / s)}). The int32 sum {@code acc = sum wq * xq} is exact, and
 *       {@code y = fmaf((float) acc, sx[m] * sw[n], 0) + bias[n]}, bit-identical on every ISA;
 *       {@link #matmulInt32} returns {@code acc} itself.</li>
 * </ul>
 *
 * <pre>{@code
 * try (SparseMatrix w = SparseMatrix.fromDense(pruned, SparseFormat.CSR);
 *      Tensor y = Sparse.matmul(x, w, bias)) {       // x F32 [M, K], bias F32 [N] or null
 *     ...
 * }
 * }</pre>
 */
public final class Sparse {
    private Sparse() {}

    /** {@code Y = X . W^T} into a new owned F32 tensor [M, N]. */
    public static Tensor matmul(Tensor x, SparseMatrix w) {
        return matmul(x, w, null);
    }

    /**
     * {@code Y = X . W^T + bias} into a new owned F32 tensor [M, N]; x is F32 [M, K] (quantized per row
     * on the fly for S8 W), bias F32 [N] or null.
     */
    public static Tensor matmul(Tensor x, SparseMatrix w, Tensor bias) {
        Checks.matrix(x, "x", DType.F32);
        Checks.notNull(w, "w");
        return Outputs.allocate(DType.F32, x.dim(0), w.n(), y -> matmul(x, w, bias, y));
    }

    /** As {@link #matmul(Tensor, SparseMatrix, Tensor)}, writing {@code out} F32 [M, N] (rows at any stride). */
    public static void matmul(Tensor x, SparseMatrix w, Tensor bias, Tensor out) {
        Checks.matrix(x, "x", DType.F32);
        long m = x.dim(0);
        checkWeights(w, x.dim(1), "x", x);
        checkBiasOut(bias, out, m, w.n(), x);
        Checks.noOverlap(out, "out", x, "x");
        if (w.dtype() == DType.I8) {
            // x quantized per row into scratch memory of this call (a confined arena: no shared-arena close)
            Native.ensureLoaded();
            try (Arena scratch = Arena.ofConfined()) {
                Tensor xq = Tensor.allocate(scratch, DType.I8, m, x.dim(1));
                Tensor xs = Tensor.allocate(scratch, DType.F32, m);
                try (Tensor.Lease lx = x.lease()) {
                    MemorySegment a = isthmus_quantize_args.allocate(scratch);
                    isthmus_quantize_args.rows(a, m);
                    isthmus_quantize_args.cols(a, x.dim(1));
                    isthmus_quantize_args.x(a, x.segment());
                    isthmus_quantize_args.ldx(a, rowStride(x));
                    isthmus_quantize_args.granularity(a, Isthmus.ISTHMUS_SCALE_PER_ROW());
                    isthmus_quantize_args.group(a, 0);
                    isthmus_quantize_args.q(a, xq.segment());
                    isthmus_quantize_args.ldq(a, x.dim(1));
                    isthmus_quantize_args.scales(a, xs.segment());
                    Native.checkInput(Isthmus.isthmus_quantize_s8(a), "matmul", "x " + Checks.shape(x), "not finite");
                }
                run("matmul", w, null, xq, xs, bias, out, null);
            }
            return;
        }
        run("matmul", w, x, null, null, bias, out, null);
    }

    /** {@code Y = Xq . Wq^T * sx * sw + bias} for per-row int8 activations and S8 W; a new owned F32 [M, N]. */
    public static Tensor matmul(QuantizedTensor x, SparseMatrix w, Tensor bias) {
        Checks.notNull(x, "x");
        Checks.notNull(w, "w");
        return Outputs.allocate(DType.F32, x.rows(), w.n(), y -> matmul(x, w, bias, y));
    }

    /**
     * As {@link #matmul(QuantizedTensor, SparseMatrix, Tensor)}, writing {@code out}. {@code x} must be
     * quantized with {@link QuantScheme#int8PerRow()} (its values may hold -128) and W must be S8.
     */
    public static void matmul(QuantizedTensor x, SparseMatrix w, Tensor bias, Tensor out) {
        Checks.notNull(x, "x");
        Tensor xv = Checks.matrix(x.values(), "x.values", DType.I8);
        Checks.usable(x.scales(), "x.scales");
        if (!x.scheme().equals(QuantScheme.int8PerRow()))
            throw new IllegalArgumentException("x is quantized " + x.scheme() + " but sparse int8 matmul takes one scale "
                    + "per row (QuantScheme.int8PerRow())");
        long m = xv.dim(0);
        checkWeights(w, xv.dim(1), "x", xv);
        requireInt8(w, "quantized activations need");
        checkBiasOut(bias, out, m, w.n(), xv);
        Checks.noOverlap(out, "out", xv, "x.values");
        Checks.noOverlap(out, "out", x.scales(), "x.scales");
        run("matmul", w, null, xv, x.scales(), bias, out, null);
    }

    /** Exact int32 {@code C[M, N] = Xq[M, K] . Wq[N, K]^T} (no scales, no bias) for S8 W; a new owned I32 tensor. */
    public static Tensor matmulInt32(Tensor xq, SparseMatrix w) {
        Checks.matrix(xq, "xq", DType.I8);
        Checks.notNull(w, "w");
        return Outputs.allocate(DType.I32, xq.dim(0), w.n(), c -> matmulInt32(xq, w, c));
    }

    /** As {@link #matmulInt32(Tensor, SparseMatrix)}, writing {@code out} I32 [M, N]. */
    public static void matmulInt32(Tensor xq, SparseMatrix w, Tensor out) {
        Checks.matrix(xq, "xq", DType.I8);
        long m = xq.dim(0);
        checkWeights(w, xq.dim(1), "xq", xq);
        requireInt8(w, "the int32 output needs");
        Checks.output(out, "out", DType.I32);
        if (out.dim(0) != m || out.dim(1) != w.n())
            throw new IllegalArgumentException("out must be [" + m + ", " + w.n() + "] for xq " + Checks.shape(xq)
                    + " and w [" + w.n() + ", " + w.k() + "] but is " + Checks.shape(out));
        Checks.noOverlap(out, "out", xq, "xq");
        run("matmulInt32", w, null, xq, null, null, null, out);
    }

    // ------------------------------------------------------------------ internals

    private static void run(String op, SparseMatrix w, Tensor x, Tensor xq, Tensor xScales, Tensor bias, Tensor y,
                            Tensor c) {
        Native.ensureLoaded();
        try (Tensor.Lease lw = w.lease(); Tensor.Lease lx = lease(x); Tensor.Lease lq = lease(xq);
             Tensor.Lease ls = lease(xScales); Tensor.Lease lb = lease(bias); Tensor.Lease ly = lease(y);
             Tensor.Lease lc = lease(c); Arena call = Arena.ofConfined()) {
            Tensor act = x != null ? x : xq;
            MemorySegment a = isthmus_spmm_args.allocate(call);
            isthmus_spmm_args.m(a, act.dim(0));
            isthmus_spmm_args.x(a, x == null ? MemorySegment.NULL : x.segment());
            isthmus_spmm_args.ldx(a, x == null ? 0 : rowStride(x));
            isthmus_spmm_args.xq(a, xq == null ? MemorySegment.NULL : xq.segment());
            isthmus_spmm_args.ldxq(a, xq == null ? 0 : rowStride(xq));
            isthmus_spmm_args.x_scales(a, xScales == null ? MemorySegment.NULL : xScales.segment());
            isthmus_spmm_args.w_packed(a, w.packed());
            isthmus_spmm_args.bias(a, bias == null ? MemorySegment.NULL : bias.segment());
            isthmus_spmm_args.y(a, y == null ? MemorySegment.NULL : y.segment());
            isthmus_spmm_args.ldy(a, y == null ? 0 : rowStride(y));
            isthmus_spmm_args.c(a, c == null ? MemorySegment.NULL : c.segment());
            isthmus_spmm_args.ldc(a, c == null ? 0 : rowStride(c));
            Native.check(Isthmus.isthmus_spmm(a), op + " (" + w + ")");
        }
    }

    /** The row stride of a matrix; a single row may have any stride (the kernels need ld >= cols). */
    private static long rowStride(Tensor t) {
        return t.dim(0) > 1 ? t.stride(0) : Math.max(t.stride(0), t.dim(1));
    }

    private static Tensor.Lease lease(Tensor t) {
        return t == null ? Tensor.Lease.NONE : t.lease();
    }

    private static void checkWeights(SparseMatrix w, long k, String actName, Tensor act) {
        Checks.notNull(w, "w");
        if (!w.isAlive()) throw new IllegalStateException("w " + w + " is closed");
        if (w.k() != k)
            throw new IllegalArgumentException(actName + " " + Checks.shape(act) + " has K = " + k + " but w is ["
                    + w.n() + ", " + w.k() + "]: inner dimensions differ");
    }

    private static void requireInt8(SparseMatrix w, String what) {
        if (w.dtype() != DType.I8)
            throw new IllegalArgumentException("w " + w + " has F32 values: " + what + " int8 weights "
                    + "(SparseMatrix.fromDenseInt8 or quantizeInt8())");
    }

    private static void checkBiasOut(Tensor bias, Tensor out, long m, long n, Tensor act) {
        if (bias != null) Checks.vector(bias, "bias", DType.F32, n);
        Checks.output(out, "out", DType.F32);
        if (out.dim(0) != m || out.dim(1) != n)
            throw new IllegalArgumentException("out must be [" + m + ", " + n + "] for activations " + Checks.shape(act)
                    + " but is " + Checks.shape(out));
        if (bias != null) Checks.noOverlap(out, "out", bias, "bias");
    }
}
