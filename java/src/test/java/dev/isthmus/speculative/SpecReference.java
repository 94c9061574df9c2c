package dev.isthmus.speculative;

import java.util.Arrays;

/** Java double references for the sampling kernels, and the chi-square statistics of the tests. */
final class SpecReference {
    private SpecReference() {}

    // ------------------------------------------------------------------ Philox4x32-10 (Salmon et al. 2011)

    /** The uniform of isthmus.h: counter {lo32(stream), hi32(stream), draw, 0}, key = seed (lo, hi). */
    static double philoxUniform(long seed, long stream, int draw) {
        int[] x = philox(new int[] {(int) stream, (int) (stream >>> 32), draw, 0}, (int) seed, (int) (seed >>> 32));
        long x0 = x[0] & 0xFFFF_FFFFL, x1 = x[1] & 0xFFFF_FFFFL;
        return ((x0 << 21) ^ (x1 >>> 11)) * 0x1.0p-53;
    }

    static int[] philox(int[] ctr, int k0, int k1) {
        int c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
        for (int round = 0; round < 10; round++) {
            if (round > 0) {
                k0 += 0x9E3779B9;
                k1 += 0xBB67AE85;
            }
            long p0 = (0xD2511F53L) * (c0 & 0xFFFF_FFFFL);
            long p1 = (0xCD9E8D57L) * (c2 & 0xFFFF_FFFFL);
            int hi0 = (int) (p0 >>> 32), lo0 = (int) p0, hi1 = (int) (p1 >>> 32), lo1 = (int) p1;
            int n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
            c0 = n0;
            c1 = lo1;
            c2 = n2;
            c3 = lo0;
        }
        return new int[] {c0, c1, c2, c3};
    }

    // ------------------------------------------------------------------ the distribution of isthmus_sample

    /** The distribution a row of logits gives under params (0 for removed tokens), in double. */
    static double[] distribution(float[] logits, SamplingParams p, int[] history) {
        int v = logits.length;
        double[] l = new double[v];
        for (int i = 0; i < v; i++) l[i] = logits[i];
        if (history != null && p.repetitionPenalty() != 1f) {
            boolean[] seen = new boolean[v];
            for (int h : history) {
                if (seen[h]) continue;
                seen[h] = true;
                float x = logits[h];
                l[h] = x > 0 ? x / p.repetitionPenalty() : x * p.repetitionPenalty();
            }
        }
        double[] out = new double[v];
        if (p.temperature() == 0f) {
            int best = 0;
            for (int i = 1; i < v; i++) if (l[i] > l[best]) best = i;
            out[best] = 1;
            return out;
        }
        boolean[] keep = new boolean[v];
        for (int i = 0; i < v; i++) {
            l[i] /= p.temperature();
            keep[i] = l[i] != Double.NEGATIVE_INFINITY;
        }
        if (p.topK() > 0 && p.topK() < v) {
            double[] sorted = l.clone();
            Arrays.sort(sorted);
            double kth = sorted[v - p.topK()];
            for (int i = 0; i < v; i++) if (l[i] < kth) keep[i] = false;
        }
        double[] pr = softmax(l, keep);
        if (p.topP() < 1f) {
            Integer[] order = new Integer[v];
            for (int i = 0; i < v; i++) order[i] = i;
            Arrays.sort(order, (a, b) -> Double.compare(pr[b], pr[a]));
            double cum = 0, last = -1;
            boolean[] k2 = new boolean[v];
            for (int i : order) {
                if (!keep[i]) continue;
                if (cum >= p.topP() && pr[i] != last) break;
                k2[i] = true;
                cum += pr[i];
                last = pr[i];
            }
            keep = k2;
        }
        double[] pr2 = softmax(l, keep);
        if (p.minP() > 0f) {
            double max = 0;
            for (double x : pr2) max = Math.max(max, x);
            for (int i = 0; i < v; i++) if (pr2[i] < p.minP() * max) keep[i] = false;
        }
        return softmax(l, keep);
    }

