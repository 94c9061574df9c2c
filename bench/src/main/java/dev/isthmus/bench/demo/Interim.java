package dev.isthmus.bench.demo;

import dev.isthmus.Tensor;
import dev.isthmus.attention.AttentionParams;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.KvCache;
import dev.isthmus.attention.Rope;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** TEMPORARY: stand-ins for ops on branches not merged yet (spec-plumbing). Removed once they land. */
final class Interim {
    private Interim() {}

    static void rmsNorm(Tensor x, Tensor residual, Tensor weight, float eps, Tensor y) {
        int t = (int) x.dim(0), d = (int) x.dim(1);
        MemorySegment xs = x.segment(), ys = y.segment(), ws = weight.segment();
        MemorySegment rs = residual == null ? null : residual.segment();
        for (int i = 0; i < t; i++) {
            long base = (long) i * d;
            double ss = 0;
            for (int j = 0; j < d; j++) {
                float v = xs.getAtIndex(ValueLayout.JAVA_FLOAT, base + j);
                if (rs != null) {
                    v += rs.getAtIndex(ValueLayout.JAVA_FLOAT, base + j);
                    xs.setAtIndex(ValueLayout.JAVA_FLOAT, base + j, v);
                }
                ss += (double) v * v;
            }
            float inv = (float) (1 / Math.sqrt(ss / d + eps));
            for (int j = 0; j < d; j++)
                ys.setAtIndex(ValueLayout.JAVA_FLOAT, base + j,
                        xs.getAtIndex(ValueLayout.JAVA_FLOAT, base + j) * inv * ws.getAtIndex(ValueLayout.JAVA_FLOAT, j));
        }
    }

    static void swiglu(Tensor gate, Tensor up, Tensor out) {
        int t = (int) gate.dim(0), f = (int) gate.dim(1);
        long lg = gate.stride(0), lu = up.stride(0), lo = out.stride(0);
        MemorySegment g = gate.segment(), u = up.segment(), o = out.segment();
        for (int i = 0; i < t; i++)
            for (int j = 0; j < f; j++) {
                float a = g.getAtIndex(ValueLayout.JAVA_FLOAT, i * lg + j);
                float b = u.getAtIndex(ValueLayout.JAVA_FLOAT, i * lu + j);
                o.setAtIndex(ValueLayout.JAVA_FLOAT, i * lo + j, (float) (a / (1 + Math.exp(-a))) * b);
            }
    }

    static void write(KvCache cache, int layer, Batch batch, Tensor k, Tensor v, Rope rope, long[] positions) {
        cache.write(layer, batch, k, v, rope);
    }

    static void attention(KvCache cache, int layer, Batch batch, Tensor q, Tensor out, AttentionParams p, int[] treeParents) {
        if (treeParents != null)
            for (int i = 0; i < treeParents.length; i++)
                if (treeParents[i] != i - 1 && !(treeParents[i] == -1 && i == 0))
                    ; // causal only until spec-plumbing lands: chains (parent = previous token) are exact
        cache.attention(layer, batch, q, out, p);
    }
}
