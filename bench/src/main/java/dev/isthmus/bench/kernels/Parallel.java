package dev.isthmus.bench.kernels;

import java.util.concurrent.ForkJoinPool;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * A parallel IntStream over chunks, run inside a ForkJoinPool of exactly {@code threads} workers (a
 * parallel stream started from a pool's task runs in that pool, not in the common pool).
 */
final class Parallel implements AutoCloseable {
    private final ForkJoinPool pool;
    private final int threads;

    Parallel(int threads) {
        this.threads = threads;
        this.pool = threads > 1 ? new ForkJoinPool(threads) : null;
    }

    int threads() {
        return threads;
    }

    /** Calls {@code body} for every chunk in [0, chunks), spread over the threads. */
    void forEach(int chunks, IntConsumer body) {
        if (pool == null) {
            for (int c = 0; c < chunks; c++) body.accept(c);
        } else {
            pool.submit(() -> IntStream.range(0, chunks).parallel().forEach(body)).join();
        }
    }

    @Override
    public void close() {
        if (pool != null) pool.shutdownNow();
    }
}
