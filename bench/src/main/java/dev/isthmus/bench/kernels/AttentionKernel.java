package dev.isthmus.bench.kernels;

/** One attention implementation set up for one workload: {@link #run()} computes the batch's attention once. */
public interface AttentionKernel extends AutoCloseable {
    /** One attention call (what JMH times). */
    void run();

    /** Element (token, q_head * head_dim + dim) of the last result. */
    float output(int token, int col);

    /** The KV cache layer the last {@link #run()} read (0 where there is one). */
    default int lastLayer() {
        return 0;
    }

    /** Relative RMS error against the f64 reference of the f32 inputs this kernel may have (its K/V storage type). */
    double tolerance();

    /** One line: what runs (variant, threads, layout, memory). */
    String describe();

    @Override
    void close();
}
