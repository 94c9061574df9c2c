package dev.isthmus.bench;

import java.util.Arrays;
import java.util.stream.Collectors;

/** The implementations {@link GemmBenchmark} measures, by their JMH parameter name. */
public enum Impl {
    ISTHMUS_AVX512("isthmus-avx512", Weights.INT8,
            "isthmus AVX-512 VNNI kernel, int8 x int8 -> f32, per-channel weights, activations quantized per row beforehand"),
    ISTHMUS_AVX2("isthmus-avx2", Weights.INT8,
            "isthmus AVX2 kernel, int8 x int8 -> f32, per-channel weights, activations quantized per row beforehand"),
    ISTHMUS_REF("isthmus-ref", Weights.INT8,
            "isthmus portable scalar C reference, int8 x int8 -> f32, per-channel weights"),
    ISTHMUS_AVX512_G32("isthmus-avx512-g32", Weights.INT8,
            "isthmus AVX-512 VNNI kernel, weights and activations per group of 32 (Q8_0-like)"),
    ISTHMUS_AVX2_G32("isthmus-avx2-g32", Weights.INT8,
            "isthmus AVX2 kernel, weights and activations per group of 32 (Q8_0-like)"),
    ISTHMUS_FUSED("isthmus-fused", Weights.INT8,
            "isthmus best ISA, f32 activations quantized per row inside the call (Ops.matmul(Tensor, ...))"),
    JAVA_F32("java-f32", Weights.F32,
            "plain Java f32 triple loop, parallel over chunks of N"),
    VECTOR_INT8("vector-int8", Weights.INT8,
            "pure Java int8 kernel on the Vector API (jdk.incubator.vector), byte -> short widen, int accumulate, per-row scales, parallel over chunks of N"),
    JLAMA_Q8Q4("jlama-q8q4", Weights.Q4,
            "Jlama 0.8.4 native gemm_q8_q4 through its jextract bindings: int8 activations x 4-bit weights (blocks of 32), N split across the threads"),
    ONEDNN("onednn", Weights.INT8,
            "oneDNN matmul u8 x s8 -> s32, weights reordered once into oneDNN's preferred layout (no f32 epilogue)"),
    OPENBLAS_F32("openblas-f32", Weights.F32,
            "OpenBLAS cblas_sgemm f32 (row-major, W transposed)");

    /** How the weights are stored, for the weight-bandwidth column. */
    public enum Weights {
        INT8(1.0), Q4(0.5), F32(4.0);

        /** Bytes per weight element (scales not counted). */
        public final double bytesPerElement;

        Weights(double b) {
            bytesPerElement = b;
        }
    }

    public final String id;
    public final Weights weights;
    public final String description;

    Impl(String id, Weights weights, String description) {
        this.id = id;
        this.weights = weights;
        this.description = description;
    }

    /** The implementation named {@code id} ("isthmus-avx2", ...). */
    public static Impl of(String id) {
        for (Impl i : values()) if (i.id.equals(id)) return i;
        throw new IllegalArgumentException("unknown impl '" + id + "'; known: "
                + Arrays.stream(values()).map(i -> i.id).collect(Collectors.joining(", ")));
    }

    public boolean isIsthmus() {
        return id.startsWith("isthmus-");
    }

    @Override
    public String toString() {
        return id;
    }
}
