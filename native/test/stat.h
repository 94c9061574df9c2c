/* Chi-square goodness of fit for the sampling tests: p-value = Q(dof / 2, chi2 / 2), the regularized
 * upper incomplete gamma function (Numerical Recipes' series and continued fraction). */
#ifndef ISTHMUS_TEST_STAT_H
#define ISTHMUS_TEST_STAT_H

#include <math.h>
#include <stdint.h>

static double stat_gammq(double a, double x) {
    if (x <= 0.0) return 1.0;
    double gln = lgamma(a);
    if (x < a + 1.0) { /* series for P */
        double ap = a, sum = 1.0 / a, del = sum;
        for (int i = 0; i < 100000; i++) {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if (fabs(del) < fabs(sum) * 1e-15) break;
        }
        return 1.0 - sum * exp(-x + a * log(x) - gln);
    }
    double b = x + 1.0 - a, c = 1.0 / 1e-300, d = 1.0 / b, h = d; /* Lentz continued fraction for Q */
    for (int i = 1; i < 100000; i++) {
        double an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if (fabs(d) < 1e-300) d = 1e-300;
        c = b + an / c;
        if (fabs(c) < 1e-300) c = 1e-300;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-15) break;
    }
    return exp(-x + a * log(x) - gln) * h;
}

/* Pearson chi-square of counts[0..n) (total N) against probabilities expect[0..n) (summing to 1). Cells
 * expected below 5 are pooled into one; a count in a cell of probability 0 gives p = 0. */
static double stat_chi2(const int64_t *counts, const double *expect, int64_t n, double *chi2_out, int64_t *dof_out) {
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) total += (double)counts[i];
    double chi2 = 0.0, pool_e = 0.0, pool_o = 0.0;
    int64_t cells = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = expect[i] * total;
        if (expect[i] <= 0.0) {
            if (counts[i] > 0) { *chi2_out = INFINITY; *dof_out = 0; return 0.0; }
            continue;
        }
        if (e < 5.0) { pool_e += e; pool_o += (double)counts[i]; continue; }
        chi2 += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
        cells++;
    }
    if (pool_e > 0.0) {
        chi2 += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        cells++;
    }
    int64_t dof = cells - 1;
    *chi2_out = chi2;
    *dof_out = dof;
    if (dof < 1) return 1.0;
    return stat_gammq(dof / 2.0, chi2 / 2.0);
}

#define STAT_P_MIN 1e-6 /* fail below: fixed seeds make every run the same, so this never flakes */

#endif
