package dev.isthmus.speculative;

/**
 * The adaptive draft length of {@link SpeculativeDecoder}: the chain length {@code k} in {@code [min, max]}
 * that maximizes the expected tokens per unit of time,
 * {@code (1 - a^(k+1)) / ((1 - a) (c_t(k) + k c_d))}, with {@code a} the per-token acceptance rate,
 * {@code c_d} the time of one draft pass and {@code c_t(k)} the time of the target pass over the root and k
 * draft tokens (for every sequence of the batch).
 *
 * <p>{@code c_t(k)} is measured per {@code k} (a moving average kept by the decoder), because it depends on
 * k where the target pass is compute-bound (many sequences, few cores) and hardly at all where it is
 * memory-bound (one sequence). A length not measured yet is estimated from the measured ones: linearly
 * between the nearest measured lengths on either side, along the slope of the two nearest on one side
 * (never decreasing), or flat when only one is measured. So that the slope gets known, a step whose best
 * length has an unmeasured neighbour ({@code k - 1} first, then {@code k + 1}) drafts that neighbour once.
 * Ties go to the shortest length. Package-private; tested on its own.
 */
final class DraftLengthRule {
    private DraftLengthRule() {}

    /** Expected tokens per step (accepted + the one emitted) at per-token acceptance a and length k. */
    static double expectedTokens(double a, int k) {
        return a >= 1 ? k + 1 : (1 - Math.pow(a, k + 1)) / (1 - a);
    }

    /**
     * c_t(k) from {@code targetCost[k]} (NaN: not measured), as the class comment says; NaN when nothing is
     * measured.
     */
    static double targetCost(double[] targetCost, int k) {
        if (!Double.isNaN(targetCost[k])) return targetCost[k];
        int lo = -1, hi = -1;
        for (int j = k - 1; j >= 0 && lo < 0; j--) if (!Double.isNaN(targetCost[j])) lo = j;
        for (int j = k + 1; j < targetCost.length && hi < 0; j++) if (!Double.isNaN(targetCost[j])) hi = j;
        if (lo >= 0 && hi >= 0)
            return targetCost[lo] + (targetCost[hi] - targetCost[lo]) * (k - lo) / (double) (hi - lo);
        int near = lo >= 0 ? lo : hi;
        if (near < 0) return Double.NaN;
        int second = -1;   // the next measured one on the same side, for a slope
        if (lo >= 0) {
            for (int j = lo - 1; j >= 0 && second < 0; j--) if (!Double.isNaN(targetCost[j])) second = j;
        } else {
            for (int j = hi + 1; j < targetCost.length && second < 0; j++) if (!Double.isNaN(targetCost[j])) second = j;
        }
        if (second < 0) return targetCost[near];
        double slope = Math.max(0, (targetCost[near] - targetCost[second]) / (near - second));
        return Math.max(0, targetCost[near] + slope * (k - near));
    }

    /**
     * The length for the next step.
     *
     * @param a          per-token acceptance rate, in [0, 0.99]
     * @param draftCost  one draft pass, or NaN when not measured
     * @param targetCost measured target pass per length ({@code [max + 1]}, NaN where not measured)
     * @param ratio      fixed draft / target cost ratio, or NaN to use the measured costs
     */
    static int choose(int min, int max, double a, double draftCost, double[] targetCost, double ratio) {
        if (max == min) return min;
        boolean measured = Double.isNaN(ratio) && !Double.isNaN(draftCost);
        boolean anyTarget = false;
        for (int c = min; c <= max; c++) anyTarget |= !Double.isNaN(targetCost[c]);
        measured &= anyTarget;
        double fixed = Double.isNaN(ratio) ? 0.1 : ratio;
        int best = min;
        double bestValue = -1;
        for (int c = min; c <= max; c++) {
            double cost = measured ? targetCost(targetCost, c) + c * draftCost : 1 + c * fixed;
            double value = expectedTokens(a, c) / cost;
            if (value > bestValue * (1 + 1e-12)) {
                bestValue = value;
                best = c;
            }
        }
        if (measured) {
            if (best - 1 >= min && Double.isNaN(targetCost[best - 1])) return best - 1;
            if (best + 1 <= max && Double.isNaN(targetCost[best + 1])) return best + 1;
        }
        return best;
    }
}
