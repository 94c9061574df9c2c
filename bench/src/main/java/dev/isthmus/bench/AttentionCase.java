package dev.isthmus.bench;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One attention workload of {@link AttentionBenchmark}, written {@code decode-4096-b8-f16} or
 * {@code prefill-512-b1-f32} (the JMH parameter): Llama-3-8B-like heads, 32 query heads over 8 KV heads
 * (GQA 4), head dim 128.
 *
 * <ul>
 *   <li>decode: every one of {@code batch} sequences holds {@code context} tokens, the newest one is the
 *       query (q_len = 1) and attends to all {@code context} keys;</li>
 *   <li>prefill: every one of {@code batch} fresh sequences gets {@code context} tokens at once
 *       (q_len = context), causal.</li>
 * </ul>
 *
 * @param kv the KV cache element type: f32, f16, bf16 or int8 (one f32 scale per token and KV head, for
 *           K and V each)
 */
public record AttentionCase(Kind kind, int context, int batch, String kv) {
    public static final int Q_HEADS = 32, KV_HEADS = 8, HEAD_DIM = 128;

    public enum Kind { DECODE, PREFILL }

    private static final Pattern FORM = Pattern.compile("(decode|prefill)-(\\d+)-b(\\d+)-(f32|f16|bf16|int8)");

    public AttentionCase {
        if (context < 1 || batch < 1) throw new IllegalArgumentException("context and batch must be >= 1");
        if (!kv.matches("f32|f16|bf16|int8")) throw new IllegalArgumentException("kv type " + kv + " is not f32, f16, bf16 or int8");
    }

    /** Parses "decode-4096-b8-f16", "prefill-512-b1-f32". */
    public static AttentionCase parse(String s) {
        Matcher m = FORM.matcher(s.trim().toLowerCase(Locale.ROOT));
        if (!m.matches())
            throw new IllegalArgumentException("attention case '" + s + "' is not (decode|prefill)-CONTEXT-bBATCH-(f32|f16|bf16|int8)");
        return new AttentionCase(m.group(1).equals("decode") ? Kind.DECODE : Kind.PREFILL,
                Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3)), m.group(4));
    }

    public boolean decode() {
        return kind == Kind.DECODE;
    }

    /** Query tokens per sequence. */
    public int qLen() {
        return decode() ? 1 : context;
    }

    /** Query tokens of the whole batch (rows of q and out). */
    public int tokens() {
        return batch * qLen();
    }

    /** Bytes of one element of K or V in the cache. */
    public int elementBytes() {
        return switch (kv) {
            case "f32" -> 4;
            case "f16", "bf16" -> 2;
            default -> 1;
        };
    }

    /** Bytes of K and V of one token in one layer: kv_heads * (2 * head_dim * element + the int8 scales). */
    public long kvBytesPerToken() {
        return (long) KV_HEADS * (2L * HEAD_DIM * elementBytes() + (kv.equals("int8") ? 2 * Float.BYTES : 0));
    }

    /** Bytes of K and V one call reads: the whole context of every sequence (scales included). */
    public long kvBytesRead() {
        return kvBytesPerToken() * context * batch;
    }

    /** Keys attended per query head, summed over the batch's queries: causal, so query i sees i + 1 keys of a fresh sequence. */
    public double keysAttended() {
        if (decode()) return (double) batch * context;
        double n = context;
        return batch * n * (n + 1) / 2;
    }

    /** 4 * head_dim * q_heads per (query, key) pair: 2 for q.k, 2 for p.v. */
    public double flops() {
        return 4.0 * HEAD_DIM * Q_HEADS * keysAttended();
    }

    @Override
    public String toString() {
        return (decode() ? "decode" : "prefill") + "-" + context + "-b" + batch + "-" + kv;
    }
}
