package dev.isthmus;

/**
 * One kernel variant of the native registry ({@code native/src/kernels.def}).
 *
 * <pre>{@code
 * for (KernelInfo k : Isthmus.kernels())
 *     System.out.println(k.name() + (k.available() ? "" : " (not on this CPU)"));
 * }</pre>
 *
 * @param name      e.g. {@code gemm_s8s8_f32__avx2}
 * @param op        the public operation it implements, e.g. {@code gemm_s8}
 * @param isa       its instruction set
 * @param available built in and supported by this CPU
 */
public record KernelInfo(String name, String op, Isa isa, boolean available) {}
