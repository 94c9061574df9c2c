package dev.isthmus.bench.ffi;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * FFM downcalls into OpenBLAS ({@code -Disthmus.bench.openblas}, default the Debian libopenblas
 * {@value #DEFAULT_PATH}): {@code cblas_sgemm}, {@code cblas_sgemv}, and {@code openblas_set_num_threads} where the
 * library has it (a forked JMH JVM cannot be given OPENBLAS_NUM_THREADS).
 */
public final class OpenBlas {
    public static final String PATH_PROPERTY = "isthmus.bench.openblas";
    public static final String DEFAULT_PATH = "/usr/lib/x86_64-linux-gnu/libopenblas.so.0";
    public static final int ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

    private static OpenBlas instance;
    private static String unavailable;

    private final Path path;
    private final MethodHandle sgemm, sgemv;
    private final MethodHandle setThreads, getConfig;

    private OpenBlas(Path path) {
        this.path = path;
        SymbolLookup lib = SymbolLookup.libraryLookup(path, Arena.global());
        Linker l = Linker.nativeLinker();
        sgemm = l.downcallHandle(lib.find("cblas_sgemm").orElseThrow(() -> new IllegalStateException("no cblas_sgemm in " + path)),
                FunctionDescriptor.ofVoid(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT,
                        ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT));
        sgemv = l.downcallHandle(lib.find("cblas_sgemv").orElseThrow(() -> new IllegalStateException("no cblas_sgemv in " + path)),
                FunctionDescriptor.ofVoid(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT,
                        JAVA_FLOAT, ADDRESS, JAVA_INT));
        Optional<MemorySegment> st = lib.find("openblas_set_num_threads");
        setThreads = st.map(s -> l.downcallHandle(s, FunctionDescriptor.ofVoid(JAVA_INT))).orElse(null);
        Optional<MemorySegment> gc = lib.find("openblas_get_config");
        getConfig = gc.map(s -> l.downcallHandle(s, FunctionDescriptor.of(ADDRESS))).orElse(null);
    }

    public static synchronized OpenBlas get() {
        if (instance != null || unavailable != null) return instance;
        Path p = Path.of(System.getProperty(PATH_PROPERTY, DEFAULT_PATH));
        if (!Files.exists(p)) {
            unavailable = "OpenBLAS not installed (" + p + " missing; Debian: apt-get install libopenblas-dev, or -D"
                    + PATH_PROPERTY + "=...)";
            return null;
        }
        try {
            instance = new OpenBlas(p);
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

    /** Sets OpenBLAS's thread count; false when the library has no openblas_set_num_threads. */
    public boolean setThreads(int threads) {
        if (setThreads == null) return false;
        try {
            setThreads.invokeExact(threads);
            return true;
        } catch (Throwable t) {
            throw BenchShim.rethrow(t);
        }
    }

    /** openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64". */
    public String config() {
        if (getConfig == null) return "OpenBLAS (no openblas_get_config)";
        try {
            return ((MemorySegment) getConfig.invokeExact()).reinterpret(1024).getString(0).trim();
        } catch (Throwable t) {
            throw BenchShim.rethrow(t);
        }
    }

    /** {@code y[M,N] = x[M,K] . w[N,K]^T}, all row-major f32 in native memory. */
    public void sgemmXWt(int m, int n, int k, MemorySegment x, MemorySegment w, MemorySegment y) {
        try {
            sgemm.invokeExact(ROW_MAJOR, NO_TRANS, TRANS, m, n, k, 1f, x, k, w, k, 0f, y, n);
        } catch (Throwable t) {
            throw BenchShim.rethrow(t);
        }
    }

    /** {@code y[N] = w[N,K] . x[K]}, row-major f32 in native memory. */
    public void sgemv(int n, int k, MemorySegment w, MemorySegment x, MemorySegment y) {
        try {
            sgemv.invokeExact(ROW_MAJOR, NO_TRANS, n, k, 1f, w, k, x, 1, 0f, y, 1);
        } catch (Throwable t) {
            throw BenchShim.rethrow(t);
        }
    }
}
