package dev.isthmus.bench.kernels;

import dev.isthmus.bench.Shape;
import dev.isthmus.bench.ffi.OpenBlas;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * OpenBLAS {@code cblas_sgemm} on f32 x and W in native memory, {@code threads} OpenBLAS threads; or, with
 * {@code gemv}, {@code cblas_sgemv} (M = 1: what a caller multiplying one vector uses).
 */
public final class OpenBlasGemm implements GemmKernel {
    private final Shape s;
    private final OpenBlas blas;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment x, w, y;
    private final boolean threadsSet;
    private final int threads;
    private final boolean gemv;

    public OpenBlasGemm(Shape s, float[] xf, float[] wf, int threads) {
        this(s, xf, wf, threads, false);
    }

    public OpenBlasGemm(Shape s, float[] xf, float[] wf, int threads, boolean gemv) {
        if (gemv && s.m() != 1) throw new IllegalArgumentException("sgemv computes one row (M = 1), not " + s);
        this.s = s;
        this.gemv = gemv;
        blas = OpenBlas.get();
        if (blas == null) throw new IllegalStateException(OpenBlas.unavailableReason());
        this.threads = threads;
        threadsSet = blas.setThreads(threads);
        x = arena.allocate((long) xf.length * Float.BYTES, 64);
        MemorySegment.copy(xf, 0, x, ValueLayout.JAVA_FLOAT, 0, xf.length);
        w = arena.allocate((long) wf.length * Float.BYTES, 64);
        MemorySegment.copy(wf, 0, w, ValueLayout.JAVA_FLOAT, 0, wf.length);
        y = arena.allocate((long) s.m() * s.n() * Float.BYTES, 64);
    }

    @Override
    public void run() {
        if (gemv) blas.sgemv(s.n(), s.k(), w, x, y);
        else blas.sgemmXWt(s.m(), s.n(), s.k(), x, w, y);
    }

    @Override
    public float output(int i, int j) {
        return y.getAtIndex(ValueLayout.JAVA_FLOAT, (long) i * s.n() + j);
    }

    @Override
    public double tolerance() {
        return 1e-4;
    }

    @Override
    public String describe() {
        return blas.config() + (gemv ? " cblas_sgemv, " : " cblas_sgemm, ") + (threadsSet ? threads + " threads (openblas_set_num_threads)" : "default threads");
    }

    @Override
    public void close() {
        arena.close();
    }
}