    static double[] softmax(double[] l, boolean[] keep) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < l.length; i++) if (keep[i]) max = Math.max(max, l[i]);
        double[] out = new double[l.length];
        double sum = 0;
        for (int i = 0; i < l.length; i++) if (keep[i]) sum += out[i] = Math.exp(l[i] - max);
        for (int i = 0; i < l.length; i++) out[i] /= sum;
        return out;
    }

    /** The inverse-CDF token for uniform u over probs in id order, or -1 when u is within tol of a boundary. */
    static int inverseCdf(double[] probs, double u, double tol) {
        double cum = 0;
        int lastKept = -1;
        for (int i = 0; i < probs.length; i++) {
            if (probs[i] <= 0) continue;
            lastKept = i;
            double next = cum + probs[i];
            if (Math.abs(u - next) < tol || Math.abs(u - cum) < tol && cum > 0) return -1;
            if (u < next) return i;
            cum = next;
        }
        return lastKept;
    }

    // ------------------------------------------------------------------ the walk of isthmus_verify

    /** One sequence's verification; borderline when a uniform fell within 1e-9 of a decision boundary. */
    record Verified(int accepted, int[] tokens, int[] path, boolean borderline) {}

    static double[] normalized(double[] x) {
        double s = 0;
        for (double v : x) s += v;
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) out[i] = x[i] / s;
        return out;
    }

    /**
     * The walk isthmus.h describes, in double: draft rows [T] (row 0 root, j + 1 node j), target rows [T + 1],
     * uniforms of stream {@code stream} numbered in the order they are used (one per child tried, then one for
     * the emitted token).
     */
    static Verified verify(DraftTree tree, int[] tokens, double[][] draft, double[][] target, boolean greedy,
                           long seed, long stream, boolean withoutReplacement) {
        int[] out = new int[tree.nodes() + 1], path = new int[tree.nodes()];
        int depth = 0, cur = -1, draw = 0;
        boolean borderline = false;
        for (;;) {
            double[] p = normalized(target[cur + 1]);
            int[] kids = tree.children(cur);
            if (greedy) {
                int best = 0;
                for (int i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
                int next = -1;
                for (int c : kids) if (tokens[c] == best) { next = c; break; }
                out[depth] = best;
                if (next < 0) break;
                path[depth++] = next;
                cur = next;
                continue;
            }
            if (kids.length == 0) {
                double u = philoxUniform(seed, stream, draw++);
                int t = inverseCdf(p, u, 1e-9);
                if (t < 0) return new Verified(depth, null, null, true);
                out[depth] = t;
                break;
            }
            double[] q = normalized(draft[cur + 1]);
            int next = -1;
            for (int ci = 0; ci < kids.length; ci++) {
                int c = kids[ci], t = tokens[c];
                double u = philoxUniform(seed, stream, draw++);
                if (q[t] > 0 && Math.abs(u * q[t] - p[t]) < 1e-9) borderline = true;
                if (u * q[t] < p[t]) {
                    next = c;
                    break;
                }
                double[] r = new double[p.length];
                double s = 0;
                for (int i = 0; i < p.length; i++) s += r[i] = Math.max(0, p[i] - q[i]);
                p = s > 1e-12 ? normalized(r) : q.clone();
                if (withoutReplacement && ci + 1 < kids.length) {
                    q = q.clone();
                    q[t] = 0;
                    q = normalized(q);
                }
            }
            if (next < 0) {
                double u = philoxUniform(seed, stream, draw++);
                int t = inverseCdf(p, u, 1e-9);
                if (t < 0) return new Verified(depth, null, null, true);
                out[depth] = t;
                break;
            }
            out[depth] = tokens[next];
            path[depth++] = next;
            cur = next;
        }
        return new Verified(depth, Arrays.copyOf(out, depth + 1), Arrays.copyOf(path, depth), borderline);
    }

    // ------------------------------------------------------------------ chi-square

    /** Pearson's statistic over categories with expected count >= 5 (the others pooled into one). */
    static double[] chiSquare(long[] observed, double[] probs) {
        long n = 0;
        for (long o : observed) n += o;
        double stat = 0, poolO = 0, poolE = 0;
        int cats = 0;
        for (int i = 0; i < observed.length; i++) {
            double e = probs[i] * n;
            if (e >= 5) {
                stat += (observed[i] - e) * (observed[i] - e) / e;
                cats++;
            } else {
                poolO += observed[i];
                poolE += e;
            }
        }
        if (poolE > 0) {
            stat += (poolO - poolE) * (poolO - poolE) / Math.max(poolE, 1e-300);
            cats++;
        }
        return new double[] {stat, cats - 1};
    }

    /** P(chi2_dof >= x): the regularized upper incomplete gamma Q(dof/2, x/2). */
    static double pValue(double x, double dof) {
        if (x <= 0) return 1;
        return gammaQ(dof / 2, x / 2);
    }

    static double gammaQ(double a, double x) {
        if (x < a + 1) {
            double sum = 1 / a, term = sum;
            for (int n = 1; n < 10_000; n++) {
                term *= x / (a + n);
                sum += term;
                if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
            }
            return 1 - sum * Math.exp(-x + a * Math.log(x) - logGamma(a));
        }
        double b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
        for (int i = 1; i < 10_000; i++) {
            double an = -i * (i - a);
            b += 2;
            d = an * d + b;
            if (Math.abs(d) < 1e-300) d = 1e-300;
            c = b + an / c;
            if (Math.abs(c) < 1e-300) c = 1e-300;
            d = 1 / d;
            double del = d * c;
            h *= del;
            if (Math.abs(del - 1) < 1e-16) break;
        }
        return Math.exp(-x + a * Math.log(x) - logGamma(a)) * h;
    }

    static double logGamma(double x) {
        double[] g = {676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
                12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7};
        if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
        x -= 1;
        double a = 0.99999999999980993;
        double t = x + 7.5;
        for (int i = 0; i < 8; i++) a += g[i] / (x + i + 1);
        return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
    }
}
