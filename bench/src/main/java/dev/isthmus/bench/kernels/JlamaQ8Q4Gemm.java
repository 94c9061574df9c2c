package dev.isthmus.bench.kernels;

import com.github.tjake.jlama.tensor.operations.cnative.NativeSimd;
import dev.isthmus.bench.Data;
import dev.isthmus.bench.Shape;
import dev.isthmus.bench.ffi.JlamaNative;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Jlama's closest native kernel, {@code gemm_q8_q4} (jlama-native 0.8.4) through Jlama's own jextract
 * bindings: int8 activations with an f32 scale per block of 32 times <b>4-bit</b> weights (blocks of 32,
 * 16 bytes + an f32 scale each), f32 out. Jlama has no int8 x int8 kernel; this one reads half the weight
 * bytes of the int8 implementations, so it is the closest available, not the same precision.
 *
 * <p>Each call is single-threaded; like Jlama, N is split in {@code threads} contiguous parts, run on a
 * fixed pool of {@code threads - 1} workers plus the calling thread.
 *
 * <p><b>Jlama bug worked around:</b> libjlama's tile recursion ({@code gemm()} in vector_simd.c, derived from
 * llamafile's mnpack) recurses into {@code gemm(m0, mp, np, n)} where llamafile has {@code (m0, m, np, n)},
 * so when both the rows ({@code M % 5} for M >= 5) and the columns of a call ({@code n % 5}) leave a
 * remainder, the bottom-right corner of the output is never written. Every call here therefore gets a
 * column count that is a multiple of 5, and the last part adds one call for the {@code N % 5} rest (whose
 * tile width is then the rest itself): the same kernel, complete output.
 */
public final class JlamaQ8Q4Gemm implements GemmKernel {
    private final Shape s;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment af, a, bf, b, r;
    private final int flags, threads;
    private final ExecutorService pool;
    private final List<Future<?>> pending = new ArrayList<>();

    public JlamaQ8Q4Gemm(Shape s, Data.Int8 aq, Data.Q4 wq, int threads, boolean avx512) {
        if (!JlamaNative.load()) throw new IllegalStateException(JlamaNative.unavailableReason());
        if (s.k() % 256 != 0) throw new IllegalArgumentException("gemm_q8_q4 needs K % 256 == 0, K = " + s.k());
        if (aq.block() != 32) throw new IllegalArgumentException("activations must have a scale per block of 32");
        this.s = s;
        this.threads = threads;
        this.flags = JlamaNative.flags(avx512);
        af = copy(aq.scales());
        a = copy(aq.q());
        bf = copy(wq.scales());
        b = copy(wq.packed());
        r = arena.allocate((long) s.m() * s.n() * Float.BYTES, 64);
        pool = threads > 1 ? Executors.newFixedThreadPool(threads - 1, t -> {
            Thread th = new Thread(t, "jlama-gemm");
            th.setDaemon(true);
            return th;
        }) : null;
    }

    private MemorySegment copy(byte[] v) {
        MemorySegment seg = arena.allocate(v.length, 64);
        MemorySegment.copy(v, 0, seg, ValueLayout.JAVA_BYTE, 0, v.length);
        return seg;
    }

    private MemorySegment copy(float[] v) {
        MemorySegment seg = arena.allocate((long) v.length * Float.BYTES, 64);
        MemorySegment.copy(v, 0, seg, ValueLayout.JAVA_FLOAT, 0, v.length);
        return seg;
    }

    /** Columns [n0, n0 + count) of y. */
    private void call(int n0, int count) {
        int n = s.n(), k = s.k();
        if (count > 0)
            NativeSimd.gemm_q8_q4(flags, af, a, 0, bf, b, 0, r, 0, s.m(), n0, count, k,
                    k, k / 32, k / 2, k / 32, n);
    }

    /** Part p of N: a multiple of 5 columns; the last part also takes the N % 5 rest (see the class doc). */
    private void part(int p) {
        int n = s.n(), blocks = n / 5;
        int b0 = (int) ((long) blocks * p / threads), b1 = (int) ((long) blocks * (p + 1) / threads);
        call(5 * b0, 5 * (b1 - b0));
        if (p == threads - 1) call(5 * blocks, n - 5 * blocks);
    }

    @Override
    public void run() {
        pending.clear();
        for (int p = 1; p < threads; p++) {
            int part = p;
            pending.add(pool.submit(() -> part(part)));
        }
        part(0);
        try {
            for (Future<?> f : pending) f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    @Override
    public float output(int i, int j) {
        return r.getAtIndex(ValueLayout.JAVA_FLOAT, (long) i * s.n() + j);
    }

    @Override
    public double tolerance() {
        return 0.2; // 4-bit weights
    }

    @Override
    public String describe() {
        return "Jlama gemm_q8_q4 (libjlama.so, jlama-native 0.8.4, AVX2 code), flags " + flags + ", " + threads + " threads";
    }

    @Override
    public void close() {
        if (pool != null) pool.shutdownNow();
        arena.close();
    }
}
