package dev.isthmus;

import dev.isthmus.internal.Native;
import dev.isthmus.loader.NativeLibrary;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What runs: the loaded library, its ISA variant, threads, and the kernel registry.
 *
 * <pre>{@code
 * System.out.println(Isthmus.isa() + " on " + Isthmus.threads() + " threads");
 * Isthmus.setIsaCap(Isa.AVX2);       // process-wide; e.g. to compare variants
 * }</pre>
 */
public final class Isthmus {
    private Isthmus() {}

    static {
        Native.ensureLoaded();
    }

    /** Path of the loaded libisthmus.so. */
    public static Path libraryPath() {
        return NativeLibrary.path();
    }

    /** The library's version string. */
    public static String version() {
        return dev.isthmus.bindings.Isthmus.isthmus_version().getString(0);
    }

    /** The library's ABI version (equal to the bindings', or loading would have failed). */
    public static int abiVersion() {
        return dev.isthmus.bindings.Isthmus.isthmus_abi_version();
    }

    /** The ISA variant kernels use now (the best supported, lowered by the cap). */
    public static Isa isa() {
        return Isa.of(dev.isthmus.bindings.Isthmus.isthmus_isa());
    }

    /** The best variant this build and CPU support. */
    public static Isa supportedIsa() {
        return Isa.of(dev.isthmus.bindings.Isthmus.isthmus_isa_supported());
    }

    /** The current cap ({@code -Disthmus.isa} or the environment's ISTHMUS_ISA set it at load). */
    public static Isa isaCap() {
        return Isa.of(dev.isthmus.bindings.Isthmus.isthmus_get_isa_cap());
    }

    /**
     * Caps the ISA variant for the whole process. Weights packed under one variant keep that
     * variant's layout: pack again after lowering the cap below it (or use {@link Isa#REF}, which
     * reads every layout).
     */
    public static void setIsaCap(Isa cap) {
        if (cap == null) throw new IllegalArgumentException("cap is null");
        Native.check(dev.isthmus.bindings.Isthmus.isthmus_set_isa_cap(cap.code()), "setIsaCap");
    }

    /** Threads the kernels use. */
    public static int threads() {
        return dev.isthmus.bindings.Isthmus.isthmus_get_num_threads();
    }

    /** Sets the threads the kernels use, 1..1024 (default: the online CPUs). */
    public static void setThreads(int threads) {
        if (threads < 1 || threads > 1024)
            throw new IllegalArgumentException("threads = " + threads + ", must be in [1, 1024]");
        Native.check(dev.isthmus.bindings.Isthmus.isthmus_set_num_threads(threads), "setThreads");
    }

    /** Every kernel variant the library lists, available or not. */
    public static List<KernelInfo> kernels() {
        long n = dev.isthmus.bindings.Isthmus.isthmus_kernel_count();
        List<KernelInfo> out = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment info = dev.isthmus.bindings.isthmus_kernel_info.allocate(arena);
            for (long i = 0; i < n; i++) {
                Native.check(dev.isthmus.bindings.Isthmus.isthmus_kernel_get_info(i, info), "kernels");
                out.add(new KernelInfo(
                        dev.isthmus.bindings.isthmus_kernel_info.name(info).getString(0),
                        dev.isthmus.bindings.isthmus_kernel_info.op(info).getString(0),
                        Isa.of(dev.isthmus.bindings.isthmus_kernel_info.isa(info)),
                        dev.isthmus.bindings.isthmus_kernel_info.available(info) != 0));
            }
        }
        return List.copyOf(out);
    }

    /** One line for logs: version, library, ISA, threads. */
    public static String describe() {
        return "isthmus " + version() + " (ABI " + abiVersion() + ") " + libraryPath() + ", ISA " + isa()
                + " (supported " + supportedIsa() + ", cap " + isaCap() + "), " + threads() + " threads";
    }
}
