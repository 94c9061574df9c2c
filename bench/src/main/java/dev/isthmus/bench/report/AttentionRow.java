package dev.isthmus.bench.report;

import dev.isthmus.bench.AttentionCase;
import dev.isthmus.bench.AttentionImpl;

import java.util.Arrays;

/**
 * One (case, impl) attention measurement: the measurement iterations' average times per call (µs), JMH's
 * score and its 99.9% confidence half-width; or a failure.
 *
 * @param iterationsUs measurement iterations, µs per attention call
 * @param scoreUs      JMH's score (mean over iterations), µs
 * @param errorUs      JMH's score error (99.9% CI half-width), µs; NaN with fewer than 2 iterations
 * @param kernel       the kernel's own description, from the forked JVM (may be null)
 * @param failure      why it failed, or null
 */
public record AttentionRow(AttentionCase workload, AttentionImpl impl, double[] iterationsUs, double scoreUs, double errorUs,
                           String kernel, String failure) {

    public static AttentionRow failed(AttentionCase c, AttentionImpl impl, String why) {
        return new AttentionRow(c, impl, new double[0], Double.NaN, Double.NaN, null, why);
    }

    public boolean ok() {
        return failure == null && iterationsUs.length > 0;
    }

    /** Median over the measurement iterations, µs per call. */
    public double medianUs() {
        if (iterationsUs.length == 0) return Double.NaN;
        double[] s = iterationsUs.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    public double minUs() {
        return Arrays.stream(iterationsUs).min().orElse(Double.NaN);
    }

    public double maxUs() {
        return Arrays.stream(iterationsUs).max().orElse(Double.NaN);
    }

    /** JMH's 99.9% error as a percentage of its score. */
    public double errorPct() {
        return 100 * errorUs / scoreUs;
    }

    /** K/V bytes read per second at {@code us} per call, GB/s (10^9 bytes). */
    public double gbs(double us) {
        return workload.kvBytesRead() / (us * 1e-6) / 1e9;
    }

    /** GFLOP/s at {@code us} per call. */
    public double gflops(double us) {
        return workload.flops() / (us * 1e-6) / 1e9;
    }

    public double gbsMedian() {
        return gbs(medianUs());
    }

    public double gflopsMedian() {
        return gflops(medianUs());
    }
}
