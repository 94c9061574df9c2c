package dev.isthmus.bench;

import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.bench.ffi.BenchShim;
import dev.isthmus.bench.ffi.JlamaNative;
import dev.isthmus.bench.ffi.OpenBlas;

import java.lang.module.ModuleFinder;

/**
 * Which (shape, impl) combinations run here, and why the others do not. The runner filters with it
 * before launching anything; {@link GemmBenchmark} checks again so that a direct JMH run of an
 * unsupported combination fails with the same reason.
 */
public final class Availability {
    /** isthmus' scalar reference (about 3 GOP/s: 0.1 s per call at 8 x 4096 x 4096, 6 s at 512). */
    public static final int REF_MAX_M = 8;
    /** The plain Java f32 loops (about 4 GOP/s on 2 cores: 0.25 s per call at 32 x 4096 x 4096). */
    public static final int JAVA_F32_MAX_M = 32;
    /** The Vector API int8 kernel (about 0.15 s per call at 512 x 4096 x 4096 on 2 Zen 4 cores). */
    public static final int VECTOR_INT8_MAX_M = 512;

    private static Isa supported;
    private static String isthmusError;

    private Availability() {}

    /** The best isthmus variant here, or null when libisthmus does not load ({@link #isthmusError()}). */
    public static synchronized Isa isthmusSupported() {
        if (supported == null && isthmusError == null) {
            try {
                supported = Isthmus.supportedIsa();
            } catch (Throwable t) {
                isthmusError = "libisthmus does not load: " + t;
            }
        }
        return supported;
    }

    public static synchronized String isthmusError() {
        isthmusSupported();
        return isthmusError;
    }

    /** Why {@code impl} cannot run {@code shape} here, or null when it can. */
    public static String skipReason(Impl impl, Shape s) {
        if (impl.isIsthmus() && isthmusSupported() == null) return isthmusError();
        switch (impl) {
            case ISTHMUS_AVX512, ISTHMUS_AVX512_G32 -> {
                if (isthmusSupported().compareTo(Isa.AVX512) < 0)
                    return Machine.hasAvx512Vnni() ? "this libisthmus build has no AVX-512 variant (supported: " + isthmusSupported() + ")"
                            : "CPU has no AVX-512 VNNI (isthmus supports " + isthmusSupported() + " here)";
            }
            case ISTHMUS_AVX2, ISTHMUS_AVX2_G32 -> {
                if (isthmusSupported().compareTo(Isa.AVX2) < 0) return "CPU has no AVX2 + FMA (isthmus supports " + isthmusSupported() + " here)";
            }
            case ISTHMUS_REF -> {
                if (s.m() > REF_MAX_M) return "ref skipped for M > " + REF_MAX_M + ": the scalar reference needs seconds to minutes per call";
            }
            case ISTHMUS_FUSED -> {
            }
            case JAVA_F32 -> {
                if (s.m() > JAVA_F32_MAX_M) return "plain f32 loops skipped for M > " + JAVA_F32_MAX_M + ": a second or more per call";
            }
            case VECTOR_INT8 -> {
                if (ModuleFinder.ofSystem().find("jdk.incubator.vector").isEmpty()) return "this JDK has no jdk.incubator.vector";
                if (s.m() > VECTOR_INT8_MAX_M) return "Vector API kernel skipped for M > " + VECTOR_INT8_MAX_M + ": seconds per call";
            }
            case JLAMA_Q8Q4 -> {
                if (s.k() % 256 != 0) return "gemm_q8_q4 needs K % 256 == 0";
                if (!JlamaNative.load()) return JlamaNative.unavailableReason();
            }
            case ONEDNN -> {
                BenchShim shim = BenchShim.get();
                if (shim == null) return BenchShim.unavailableReason();
                if (!shim.dnnlAvailable()) return "oneDNN not built into " + shim.path() + ": " + shim.dnnlInfo();
            }
            case OPENBLAS_F32 -> {
                if (OpenBlas.get() == null) return OpenBlas.unavailableReason();
            }
        }
        return null;
    }

    /** Why {@code impl} cannot run attention case {@code c} here, or null when it can. */
    public static String skipReason(AttentionImpl impl, AttentionCase c) {
        switch (impl) {
            case ISTHMUS_AVX512, ISTHMUS_AVX2 -> {
                if (isthmusSupported() == null) return isthmusError();
                if (impl == AttentionImpl.ISTHMUS_AVX512 && isthmusSupported().compareTo(Isa.AVX512) < 0)
                    return Machine.hasAvx512Vnni() ? "this libisthmus build has no AVX-512 variant (supported: " + isthmusSupported() + ")"
                            : "CPU has no AVX-512 (isthmus supports " + isthmusSupported() + " here)";
                if (isthmusSupported().compareTo(Isa.AVX2) < 0) return "CPU has no AVX2 + FMA (isthmus supports " + isthmusSupported() + " here)";
                try {
                    Class.forName("dev.isthmus.attention.KvCache");
                } catch (ClassNotFoundException e) {
                    return "this isthmus build has no dev.isthmus.attention (KV cache)";
                }
            }
            case VECTOR_F32 -> {
                if (ModuleFinder.ofSystem().find("jdk.incubator.vector").isEmpty()) return "this JDK has no jdk.incubator.vector";
                if (c.decode()) return "the Vector API baseline is for prefill (decode is measured against the read bandwidth)";
                if (c.batch() != 1 || !c.kv().equals("f32"))
                    return "the Vector API baseline runs one sequence with f32 K/V (isthmus rows with other K/V types are compared with its f32 row)";
            }
        }
        return null;
    }
}
