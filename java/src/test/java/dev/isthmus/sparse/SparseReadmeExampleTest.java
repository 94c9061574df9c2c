package dev.isthmus.sparse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.Tensor;

import java.util.Random;

import org.junit.jupiter.api.Test;

/** The README's sparse section, as it is written there, checked against the dense pruned matrix. */
class SparseReadmeExampleTest {
    @Test
    void pruneThenMultiply() {
        int m = 4, n = 48, k = 128, s = 32;
        Random r = new Random(3);
        float[] weights = SparseTestSupport.randomFloats(r, n * k, 0.05f);
        float[] calibration = SparseTestSupport.randomFloats(r, s * k, 1f);
        float[] activations = SparseTestSupport.randomFloats(r, m * k, 1f);
        float[] out, outQ, dense;
        PruneReport report;
        // --- README snippet begins
        try (Tensor w = Tensor.of(weights, n, k);                            // f32 [N, K]
             Tensor calib = Tensor.of(calibration, s, k);                    // activations seen in calibration
             PruneResult pruned = Pruning.nm(2, 4).wanda(calib).prune(w, calib);   // 2:4 with Wanda scores
             SparseMatrix w24 = pruned.toSparse();                           // SparseFormat.TWO_FOUR, packed
             SparseMatrix w24q = pruned.toSparseInt8(SparseFormat.TWO_FOUR); // int8 values, a scale per row
             Tensor x = Tensor.of(activations, m, k);                        // f32 [M, K]
             Tensor y = Sparse.matmul(x, w24, null);                         // f32 [M, N]
             Tensor yq = Sparse.matmul(x, w24q, null)) {                     // x quantized per row on the fly
            System.out.println(pruned.report());   // sparsity, ||W - Wp||_F / ||W||_F, output error on calib
            out = y.toFloatArray();
            outQ = yq.toFloatArray();
            dense = pruned.pruned().toFloatArray();
            report = pruned.report();
        }
        // --- README snippet ends
        assertEquals(0.5, report.achievedSparsity());
        assertTrue(report.relativeOutputError() > 0 && report.relativeOutputError() < 1, report.toString());
        double errQ = 0, norm = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double ref = 0, abs = 0;
                for (int c = 0; c < k; c++) {
                    ref += (double) activations[i * k + c] * dense[j * k + c];
                    abs += Math.abs((double) activations[i * k + c] * dense[j * k + c]);
                }
                assertEquals(ref, out[i * n + j], 2 * 64 * 0x1.0p-24 * abs + 1e-30);
                errQ = Math.max(errQ, Math.abs(outQ[i * n + j] - ref));
                norm = Math.max(norm, Math.abs(ref));
            }
        assertTrue(errQ < 0.05 * norm, "int8 error " + errQ + " vs output scale " + norm);

        // --- README snippet 2 begins
        // W[2, 4] = [[0, 1.5, 0, -2],
        //            [3, 0,   0,  0]] in CSR
        try (SparseMatrix csr = SparseMatrix.csr(2, 4, new long[] {0, 2, 3}, new int[] {1, 3, 0},
                new float[] {1.5f, -2f, 3f});
             Tensor back = csr.toDense()) {
            System.out.println(csr);    // SparseMatrix[CSR F32 [2, 4], nnz 3 (density 0.3750), packed 704 bytes for AVX512]
            // --- README snippet 2 ends
            assertArrayEquals(new float[] {0, 1.5f, 0, -2, 3, 0, 0, 0}, back.toFloatArray());
        }
    }
}
