package dev.isthmus.bench.kernels;

import dev.isthmus.bench.AttentionCase;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Vector API attention baseline against the f64 scalar reference, on random inputs: query and key
 * counts that are 1, odd, primes and non-multiples of the 4-row block and the 64-key tile, a cached prefix
 * (kvLen > qLen, the queries being the newest tokens), MHA, GQA and MQA.
 *
 * <p>Tolerance: |got - want| <= 1e-4 * (1 + |want|) per element. Both compute from the same f32 inputs;
 * the kernel accumulates in f32 (dot products of up to 128 terms, sums of up to 300 exponentials) and
 * uses the Vector API's exp (within 1 ulp), so its relative error is ~1e-6; 1e-4 leaves room for the
 * accumulation order, and an indexing or masking bug gives errors of the order of the values (0.01 to 1).
 */
class AttentionAgreementTest {
    static final double TOL = 1e-4;

    private static float[] random(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextDouble() * 2 - 1);
        return a;
    }

    @ParameterizedTest(name = "qLen {0}, kvLen {1}, heads {2}/{3}, d {4}")
    @CsvSource({
            "1, 1, 1, 1, 16",
            "1, 300, 4, 2, 32",    // decode over a prefix: one query, 300 keys
            "2, 2, 2, 2, 16",
            "5, 5, 4, 1, 64",      // MQA
            "7, 37, 8, 2, 64",
            "13, 13, 6, 3, 32",
            "33, 100, 4, 4, 128",  // MHA, prefix of 67 tokens
            "64, 64, 4, 1, 128",   // one full tile
            "65, 65, 8, 2, 16",    // one past it
            "131, 131, 32, 8, 128" // Llama-3-8B heads, 3 tiles, ragged last block
    })
    void vectorMatchesScalarReference(int qLen, int kvLen, int qHeads, int kvHeads, int d) {
        long seed = 0xA77E_0000L + qLen * 1_000_003L + kvLen * 1009L + qHeads * 31L + d;
        SplittableRandom r = new SplittableRandom(seed);
        float[] q = random(r, qLen * qHeads * d), k = random(r, kvLen * kvHeads * d), v = random(r, kvLen * kvHeads * d);
        // larger logits than uniform inputs give (1/sqrt(d) * sum of d products): a peaked softmax as well as a flat one
        for (int i = 0; i < q.length; i++) q[i] *= 4;
        float scale = (float) (1 / Math.sqrt(d));
        float[] want = ScalarAttention.attention(q, k, v, qLen, kvLen, qHeads, kvHeads, d, scale);
        try (VectorAttention va = new VectorAttention(qLen, kvLen, qHeads, kvHeads, d, scale, q, k, v, 2)) {
            va.run();
            float[] got = va.result();
            for (int i = 0; i < want.length; i++) {
                int row = i / (qHeads * d), h = i / d % qHeads;
                assertEquals(want[i], got[i], TOL * (1 + Math.abs(want[i])),
                        "out[" + row + ", head " + h + ", " + i % d + "] (seed " + seed + ")");
            }
            va.run(); // a second call on the same state gives the same result
            assertArrayEquals(got.clone(), va.result());
        }
    }

    @Test
    void resultDoesNotDependOnThreads() {
        int qLen = 70, kvLen = 90, qHeads = 8, kvHeads = 2, d = 64;
        SplittableRandom r = new SplittableRandom(7);
        float[] q = random(r, qLen * qHeads * d), k = random(r, kvLen * kvHeads * d), v = random(r, kvLen * kvHeads * d);
        float scale = (float) (1 / Math.sqrt(d));
        try (VectorAttention one = new VectorAttention(qLen, kvLen, qHeads, kvHeads, d, scale, q, k, v, 1);
             VectorAttention two = new VectorAttention(qLen, kvLen, qHeads, kvHeads, d, scale, q, k, v, 2)) {
            one.run();
            two.run();
            assertArrayEquals(one.result(), two.result());
        }
    }

    @Test
    void referenceIsASoftmaxAverageOfV() {
        // one key: the output is that key's value row, whatever q is
        float[] q = {3, -1}, k = {0.5f, 2}, v = {0.25f, -4};
        float[] out = ScalarAttention.attention(q, k, v, 1, 1, 1, 1, 2, 1);
        assertArrayEquals(new float[] {0.25f, -4}, out);
        // equal scores: the mean of the value rows the query may see (causal: row 0 sees key 0 only)
        float[] q2 = {0, 0, 0, 0}, k2 = {1, 2, 3, 4}, v2 = {1, 10, 3, 30};
        float[] out2 = ScalarAttention.attention(q2, k2, v2, 2, 2, 1, 1, 2, 1);
        assertArrayEquals(new float[] {1, 10, 2, 20}, out2);
    }

    @Test
    void caseFormulas() {
        AttentionCase p = AttentionCase.parse("prefill-512-b1-f32");
        assertEquals(512, p.qLen());
        assertEquals(4.0 * 128 * 32 * (512.0 * 513 / 2), p.flops());
        AttentionCase d = AttentionCase.parse("decode-32768-b8-f32");
        assertEquals(1L << 31, d.kvBytesRead()); // 32768 * 8 heads * 128 * 2 * 4 B * 8 sequences = 2 GiB
        assertEquals(32768L * 8 * 8 * (2 * 128 + 8), AttentionCase.parse("decode-32768-b8-int8").kvBytesRead());
        assertEquals("decode-4096-b1-bf16", AttentionCase.parse("decode-4096-b1-bf16").toString());
        assertTrue(AttentionCase.parse("DECODE-512-B8-INT8").decode());
    }
}
