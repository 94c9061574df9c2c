package dev.isthmus.bench;

import dev.isthmus.bench.kernels.GemmKernel;
import dev.isthmus.bench.kernels.SparseKernels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The sparse suite's workloads parse and print back, every default workload has a baseline and an impl in scope,
 * and every kernel the suite times agrees with the f64 reference on small shapes (the same check the benchmark
 * runs before timing, so a wrong kernel cannot produce a speedup).
 */
class SparseSuiteTest {
    @Test
    void workloadsRoundTrip() {
        for (String w : SparseSuite.defaultCases()) assertEquals(w, SparseCase.parse(w).toString());
        SparseCase c = SparseCase.parse("s8-bsr4x4-75-m3-n64-k128");
        assertEquals(new SparseCase("s8", "bsr4x4", 75, 3, 64, 128), c);
        assertEquals("s8-bsr4x4-75-m3-n64-k128", c.toString());
        assertEquals(SparseCase.parse("s8-dense-0-m3-n64-k128"), c.baseline());
    }

    @ParameterizedTest
    @ValueSource(strings = {"f32-csr-90", "f32-csr-90-1", "f64-csr-90-m1", "f32-coo-90-m1", "f32-24-70-m1", "f32-dense-10-m1",
            "f32-csr-101-m1", "f32-csr-90-m0", "f32-24-50-m1-n8-k6", "f32-csr-90-m1-n8"})
    void badWorkloadsAreRefused(String w) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SparseCase.parse(w));
        assertTrue(e.getMessage().contains(w), e.getMessage());
    }

    @Test
    void everyDefaultSparseWorkloadHasItsBaselineInTheSuite() {
        List<SparseCase> all = SparseSuite.defaultCases().stream().map(SparseCase::parse).toList();
        for (SparseCase c : all) {
            assertTrue(all.contains(c.baseline()), c + " has no baseline workload " + c.baseline());
            assertTrue(List.of(SparseImpl.values()).stream().anyMatch(i -> i.scope(c) == null), c + ": nothing runs it");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"f32-csr-90-m1-n37-k200", "f32-csr-70-m5-n64-k129", "s8-csr-90-m1-n37-k200", "s8-csr-0-m9-n16-k64",
            "f32-bsr1x4-50-m3-n20-k64", "s8-bsr1x8-75-m2-n16-k64", "f32-bsr4x4-90-m17-n32-k96", "s8-bsr4x4-50-m4-n16-k64",
            "f32-24-50-m1-n33-k100", "s8-24-50-m7-n16-k64", "f32-dense-0-m1-n37-k200", "s8-dense-0-m5-n64-k129"})
    void kernelsAgreeWithTheReference(String workload) {
        SparseCase c = SparseCase.parse(workload);
        SparseKernels.Inputs in = SparseKernels.inputs(c);
        int ran = 0;
        for (SparseImpl i : SparseImpl.values()) {
            String skip = SparseKernels.skipReason(i, c);
            if (skip != null) {
                if (i.scope(c) == null) System.out.println("SparseSuiteTest: " + i + " on " + c + " skipped: " + skip);
                continue;
            }
            try (GemmKernel k = SparseKernels.createChecked(i, c, in, 2)) { // throws on a wrong result
                ran++;
            }
        }
        assertTrue(ran > 0 || c.dense(), "no isthmus variant ran " + c);
    }
}
