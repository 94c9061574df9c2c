package dev.isthmus.bench.ffi;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Hand-written FFM downcalls into {@code libisthmus_bench.so} (native/bench/bench_shim.h): the oneDNN
 * int8 baseline and the machine ceilings. The library is found through {@code -Disthmus.bench.lib}
 * (default {@value #DEFAULT_PATH}, relative to the working directory).
 */
public final class BenchShim {
    public static final String PATH_PROPERTY = "isthmus.bench.lib";
    public static final String DEFAULT_PATH = "native/target/cmake/bench/libisthmus_bench.so";

    private static BenchShim instance;
    private static String unavailable;

    private final Path path;
    private final MethodHandle avx2Peak, vnniPeak, readBandwidth, dnnlAvailable, dnnlCreate, dnnlRun, dnnlDestroy, dnnlInfo;

    private BenchShim(Path path) {
        this.path = path;
        SymbolLookup lib = SymbolLookup.libraryLookup(path, Arena.global());
        Linker l = Linker.nativeLinker();
        avx2Peak = l.downcallHandle(find(lib, "ibench_avx2_int8_peak_gops"), FunctionDescriptor.of(JAVA_DOUBLE, JAVA_INT, JAVA_DOUBLE));
        vnniPeak = l.downcallHandle(find(lib, "ibench_vnni_int8_peak_gops"), FunctionDescriptor.of(JAVA_DOUBLE, JAVA_INT, JAVA_DOUBLE));
        readBandwidth = l.downcallHandle(find(lib, "ibench_read_bandwidth_gbs"), FunctionDescriptor.of(JAVA_DOUBLE, JAVA_INT, JAVA_LONG, JAVA_INT));
        dnnlAvailable = l.downcallHandle(find(lib, "ibench_dnnl_available"), FunctionDescriptor.of(JAVA_INT));
        dnnlCreate = l.downcallHandle(find(lib, "ibench_dnnl_create"), FunctionDescriptor.of(ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG));
        dnnlRun = l.downcallHandle(find(lib, "ibench_dnnl_run"), FunctionDescriptor.of(JAVA_INT, ADDRESS));
        dnnlDestroy = l.downcallHandle(find(lib, "ibench_dnnl_destroy"), FunctionDescriptor.ofVoid(ADDRESS));
        dnnlInfo = l.downcallHandle(find(lib, "ibench_dnnl_info"), FunctionDescriptor.of(ADDRESS));
    }

    private static MemorySegment find(SymbolLookup lib, String name) {
        return lib.find(name).orElseThrow(() -> new IllegalStateException("symbol " + name + " missing"));
    }

    /** Where the shim is looked for: the property, else the default, made absolute. */
    public static Path configuredPath() {
        return Path.of(System.getProperty(PATH_PROPERTY, DEFAULT_PATH)).toAbsolutePath().normalize();
    }

    /** The loaded shim, or null when it cannot be loaded ({@link #unavailableReason()} says why). */
    public static synchronized BenchShim get() {
        if (instance != null || unavailable != null) return instance;
        Path p = configuredPath();
        if (!Files.isRegularFile(p)) {
            unavailable = "libisthmus_bench.so not found at " + p + " (build with mvn install, or pass -D" + PATH_PROPERTY + "=...)";
            return null;
        }
        try {
            instance = new BenchShim(p);
        } catch (RuntimeException | LinkageError e) {
            unavailable = "cannot load " + p + ": " + e.getMessage();
        }
        return instance;
    }

    public static synchronized String unavailableReason() {
        get();
        return unavailable;
    }

    public Path path() {
        return path;
    }

    /** Register-only AVX2 int8 MAC loop on {@code threads} threads: GOP/s. */
    public double avx2Int8PeakGops(int threads, double seconds) {
        try {
            return (double) avx2Peak.invokeExact(threads, seconds);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The same with AVX-512 VNNI; 0 when the CPU lacks it. */
    public double vnniInt8PeakGops(int threads, double seconds) {
        try {
            return (double) vnniPeak.invokeExact(threads, seconds);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Best-of-{@code reps} read bandwidth of {@code threads} threads over {@code bytes}: GB/s. */
    public double readBandwidthGbs(int threads, long bytes, int reps) {
        try {
            return (double) readBandwidth.invokeExact(threads, bytes, reps);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public boolean dnnlAvailable() {
        try {
            return (int) dnnlAvailable.invokeExact() != 0;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** "oneDNN x.y.z (OpenMP)" or why it is missing. */
    public String dnnlInfo() {
        try {
            MemorySegment s = (MemorySegment) dnnlInfo.invokeExact();
            return s.reinterpret(4096).getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A oneDNN u8 x s8 -> s32 matmul primitive for [M,K] x [K,N] with its buffers; NULL on failure. */
    public MemorySegment dnnlCreate(long m, long n, long k) {
        try {
            return (MemorySegment) dnnlCreate.invokeExact(m, n, k);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int dnnlRun(MemorySegment handle) {
        try {
            return (int) dnnlRun.invokeExact(handle);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void dnnlDestroy(MemorySegment handle) {
        try {
            dnnlDestroy.invokeExact(handle);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }
}
