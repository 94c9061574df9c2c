package dev.isthmus.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.isthmus.DType;
import dev.isthmus.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * write then read: F32 exactly; F16 and BF16 exactly the round-to-nearest-even conversion
 * ({@link Float#floatToFloat16}, a bf16 helper), ties, the largest values that do not round to infinity
 * (larger ones are refused: NumericsHygieneTest) and subnormals included; INT8 exactly
 * the symmetric per-(token, head) quantization {@code s = max|x| / 127}, {@code q = rint(x / s)}, read
 * as {@code q * s}, ties and an all-zero head included. Reads of part of a sequence, of K or V only,
 * into 3-D and row-strided tensors.
 */
class KvRoundTripTest {
    static final int KV_HEADS = 3, HEAD_DIM = 32, COLS = KV_HEADS * HEAD_DIM;

    /** Values whose rounding is easy to get wrong, placed in token 1 of every write. */
    static float[] edgeRow(KvType type) {
        float[] row = new float[COLS];
        float[] special = switch (type) {
            case F32 -> new float[] {Float.MIN_VALUE, -0f, Float.MAX_VALUE, 1e-40f, -3.25f};
            case F16 -> new float[] {1 + 0x1p-11f, 1 + 3 * 0x1p-11f, -(1 + 0x1p-11f), 65504f, 65519f, -65519.99f,
                    0x1p-24f, 0x1p-25f, 0x1.8p-25f, 1e-6f, 6.1e-5f, 2049f, 2051f};
            case BF16 -> new float[] {1 + 0x1p-8f, 1 + 3 * 0x1p-8f, -(1 + 0x1p-8f), 3.3895e38f, -0x1.fefffep127f, 1e-39f,
                    257f, 259f, 1e-30f};
            case INT8 -> new float[] {127f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, 1.5f, -0.5f, 126.5f, -126.5f, 10.49f};
        };
        Random r = new Random(type.ordinal());
        for (int i = 0; i < COLS; i++) row[i] = (float) r.nextGaussian();
        System.arraycopy(special, 0, row, 0, special.length); // head 0: max |x| = 127 for INT8, so s = 1: exact ties
        if (type == KvType.INT8) for (int d = 0; d < HEAD_DIM; d++) row[HEAD_DIM + d] = 0f; // head 1 all zero
        return row;
    }

    @ParameterizedTest
    @EnumSource(KvType.class)
    void writeThenReadGivesTheStoredRounding(KvType type) {
        long seed = 555 + type.ordinal();
        Random r = new Random(seed);
        KvConfig cfg = KvConfig.builder().layers(2).kvHeads(KV_HEADS).headDim(HEAD_DIM).blockSize(4).type(type)
                .numBlocks(32).maxSequences(2).maxSequenceLength(64).build();
        int[] chunks = {7, 1, 15};
        int len = 23;
        float[][] k = new float[2][len * COLS], v = new float[2][len * COLS];
        try (KvCache cache = KvCache.create(cfg); Sequence s = cache.newSequence()) {
            int at = 0;
            for (int n : chunks) {
                s.extend(n);
                for (int layer = 0; layer < 2; layer++) {
                    float[] kc = KvTestSupport.gaussian(r, n * COLS, 3), vc = KvTestSupport.gaussian(r, n * COLS, 0.01);
                    if (n > 1) System.arraycopy(edgeRow(type), 0, kc, COLS, COLS);
                    System.arraycopy(kc, 0, k[layer], at * COLS, n * COLS);
                    System.arraycopy(vc, 0, v[layer], at * COLS, n * COLS);
                    try (Tensor kt = Tensor.of(kc, n, COLS); Tensor vt = Tensor.of(vc, n, KV_HEADS, HEAD_DIM)) {
                        cache.write(layer, Batch.of(s, n), kt, vt, Rope.NONE);
                    }
                }
                at += n;
            }
            assertEquals(len, s.length());
            for (int layer = 0; layer < 2; layer++) {
                float[] wantK = KvTestSupport.stored(type, k[layer], KV_HEADS, HEAD_DIM);
                float[] wantV = KvTestSupport.stored(type, v[layer], KV_HEADS, HEAD_DIM);
                String where = "seed " + seed + ", " + type + ", layer " + layer;
                float[][] all = KvTestSupport.readBack(cache, layer, s, 0, len);
                same(wantK, 0, all[0], where + ", K");
                same(wantV, 0, all[1], where + ", V");
                // positions [5, 5 + 11): K only into a 3-D tensor, V only into a strided view
                try (Tensor k3 = Tensor.allocate(DType.F32, 11, KV_HEADS, HEAD_DIM)) {
                    cache.read(layer, s, 5, 11, k3, null);
                    same(wantK, 5 * COLS, k3.toFloatArray(), where + ", K[5, 16) as 3-D");
                }
                long ld = COLS + 5;
                try (Tensor buf = Tensor.allocate(DType.F32, 11, ld)) {
                    MemorySegment seg = buf.segment();
                    for (long i = 0; i < 11 * ld; i++) seg.setAtIndex(ValueLayout.JAVA_FLOAT, i, 99f);
                    Tensor view = Tensor.wrap(seg, DType.F32, new long[] {11, COLS}, new long[] {ld, 1});
                    cache.read(layer, s, 12, 11, null, view);
                    same(wantV, 12 * COLS, view.toFloatArray(), where + ", V[12, 23) strided");
                    for (int t = 0; t < 11; t++)
                        for (long j = COLS; j < ld; j++)
                            assertEquals(99f, seg.getAtIndex(ValueLayout.JAVA_FLOAT, t * ld + j),
                                    where + ": read wrote outside the view, row " + t + " column " + j);
                }
            }
        }
    }

    static void same(float[] want, int from, float[] got, String where) {
        for (int i = 0; i < got.length; i++)
            if (Float.floatToIntBits(want[from + i]) != Float.floatToIntBits(got[i]))
                fail(where + ": token " + (from + i) / COLS + ", head " + ((from + i) % COLS) / HEAD_DIM + ", dim "
                        + (from + i) % HEAD_DIM + " reads " + got[i] + " (bits " + Integer.toHexString(Float.floatToIntBits(got[i]))
                        + "), expected " + want[from + i] + " (bits " + Integer.toHexString(Float.floatToIntBits(want[from + i])) + ")");
    }

    /** INT8 cannot store NaN or infinity: the write is refused, naming k or v. */
    @Test
    void int8RefusesNonFiniteValues() {
        KvConfig cfg = KvConfig.builder().layers(1).kvHeads(1).headDim(16).blockSize(4).type(KvType.INT8)
                .numBlocks(4).maxSequences(1).maxSequenceLength(16).build();
        try (KvCache cache = KvCache.create(cfg); Sequence s = cache.newSequence()) {
            s.extend(2);
            float[] ok = KvTestSupport.gaussian(new Random(3), 32, 1);
            for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                float[] k = ok.clone();
                k[20] = bad;
                try (Tensor kt = Tensor.of(k, 2, 16); Tensor vt = Tensor.of(ok, 2, 16)) {
                    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                            () -> cache.write(0, Batch.of(s, 2), kt, vt, Rope.NONE));
                    assertTrue(e.getMessage().contains("k F32[2, 16]"), e.getMessage());
                    assertThrows(IllegalArgumentException.class, () -> cache.write(0, Batch.of(s, 2), vt, kt, Rope.NONE));
                }
            }
        }
    }
}
