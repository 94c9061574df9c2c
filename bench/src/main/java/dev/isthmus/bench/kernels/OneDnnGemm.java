package dev.isthmus.bench.kernels;

import dev.isthmus.bench.Shape;
import dev.isthmus.bench.ffi.BenchShim;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * oneDNN's int8 matmul, u8 x s8 -> s32, through the bench shim (weights reordered once into oneDNN's
 * preferred layout at creation; the shim owns the buffers, so there is no output to check). With the
 * OpenMP runtime the thread count is set with {@code omp_set_num_threads} on the calling thread.
 */
public final class OneDnnGemm implements GemmKernel {
    private final BenchShim shim;
    private final MemorySegment handle;
    private final MethodHandle ompSetThreads;
    private final int threads;
    private Thread configured;
    private final String info;

    public OneDnnGemm(Shape s, int threads) {
        shim = BenchShim.get();
        if (shim == null) throw new IllegalStateException(BenchShim.unavailableReason());
        if (!shim.dnnlAvailable()) throw new IllegalStateException(shim.dnnlInfo());
        this.threads = threads;
        this.info = shim.dnnlInfo();
        ompSetThreads = ompSetNumThreads();
        handle = shim.dnnlCreate(s.m(), s.n(), s.k());
        if (handle.equals(MemorySegment.NULL)) throw new IllegalStateException("ibench_dnnl_create(" + s + ") failed");
    }

    /** omp_set_num_threads from the libgomp oneDNN already pulled in, or null (threadpool runtime). */
    private static MethodHandle ompSetNumThreads() {
        for (String lib : new String[] {"libgomp.so.1", "libiomp5.so"}) {
            try {
                Optional<MemorySegment> f = SymbolLookup.libraryLookup(lib, Arena.global()).find("omp_set_num_threads");
                if (f.isPresent())
                    return Linker.nativeLinker().downcallHandle(f.get(), FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT));
            } catch (IllegalArgumentException ignored) {
                // not there
            }
        }
        return null;
    }

    @Override
    public void run() {
        if (ompSetThreads != null && configured != Thread.currentThread()) {
            try {
                ompSetThreads.invokeExact(threads);
            } catch (Throwable t) {
                throw new IllegalStateException(t);
            }
            configured = Thread.currentThread();
        }
        if (shim.dnnlRun(handle) != 0) throw new IllegalStateException("ibench_dnnl_run failed");
    }

    @Override
    public float output(int i, int j) {
        return Float.NaN;
    }

    @Override
    public double tolerance() {
        return Double.NaN;
    }

    @Override
    public String describe() {
        return info + ", u8 x s8 -> s32, " + (ompSetThreads != null ? threads + " OpenMP threads" : "default threads");
    }

    @Override
    public void close() {
        shim.dnnlDestroy(handle);
    }
}
