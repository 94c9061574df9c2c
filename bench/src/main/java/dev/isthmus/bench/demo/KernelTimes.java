package dev.isthmus.bench.demo;

import java.util.Locale;

/** Where a model's forward time goes, accumulated over calls (nanoseconds). Not thread-safe. */
public final class KernelTimes {
    /** Layer GEMMs: QKV, O, gate/up, down. */
    public long gemm;
    /** RoPE on Q, KV write (RoPE on K), attention. */
    public long attention;
    /** RMSNorms (with the residual add) and SwiGLU. */
    public long normsSwiglu;
    /** Gathering the logit rows and the LM head GEMM. */
    public long lmHead;
    /** Embedding lookup and the rest of forward. */
    public long other;
    public long forwards;
    public long tokens;

    public void reset() {
        gemm = attention = normsSwiglu = lmHead = other = forwards = tokens = 0;
    }

    public long total() {
        return gemm + attention + normsSwiglu + lmHead + other;
    }

    public KernelTimes copy() {
        KernelTimes t = new KernelTimes();
        t.add(this);
        return t;
    }

    public void add(KernelTimes o) {
        gemm += o.gemm;
        attention += o.attention;
        normsSwiglu += o.normsSwiglu;
        lmHead += o.lmHead;
        other += o.other;
        forwards += o.forwards;
        tokens += o.tokens;
    }

    /** "gemm 61% | attention 9% | ..." with the total in ms. */
    @Override
    public String toString() {
        double t = Math.max(1, total());
        return String.format(Locale.ROOT,
                "%.1f ms in %d forwards (%d tokens): layer GEMMs %.0f%% | attention+RoPE+KV write %.0f%% | norms+SwiGLU %.0f%% | LM head %.0f%% | embed+other %.0f%%",
                total() / 1e6, forwards, tokens, 100 * gemm / t, 100 * attention / t, 100 * normsSwiglu / t,
                100 * lmHead / t, 100 * other / t);
    }
}
