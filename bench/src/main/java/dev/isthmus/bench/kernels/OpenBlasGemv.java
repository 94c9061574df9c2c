package dev.isthmus.bench.kernels;

import dev.isthmus.bench.Shape;
import dev.isthmus.bench.ffi.OpenBlas;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** OpenBLAS {@code cblas_sgemv} ({@code y = W . x}, M = 1) on f32 in native memory, {@code threads} OpenBLAS threads. */
public final class OpenBlasGemv implements GemmKernel {
    private final Shape s;
    private final OpenBlas blas;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment x, w, y;
    private final boolean threadsSet;
    private final int threads;

    public OpenBlasGemv(Shape s, float[] xf, float[] wf, int threads) {
        if (s.m() != 1) throw new IllegalArgumentException("sgemv computes one row (M = 1), not " + s);
        this.s = s;
        blas = OpenBlas.get();
        if (blas == null) throw new IllegalStateException(OpenBlas.unavailableReason());
        this.threads = threads;
        threadsSet = blas.setThreads(threads);
        x = arena.allocate((long) xf.length * Float.BYTES, 64);
        MemorySegment.copy(xf, 0, x, ValueLayout.JAVA_FLOAT, 0, xf.length);
        w = arena.allocate((long) wf.length * Float.BYTES, 64);
        MemorySegment.copy(wf, 0, w, ValueLayout.JAVA_FLOAT, 0, wf.length);
        y = arena.allocate((long) s.n() * Float.BYTES, 64);
    }

    @Override
    public void run() {
        blas.sgemv(s.n(), s.k(), w, x, y);
    }

    @Override
    public float output(int i, int j) {
        return y.getAtIndex(ValueLayout.JAVA_FLOAT, j);
    }

    @Override
    public double tolerance() {
        return 1e-4;
    }

    @Override
    public String describe() {
        return blas.config() + " cblas_sgemv, " + (threadsSet ? threads + " threads (openblas_set_num_threads)" : "default threads");
    }

    @Override
    public void close() {
        arena.close();
    }
}
