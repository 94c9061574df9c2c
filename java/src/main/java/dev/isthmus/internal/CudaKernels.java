package dev.isthmus.internal;

import dev.isthmus.DType;
import dev.isthmus.bindings.cuda.IsthmusCuda;
import dev.isthmus.bindings.cuda.isthmus_cuda_gemm_s8_args;
import dev.isthmus.bindings.cuda.isthmus_cuda_quantize_args;
import dev.isthmus.quant.QuantScheme;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The launches of the CUDA kernels with raw device addresses; callers have validated every argument. */
public final class CudaKernels {
    private CudaKernels() {}

    /** ISTHMUS_CUDA_F32 / BF16 / S8 / S32 of a dtype. */
    public static int dtype(DType t) {
        return switch (t) {
            case F32 -> IsthmusCuda.ISTHMUS_CUDA_F32();
            case BF16 -> IsthmusCuda.ISTHMUS_CUDA_BF16();
            case I8 -> IsthmusCuda.ISTHMUS_CUDA_S8();
            case I32 -> IsthmusCuda.ISTHMUS_CUDA_S32();
        };
    }

    /** ISTHMUS_CUDA_SCALE_PER_TENSOR / PER_ROW / PER_GROUP of a scheme's granularity (the header's constants). */
    public static int granularity(QuantScheme scheme) {
        return switch (scheme.granularity()) {
            case PER_TENSOR -> IsthmusCuda.ISTHMUS_CUDA_SCALE_PER_TENSOR();
            case PER_ROW -> IsthmusCuda.ISTHMUS_CUDA_SCALE_PER_ROW();
            case PER_GROUP -> IsthmusCuda.ISTHMUS_CUDA_SCALE_PER_GROUP();
        };
    }

    /** Largest K of the GEMM (a header constant: no library needed). */
    public static long maxK() {
        return IsthmusCuda.ISTHMUS_CUDA_GEMM_MAX_K();
    }

    public static void quantize(int device, long rows, long cols, long x, DType xType, long ldx, int granularity,
                                long group, long q, long ldq, long scales, long stream, String operation) {
        try (Arena call = Arena.ofConfined()) {
            MemorySegment a = isthmus_cuda_quantize_args.allocate(call);
            isthmus_cuda_quantize_args.device(a, device);
            isthmus_cuda_quantize_args.rows(a, rows);
            isthmus_cuda_quantize_args.cols(a, cols);
            isthmus_cuda_quantize_args.x(a, Cuda.ptr(x));
            isthmus_cuda_quantize_args.x_dtype(a, dtype(xType));
            isthmus_cuda_quantize_args.ldx(a, ldx);
            isthmus_cuda_quantize_args.granularity(a, granularity);
            isthmus_cuda_quantize_args.group(a, group);
            isthmus_cuda_quantize_args.q(a, Cuda.ptr(q));
            isthmus_cuda_quantize_args.ldq(a, ldq);
            isthmus_cuda_quantize_args.scales(a, Cuda.ptr(scales));
            isthmus_cuda_quantize_args.stream(a, Cuda.ptr(stream));
            Cuda.check(IsthmusCuda.isthmus_cuda_quantize_s8(a), operation);
        }
    }

    /** The arguments of one GEMM (addresses are device addresses; 0 for NULL). */
    public record Gemm(int device, long m, long n, long k, long a, long lda, int aGranularity, long aScales,
                       long w, long ldw, int wGranularity, long group, long wScales, long bias,
                       long y, DType yType, long ldy) {

        private MemorySegment args(Arena call, long workspace, long workspaceSize, long stream) {
            MemorySegment s = isthmus_cuda_gemm_s8_args.allocate(call);
            isthmus_cuda_gemm_s8_args.device(s, device);
            isthmus_cuda_gemm_s8_args.m(s, m);
            isthmus_cuda_gemm_s8_args.n(s, n);
            isthmus_cuda_gemm_s8_args.k(s, k);
            isthmus_cuda_gemm_s8_args.a(s, Cuda.ptr(a));
            isthmus_cuda_gemm_s8_args.lda(s, lda);
            isthmus_cuda_gemm_s8_args.a_granularity(s, aGranularity);
            isthmus_cuda_gemm_s8_args.a_scales(s, Cuda.ptr(aScales));
            isthmus_cuda_gemm_s8_args.w(s, Cuda.ptr(w));
            isthmus_cuda_gemm_s8_args.ldw(s, ldw);
            isthmus_cuda_gemm_s8_args.w_granularity(s, wGranularity);
            isthmus_cuda_gemm_s8_args.group(s, group);
            isthmus_cuda_gemm_s8_args.w_scales(s, Cuda.ptr(wScales));
            isthmus_cuda_gemm_s8_args.bias(s, Cuda.ptr(bias));
            isthmus_cuda_gemm_s8_args.y(s, Cuda.ptr(y));
            isthmus_cuda_gemm_s8_args.y_dtype(s, dtype(yType));
            isthmus_cuda_gemm_s8_args.ldy(s, ldy);
            isthmus_cuda_gemm_s8_args.kernel(s, IsthmusCuda.ISTHMUS_CUDA_GEMM_AUTO());
            isthmus_cuda_gemm_s8_args.workspace(s, Cuda.ptr(workspace));
            isthmus_cuda_gemm_s8_args.workspace_size(s, workspaceSize);
            isthmus_cuda_gemm_s8_args.stream(s, Cuda.ptr(stream));
            return s;
        }

        /** Workspace bytes this call needs. */
        public long workspaceSize(String operation) {
            try (Arena call = Arena.ofConfined()) {
                MemorySegment out = call.allocate(ValueLayout.JAVA_LONG);
                Cuda.check(IsthmusCuda.isthmus_cuda_gemm_s8_workspace_size(args(call, 0, 0, 0), out), operation);
                return out.get(ValueLayout.JAVA_LONG, 0);
            }
        }

        /** The kernel variant this call runs (AUTO's choice). */
        public String kernelName(String operation) {
            try (Arena call = Arena.ofConfined()) {
                MemorySegment out = call.allocate(ValueLayout.ADDRESS);
                Cuda.check(IsthmusCuda.isthmus_cuda_gemm_s8_select(args(call, 0, 0, 0), out), operation);
                return out.get(ValueLayout.ADDRESS, 0).reinterpret(256).getString(0);
            }
        }

        /** Enqueues the GEMM on {@code stream}. */
        public void launch(long workspace, long workspaceSize, long stream, String operation) {
            try (Arena call = Arena.ofConfined()) {
                Cuda.check(IsthmusCuda.isthmus_cuda_gemm_s8(args(call, workspace, workspaceSize, stream)), operation);
            }
        }
    }

    /** {@code v} rounded up to a multiple of 256 (the alignment isthmus_cuda_malloc gives). */
    public static long align256(long v) {
        return Math.addExact(v, 255) & ~255L;
    }
}
