package dev.isthmus;

import dev.isthmus.internal.Native;
import dev.isthmus.internal.Resources;
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
 * System.out.println(Isthmus.memoryStats());   // native bytes, open objects
 * }</pre>
 *
 * <h2>Finding leaks: the debug mode</h2>
 * Tensors that own their memory, {@code PackedWeights}, {@code KvCache} and {@code SparseMatrix} hold native
 * memory until {@code close()}; the garbage collector does not free it. {@link #memoryStats()} always counts
 * those objects and their bytes (two atomic adds per object). Run with {@code -Disthmus.debug=true} (or the
 * environment variable {@code ISTHMUS_DEBUG=1}) and, in addition, each such object records where it was
 * created: {@link #openResources()} lists the ones still open with their creation stacks, and an object that
 * becomes unreachable without {@code close()} is reported through {@code System.getLogger("dev.isthmus")} at
 * {@code WARNING} with its kind, shape and creation site (from a {@link java.lang.ref.Cleaner}, some time after
 * a garbage collection). Debug mode costs a stack capture per object: use it in tests and while hunting a leak.
 *
 * <h2>Threads and closing</h2>
 * Ops are safe to call from many threads at once on shared read-only inputs. Every op leases the memory of
 * the isthmus objects it passes to native code for the length of the call, so {@code close()} of an owned
 * tensor, a {@code PackedWeights} or a {@code SparseMatrix} that another thread is using throws
 * {@link IllegalStateException} (close it after the call returns), and {@code KvCache.close()} fails the same
 * way while another thread is inside a call on the cache. Memory is never freed under a running kernel.
 * Memory you borrow ({@link Tensor#wrap}, {@link Tensor#allocate(java.lang.foreign.Arena, DType, long...)})
 * is not leased: native code receives its address inside an argument struct, which the FFM linker does not
 * keep alive, so keeping its {@code Arena} open until every op using it has returned is your job.
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

    /**
     * The native library's own allocations and the native memory held by open isthmus objects (see
     * {@link MemoryStats}). Cheap: one native call and two counter reads.
     */
    public static MemoryStats memoryStats() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = dev.isthmus.bindings.isthmus_memory_stats.allocate(arena);
            Native.check(dev.isthmus.bindings.Isthmus.isthmus_get_memory_stats(s), "memoryStats");
            return new MemoryStats(
                    dev.isthmus.bindings.isthmus_memory_stats.live_bytes(s),
                    dev.isthmus.bindings.isthmus_memory_stats.live_allocs(s),
                    dev.isthmus.bindings.isthmus_memory_stats.peak_bytes(s),
                    dev.isthmus.bindings.isthmus_memory_stats.total_allocs(s),
                    dev.isthmus.bindings.isthmus_memory_stats.total_frees(s),
                    dev.isthmus.bindings.isthmus_memory_stats.failed_allocs(s),
                    dev.isthmus.bindings.isthmus_memory_stats.scratch_bytes(s),
                    dev.isthmus.bindings.isthmus_memory_stats.pool_threads(s),
                    Resources.bytes(), Resources.objects());
        }
    }

    /**
     * Frees the calling thread's native scratch buffer now (the next op on this thread that needs one
     * allocates it again). Scratch buffers are otherwise kept per thread and freed when the thread exits.
     */
    public static void releaseThreadScratch() {
        Native.check(dev.isthmus.bindings.Isthmus.isthmus_release_thread_scratch(), "releaseThreadScratch");
    }

    /** True when the debug mode ({@code -Disthmus.debug=true} or {@code ISTHMUS_DEBUG=1}) is on. */
    public static boolean debugMode() {
        return Resources.debug();
    }

    /**
     * The isthmus objects owning native memory that are not closed, oldest first, with their creation
     * stacks; only in debug mode (the list is empty when it is off). An entry marked {@code unreachable} was
     * garbage collected without {@code close()}: its memory is leaked.
     */
    public static List<OpenResource> openResources() {
        List<OpenResource> out = new ArrayList<>();
        for (Resources.Handle h : Resources.open())
            out.add(new OpenResource(h.kind(), h.description(), h.bytes(), List.of(h.creationStack()), h.isUnreachable()));
        return List.copyOf(out);
    }

    /** One line for logs: version, library, ISA, threads. */
    public static String describe() {
        return "isthmus " + version() + " (ABI " + abiVersion() + ") " + libraryPath() + ", ISA " + isa()
                + " (supported " + supportedIsa() + ", cap " + isaCap() + "), " + threads() + " threads";
    }
}
