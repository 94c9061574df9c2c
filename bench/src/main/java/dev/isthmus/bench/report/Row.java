package dev.isthmus.bench.report;

import dev.isthmus.bench.Impl;
import dev.isthmus.bench.Shape;

import java.util.Arrays;

/**
 * One (shape, impl) measurement: the measurement iterations' average times per GEMM (µs), JMH's score and
 * its 99.9% confidence half-width; or a failure.
 *
 * @param iterationsUs measurement iterations, µs per GEMM
 * @param scoreUs      JMH's score (mean over iterations), µs
 * @param errorUs      JMH's score error (99.9% CI half-width), µs; NaN with fewer than 2 iterations
 * @param kernel       the kernel's own description, from the forked JVM's log (may be null)
 * @param failure      why it failed, or null
 */
public record Row(Shape shape, Impl impl, double[] iterationsUs, double scoreUs, double errorUs, String kernel, String failure) {

    public static Row failed(Shape shape, Impl impl, String why) {
        return new Row(shape, impl, new double[0], Double.NaN, Double.NaN, null, why);
    }

    public boolean ok() {
        return failure == null && iterationsUs.length > 0;
    }

    /** Median over the measurement iterations, µs per GEMM. */
    public double medianUs() {
        if (iterationsUs.length == 0) return Double.NaN;
        double[] s = iterationsUs.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    private double gops(double us) {
        return shape.ops() / (us * 1e-6) / 1e9;
    }

    /** GOP/s at the median time. */
    public double gopsMedian() {
        return gops(medianUs());
    }

    /** GOP/s of the slowest and fastest iteration. */
    public double gopsMin() {
        return gops(Arrays.stream(iterationsUs).max().orElse(Double.NaN));
    }

    public double gopsMax() {
        return gops(Arrays.stream(iterationsUs).min().orElse(Double.NaN));
    }

    /** JMH's 99.9% error as a percentage of its score. */
    public double errorPct() {
        return 100 * errorUs / scoreUs;
    }

    /** Bytes of weights as stored (int8 N*K, q4 N*K/2, f32 4*N*K; scales not counted). */
    public double weightBytes() {
        return impl.weights.bytesPerElement * shape.n() * shape.k();
    }

    /** Weight bytes streamed per second at the median time, GB/s. */
    public double weightGbs() {
        return weightBytes() / (medianUs() * 1e-6) / 1e9;
    }
}
