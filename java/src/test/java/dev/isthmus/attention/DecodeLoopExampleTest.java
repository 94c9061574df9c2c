package dev.isthmus.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.DType;
import dev.isthmus.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

/**
 * The decode loop of the package documentation, KvCache's javadoc and the README, as written there,
 * run on a toy model; then the last decoded token's attention is recomputed by prefilling every token
 * the loop fed into a fresh cache, which must agree (incremental decode = full recomputation).
 */
class DecodeLoopExampleTest {
    /** Q, K, V from (token, layer) only, so a replay gives the same rows; RoPE supplies the positions. */
    static final class ToyModel {
        final int qHeads, kvHeads, headDim;
        final List<Integer> fed = new ArrayList<>();
        int[] current;
        final List<float[]> lastOut = new ArrayList<>();

        ToyModel(int qHeads, int kvHeads, int headDim) {
            this.qHeads = qHeads;
            this.kvHeads = kvHeads;
            this.headDim = headDim;
        }

        void embed(int[] input) {
            current = input.clone();
            for (int t : input) fed.add(t);
            lastOut.clear();
        }

        void qkv(int layer, Tensor q, Tensor k, Tensor v) {
            fill(q, layer, 0);
            fill(k, layer, 1);
            fill(v, layer, 2);
        }

        private void fill(Tensor x, int layer, int which) {
            long cols = x.dim(1);
            for (int t = 0; t < current.length; t++) {
                SplittableRandom r = new SplittableRandom(current[t] * 1000003L + layer * 31L + which);
                for (long c = 0; c < cols; c++) x.set((float) (2 * r.nextDouble() - 1), t, c);
            }
        }

        void mix(int layer, Tensor out) {
            lastOut.add(out.toFloatArray());
        }

        int sample() {
            float[] last = lastOut.get(lastOut.size() - 1);
            double sum = 0;
            for (int i = last.length - qHeads * headDim; i < last.length; i++) sum += Math.abs(last[i]);
            return (int) (sum * 1000) % 100;
        }
    }

    @Test
    void decodeLoopRunsAndMatchesAFullPrefill() {
        int layers = 2, kvHeads = 2, qHeads = 8, headDim = 64, steps = 6;
        int[] prompt = new int[37];
        for (int i = 0; i < prompt.length; i++) prompt[i] = (i * 7 + 3) % 100;
        ToyModel model = new ToyModel(qHeads, kvHeads, headDim);
        // --- example begins (package-info.java, KvCache.java, README.md)
        KvConfig config = KvConfig.builder()
                .layers(layers).kvHeads(kvHeads).headDim(headDim)
                .numBlocks(256).maxSequences(4).maxSequenceLength(1024)
                .build();                                                 // blocks of 16 tokens, stored as F16
        Rope rope = Rope.half(500_000);                                   // Llama 3
        AttentionParams params = AttentionParams.of(qHeads, headDim);     // GQA: qHeads = kvHeads * group
        try (KvCache cache = KvCache.create(config);
             Sequence seq = cache.newSequence()) {
            Batch batch = Batch.of(seq, prompt.length);                   // prefill: the whole prompt at once
            int[] input = prompt;
            for (int step = 0; step < steps; step++) {
                cache.extend(batch);                                      // room for the new tokens
                long[] pos = batch.positions();                           // where they are in the sequence
                try (Tensor q = Tensor.allocate(DType.F32, batch.tokens(), qHeads * headDim);
                     Tensor k = Tensor.allocate(DType.F32, batch.tokens(), kvHeads * headDim);
                     Tensor v = Tensor.allocate(DType.F32, batch.tokens(), kvHeads * headDim)) {
                    model.embed(input);
                    for (int layer = 0; layer < layers; layer++) {
                        model.qkv(layer, q, k, v);                        // your projections
                        cache.write(layer, batch, k, v, rope);            // K rotated at its positions, stored
                        Rope.apply(q, qHeads, pos, rope);                 // Q rotated the same way
                        cache.attention(layer, batch, q, q, params);      // out may be q itself
                        model.mix(layer, q);                              // output projection, MLP, ...
                    }
                }
                input = new int[] {model.sample()};
                batch = Batch.of(seq, 1);                                 // decode: one token per step
            }
            seq.truncate(seq.length() - 2);                               // roll back a rejected 2-token suffix
            try (Sequence beam = seq.fork()) {                            // a beam: shares seq's blocks
                Batch both = Batch.builder().add(seq, 1).add(beam, 1).build();
                cache.extend(both);                                       // copies the shared partial block
                // ... write and attend as above, with 2 rows: one per beam
            }
        }
        // --- example ends
        int total = model.fed.size();
        assertEquals(prompt.length + steps - 1, total);
        List<float[]> decoded = new ArrayList<>(model.lastOut);
        ToyModel replay = new ToyModel(qHeads, kvHeads, headDim);
        try (KvCache cache = KvCache.create(config); Sequence seq = cache.newSequence()) {
            Batch all = Batch.of(seq, total);
            cache.extend(all);
            int[] tokens = model.fed.stream().mapToInt(Integer::intValue).toArray();
            try (Tensor q = Tensor.allocate(DType.F32, total, qHeads * headDim);
                 Tensor k = Tensor.allocate(DType.F32, total, kvHeads * headDim);
                 Tensor v = Tensor.allocate(DType.F32, total, kvHeads * headDim)) {
                replay.embed(tokens);
                for (int layer = 0; layer < layers; layer++) {
                    replay.qkv(layer, q, k, v);
                    cache.write(layer, all, k, v, rope);
                    Rope.apply(q, qHeads, all.positions(), rope);
                    cache.attention(layer, all, q, q, params);
                    replay.mix(layer, q);
                }
            }
        }
        int cols = qHeads * headDim;
        for (int layer = 0; layer < layers; layer++) {
            float[] full = replay.lastOut.get(layer), step = decoded.get(layer);
            assertEquals(cols, step.length);
            for (int i = 0; i < cols; i++) {
                float want = full[(total - 1) * cols + i];
                // same K/V bits, same Q bits; only the kernel's summation order may differ (decode vs prefill)
                assertTrue(Math.abs(step[i] - want) <= 1e-5 * (1 + Math.abs(want)),
                        "layer " + layer + " element " + i + ": decoded " + step[i] + ", full prefill " + want);
            }
        }
    }
}
