package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.QuantScheme;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.junit.jupiter.api.Test;

/** Many threads on shared weights and inputs, private outputs: the same bits as one thread. */
class ConcurrencyTest {
    @Test
    void manyThreadsGetIdenticalResults() throws Exception {
        Random r = new Random(99);
        int m = 37, n = 150, k = 333;
        try (Tensor x = Tensor.of(TestSupport.randomFloats(r, m * k, 1f), m, k);
             Tensor w = Tensor.of(TestSupport.randomFloats(r, n * k, 1f), n, k);
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerGroup(32));
             Tensor ref = Ops.matmul(x, pw)) {
            float[] want = ref.toFloatArray();
            ExecutorService pool = Executors.newFixedThreadPool(8);
            try {
                List<Future<?>> fs = new ArrayList<>();
                for (int t = 0; t < 8; t++)
                    fs.add(pool.submit(() -> {
                        for (int it = 0; it < 50; it++)
                            try (Tensor y = Ops.matmul(x, pw)) {
                                assertArrayEquals(want, y.toFloatArray());
                            }
                        return null;
                    }));
                for (Future<?> f : fs) f.get();
            } finally {
                pool.shutdownNow();
            }
        }
    }
}
