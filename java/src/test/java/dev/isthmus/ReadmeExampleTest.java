package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.QuantScheme;

import java.util.Random;

import org.junit.jupiter.api.Test;

/** The README's API tour, as it is written there, checked against a plain f32 matmul. */
class ReadmeExampleTest {
    @Test
    void apiTourRuns() {
        int m = 3, n = 40, k = 96;
        Random r = new Random(1);
        float[] weights = TestSupport.randomFloats(r, n * k, 0.05f);
        float[] activations = TestSupport.randomFloats(r, m * k, 1f);
        float[] out;
        // --- README snippet begins
        try (Tensor w = Tensor.of(weights, n, k);                       // f32 [N, K], copied off-heap
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerGroup(32));
             Tensor x = Tensor.of(activations, m, k);                   // f32 [M, K]
             Tensor y = Ops.matmul(x, pw)) {                            // f32 [M, N]; x quantized on the fly
            out = y.toFloatArray();
        }
        System.out.println(Isthmus.describe());  // library, ISA variant (avx512/avx2/ref), threads
        // --- README snippet ends
        assertEquals(m * n, out.length);
        double err = 0, norm = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double ref = 0;
                for (int kk = 0; kk < k; kk++) ref += (double) activations[i * k + kk] * weights[j * k + kk];
                err = Math.max(err, Math.abs(out[i * n + j] - ref));
                norm = Math.max(norm, Math.abs(ref));
            }
        // int8 x int8 per-group quantization of Gaussian data: a few percent of the output scale at most
        assertTrue(err < 0.05 * norm, "quantized matmul error " + err + " vs output scale " + norm);
    }
}
