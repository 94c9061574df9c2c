package dev.isthmus.speculative;

import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The adaptive draft length's cost model: estimates, the choice, and the one-time exploration. */
class DraftLengthRuleTest {

    private static double[] table(int max) {
        double[] t = new double[max + 1];
        Arrays.fill(t, Double.NaN);
        return t;
    }

    /** Brute force over [min, max] of expected tokens / cost, shortest on ties. */
    private static int best(int min, int max, double a, java.util.function.IntToDoubleFunction cost) {
        int k = min;
        double v = -1;
        for (int c = min; c <= max; c++) {
            double x = DraftLengthRule.expectedTokens(a, c) / cost.applyAsDouble(c);
            if (x > v * (1 + 1e-12)) { v = x; k = c; }
        }
        return k;
    }

    @Test
    void estimatesInterpolateExtrapolateAndNeverDecrease() {
        double[] t = table(8);
        assertTrue(Double.isNaN(DraftLengthRule.targetCost(t, 3)), "nothing measured");
        t[4] = 10;
        assertEquals(10, DraftLengthRule.targetCost(t, 1), 0, "one point: flat");
        assertEquals(10, DraftLengthRule.targetCost(t, 8), 0, "one point: flat");
        t[2] = 6;
        assertEquals(8, DraftLengthRule.targetCost(t, 3), 1e-12, "between 2 and 4");
        assertEquals(14, DraftLengthRule.targetCost(t, 6), 1e-12, "slope of 2 and 4 beyond 4");
        assertEquals(4, DraftLengthRule.targetCost(t, 1), 1e-12, "slope of 2 and 4 below 2");
        double[] down = table(8);
        down[2] = 10;
        down[3] = 9;   // noise: shorter looked dearer
        assertEquals(9, DraftLengthRule.targetCost(down, 6), 1e-12, "a decreasing slope is taken as flat");
        assertEquals(6, DraftLengthRule.targetCost(t, 2), 0, "measured values are returned as they are");
    }

    @Test
    void withoutMeasurementsOrWithAFixedRatioTheCostIsOnePlusKRatio() {
        for (double a : new double[] {0, 0.3, 0.7, 0.9, 0.99}) {
            int want = best(1, 8, a, c -> 1 + 0.1 * c);
            assertEquals(want, DraftLengthRule.choose(1, 8, a, Double.NaN, table(8), Double.NaN), "a = " + a);
            double[] t = table(8);
            t[3] = 5;
            int fixed = best(1, 8, a, c -> 1 + 0.3 * c);
            assertEquals(fixed, DraftLengthRule.choose(1, 8, a, 0.5, t, 0.3), "fixed ratio ignores measurements, a = " + a);
        }
    }

    @Test
    void aComputeBoundTargetGetsShorterDraftsThanAMemoryBoundOne() {
        double a = 0.8, draft = 0.05;
        double[] flat = table(8), linear = table(8);
        for (int k = 1; k <= 8; k++) {
            flat[k] = 1.0;                          // batch 1: the pass reads the weights once, whatever k
            linear[k] = 0.4 * (1 + 0.6 * k);        // batch 8 on 2 cores: every extra row costs
        }
        int kFlat = DraftLengthRule.choose(1, 8, a, draft, flat, Double.NaN);
        int kLinear = DraftLengthRule.choose(1, 8, a, draft, linear, Double.NaN);
        assertEquals(best(1, 8, a, c -> 1.0 + c * draft), kFlat);
        assertEquals(best(1, 8, a, c -> 0.4 * (1 + 0.6 * c) + c * draft), kLinear);
        assertTrue(kLinear < kFlat, "compute-bound " + kLinear + " vs memory-bound " + kFlat);
    }

    @Test
    void anUnmeasuredNeighbourOfTheBestIsTriedOnce() {
        double a = 0.8, draft = 0.05;
        double[] t = table(8);
        t[4] = 1.0;                                // only k = 4 measured: flat, best is long
        int first = DraftLengthRule.choose(1, 8, a, draft, t, Double.NaN);
        int flatBest = best(1, 8, a, c -> 1.0 + c * draft);
        assertEquals(flatBest - 1, first, "k - 1 of the best is tried first");
        t[first] = 1.0;
        int second = DraftLengthRule.choose(1, 8, a, draft, t, Double.NaN);
        assertTrue(second == flatBest + 1 || second == flatBest,
                "then k + 1 if it is unmeasured (" + second + ")");
        for (int k = 1; k <= 8; k++) t[k] = 1.0;
        assertEquals(flatBest, DraftLengthRule.choose(1, 8, a, draft, t, Double.NaN), "all measured: no exploration");
        assertEquals(3, DraftLengthRule.choose(3, 3, a, draft, t, Double.NaN), "min = max");
    }
}
