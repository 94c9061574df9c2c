package dev.isthmus.bench;

import java.util.Arrays;
import java.util.stream.Collectors;

/** Who computes a {@link SparseCase}: an isthmus sparse variant on a sparse case, a dense baseline on a dense one. */
public enum SparseImpl {
    ISTHMUS_AVX512("isthmus-avx512", true),
    ISTHMUS_AVX2("isthmus-avx2", true),
    /** OpenBLAS cblas_sgemm on the dense f32 matrix. */
    OPENBLAS_SGEMM("openblas-sgemm", false),
    /** OpenBLAS cblas_sgemv on the dense f32 matrix (M = 1: what a user calls for a vector). */
    OPENBLAS_SGEMV("openblas-sgemv", false),
    /** The project's dense INT8 GEMM (isthmus_gemm_s8, per-row scales) on the best ISA. */
    ISTHMUS_GEMM_S8("isthmus-gemm-s8", false);

    public final String id;
    public final boolean sparse;

    SparseImpl(String id, boolean sparse) {
        this.id = id;
        this.sparse = sparse;
    }

    public static SparseImpl of(String id) {
        for (SparseImpl i : values()) if (i.id.equals(id)) return i;
        throw new IllegalArgumentException("unknown sparse impl '" + id + "'; known: "
                + Arrays.stream(values()).map(i -> i.id).collect(Collectors.joining(", ")));
    }

    /** Why this impl does not run this case by design (null when it does). */
    public String scope(SparseCase c) {
        if (sparse != !c.dense()) return sparse ? "sparse kernels run sparse workloads" : "baselines run dense workloads";
        return switch (this) {
            case OPENBLAS_SGEMM -> c.dtype().equals("f32") ? null : "f32 baseline";
            case OPENBLAS_SGEMV -> !c.dtype().equals("f32") ? "f32 baseline" : c.m() != 1 ? "matrix-vector only (M = 1)" : null;
            case ISTHMUS_GEMM_S8 -> c.dtype().equals("s8") ? null : "int8 baseline";
            default -> null;
        };
    }

    @Override
    public String toString() {
        return id;
    }
}
