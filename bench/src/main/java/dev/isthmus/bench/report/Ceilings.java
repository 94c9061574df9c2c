package dev.isthmus.bench.report;

import dev.isthmus.bench.ffi.BenchShim;

/**
 * The machine's ceilings, measured in the same run through libisthmus_bench: the register-only int8 MAC
 * loops (AVX2 maddubs+madd, AVX-512 VNNI) and the read bandwidth, all on the benchmark's threads.
 *
 * @param avx2Gops    AVX2 int8 peak, GOP/s (NaN when not measured)
 * @param vnniGops    AVX-512 VNNI int8 peak, GOP/s (0 when the CPU lacks it, NaN when not measured)
 * @param readGbs     read bandwidth, GB/s
 * @param missing     why nothing was measured, or null
 */
public record Ceilings(int threads, double seconds, long bandwidthBytes, int reps,
                       double avx2Gops, double vnniGops, double readGbs, String missing) {

    public static Ceilings measure(int threads, double seconds, long bandwidthBytes, int reps) {
        BenchShim shim = BenchShim.get();
        if (shim == null)
            return new Ceilings(threads, seconds, bandwidthBytes, reps, Double.NaN, Double.NaN, Double.NaN, BenchShim.unavailableReason());
        double avx2 = shim.avx2Int8PeakGops(threads, seconds);
        double vnni = shim.vnniInt8PeakGops(threads, seconds);
        double bw = shim.readBandwidthGbs(threads, bandwidthBytes, reps);
        return new Ceilings(threads, seconds, bandwidthBytes, reps, avx2, vnni, bw, null);
    }

    /** Only the read bandwidth (the attention suite's ceiling); the int8 peaks stay NaN. */
    public static Ceilings measureBandwidth(int threads, long bandwidthBytes, int reps) {
        BenchShim shim = BenchShim.get();
        if (shim == null)
            return new Ceilings(threads, 0, bandwidthBytes, reps, Double.NaN, Double.NaN, Double.NaN, BenchShim.unavailableReason());
        return new Ceilings(threads, 0, bandwidthBytes, reps, Double.NaN, Double.NaN, shim.readBandwidthGbs(threads, bandwidthBytes, reps), null);
    }

    public boolean measured() {
        return missing == null;
    }

    /** The best int8 compute peak (VNNI where present). */
    public double bestInt8Gops() {
        return Math.max(avx2Gops, vnniGops);
    }

    /** The int8-weight streaming bound at M rows: every weight byte read once for M MACs, 2*M*BW GOP/s. */
    public double int8StreamingBoundGops(int m) {
        return 2.0 * m * readGbs;
    }
}
