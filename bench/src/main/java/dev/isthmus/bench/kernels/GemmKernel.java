package dev.isthmus.bench.kernels;

/** One implementation set up for one shape: {@link #run()} computes {@code y = x . W^T} once. */
public interface GemmKernel extends AutoCloseable {
    /** One GEMM (what JMH times). */
    void run();

    /** Element (i, j) of the last result, for the correctness check; NaN where the output is not readable. */
    float output(int i, int j);

    /** Relative RMS error against the f64 reference of the f32 inputs this kernel may have (its quantization). */
    double tolerance();

    /** One line: what runs (variant, threads, layout). */
    String describe();

    @Override
    void close();
}
