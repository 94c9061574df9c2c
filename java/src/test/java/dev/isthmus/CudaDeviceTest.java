package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.quant.DeviceWeights;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.lang.foreign.ValueLayout;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * On a GPU (skipped, saying why, elsewhere): round trips for each dtype, device quantization and matmul against the
 * CPU (per-row bit-identical, per-group within the header's bound), streams and events, and the accounting of device
 * memory.
 */
class CudaDeviceTest {
    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    @Test
    void deviceHasProperties() {
        Device d = CudaTestSupport.gpu();
        DeviceProperties p = d.properties();
        assertFalse(p.name().isBlank());
        assertTrue(p.totalMemory() > 0 && p.multiprocessors() > 0, p.toString());
        assertEquals(p.name(), d.name());
        assertTrue(d.freeMemory() > 0 && d.freeMemory() <= p.totalMemory());
        assertEquals(Device.cuda(0), d);
        System.out.println("CudaDeviceTest: " + d + " = " + p);
    }

    @Test
    void roundTripsEveryDtype() {
        Device d = CudaTestSupport.gpu();
        Random r = new Random(1);
        long shape0 = 37, shape1 = 129;
        int n = (int) (shape0 * shape1);
        for (DType t : DType.values()) {
            try (Tensor host = Tensor.allocate(t, shape0, shape1)) {
                byte[] bytes = new byte[n * t.byteSize()];
                r.nextBytes(bytes);
                java.lang.foreign.MemorySegment.copy(bytes, 0, host.segment(), ValueLayout.JAVA_BYTE, 0, bytes.length);
                try (Tensor dev = host.to(d); Tensor dev2 = Tensor.allocate(t, d, shape0, shape1);
                     Tensor back = Tensor.allocate(t, shape0, shape1); Stream s = Stream.create(d)) {
                    assertEquals(d, dev.device());
                    assertThrows(IllegalStateException.class, dev::segment);
                    dev2.copyFrom(dev, s);            // D2D
                    dev2.copyTo(back, s);             // D2H
                    s.synchronize();
                    assertArrayEquals(bytes, back.segment().toArray(ValueLayout.JAVA_BYTE), t + " round trip");
                    try (Tensor viaTo = dev2.to(Device.cpu())) {
                        assertArrayEquals(bytes, viaTo.segment().toArray(ValueLayout.JAVA_BYTE), t + " via to()");
                    }
                }
            }
        }
    }

    @Test
    void allocationIsZeroedAndCounted() {
        Device d = CudaTestSupport.gpu();
        long before = d.ownedBytes(), objects = Isthmus.memoryStats().openObjects();
        Tensor t = Tensor.allocate(DType.F32, d, 100, 100);
        assertEquals(before + 40_000, d.ownedBytes());
        assertEquals(objects + 1, Isthmus.memoryStats().openObjects());
        try (Tensor h = t.to(Device.cpu())) {
            for (float v : h.toFloatArray()) assertEquals(0f, v);
        }
        t.close();
        t.close(); // idempotent
        assertFalse(t.isAlive());
        assertThrows(IllegalStateException.class, t::devicePointer);
        assertEquals(before, d.ownedBytes());
        assertEquals(objects, Isthmus.memoryStats().openObjects());
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 7, 16, 17, 64, 129})
    void matmulPerRowIsBitIdenticalToTheCpu(int m) {
        Device d = CudaTestSupport.gpu();
        Random r = new Random(m);
        int n = 96, k = 320;
        try (Tensor w = Tensor.of(random(r, n * k), n, k); Tensor x = Tensor.of(random(r, m * k), m, k);
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
             DeviceWeights dw = DeviceWeights.quantize(w, QuantScheme.int8PerRow(), d);
             Tensor cpu = Ops.matmul(x, pw); Tensor xd = x.to(d); Tensor yd = Ops.matmul(xd, dw);
             Tensor gpu = yd.to(Device.cpu())) {
            float[] a = cpu.toFloatArray(), b = gpu.toFloatArray();
            for (int i = 0; i < a.length; i++)
                assertEquals(Float.floatToIntBits(a[i]), Float.floatToIntBits(b[i]), "m=" + m + " element " + i);
        }
    }

    /** group, M, K: M = 9, K = 1000 runs the SKINNY family; M = 129, K = 1024 (16-byte aligned rows) the MMA family. */
    @ParameterizedTest
    @CsvSource({"32, 9, 1000", "64, 9, 1000", "128, 9, 1000", "256, 9, 1000",
                "32, 129, 1024", "64, 129, 1024", "128, 129, 1024", "256, 129, 1024"})
    void matmulPerGroupIsWithinTheHeadersBound(int group, int m, int k) {
        Device d = CudaTestSupport.gpu();
        Random r = new Random(group * 31L + m);
        int n = 40;
        QuantScheme scheme = QuantScheme.int8PerGroup(group);
        float[] biasHost = random(r, n);
        try (Tensor w = Tensor.of(random(r, n * k), n, k); Tensor x = Tensor.of(random(r, m * k), m, k);
             QuantizedTensor wq = Quant.quantize(w, scheme); QuantizedTensor xq = Quant.quantize(x, scheme);
             DeviceWeights dw = DeviceWeights.upload(wq, d); Tensor xd = x.to(d);
             Tensor b = Tensor.of(biasHost, n); Tensor bd = b.to(d);
             Stream s = Stream.create(d); QuantizedTensor aq = Quant.quantize(xd, scheme, s);
             Tensor yd = Tensor.allocate(DType.F32, d, m, n)) {
            Ops.matmul(aq, dw, bd, yd, s);
            s.synchronize();
            try (Tensor y = yd.to(Device.cpu()); Tensor aScales = aq.scales().to(Device.cpu());
                 Tensor aValues = aq.values().to(Device.cpu())) {
                assertArrayEquals(xq.scales().toFloatArray(), aScales.toFloatArray(), "device quantization scales = CPU's");
                assertArrayEquals(xq.values().toByteArray(), aValues.toByteArray(), "device quantization values = CPU's");
                byte[] a = xq.values().toByteArray(), bw = wq.values().toByteArray();
                float[] sa = xq.scales().toFloatArray(), sw = wq.scales().toFloatArray(), out = y.toFloatArray();
                int groups = (k + group - 1) / group;
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double exact = biasHost[j], sum = 0;
                        for (int g = 0; g < groups; g++) {
                            long acc = 0;
                            for (int kk = g * group; kk < Math.min(k, (g + 1) * group); kk++)
                                acc += a[i * k + kk] * bw[j * k + kk];
                            double term = acc * (double) sa[i * groups + g] * sw[j * groups + g];
                            exact += term;
                            sum += Math.abs(term);
                        }
                        // isthmus_cuda.h: within (G + 3) * 2^-24 * (sum_g |acc_g * sa_g * sw_g| + |bias[n]|)
                        double tol = (groups + 3) * Math.scalb(sum + Math.abs(biasHost[j]), -24);
                        assertEquals(exact, out[i * n + j], tol,
                                "group " + group + " m=" + m + " k=" + k + " at " + i + "," + j);
                    }
            }
        }
    }

    @Test
    void matmulInt32IsExactAndBf16OutputRounds() {
        Device d = CudaTestSupport.gpu();
        Random r = new Random(3);
        int m = 5, n = 24, k = 200;
        try (Tensor w = Tensor.of(random(r, n * k), n, k); Tensor x = Tensor.of(random(r, m * k), m, k);
             PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerRow());
             DeviceWeights dw = DeviceWeights.quantize(w, QuantScheme.int8PerRow(), d);
             QuantizedTensor xq = Quant.quantize(x, QuantScheme.int8PerRow());
             Tensor cpuInt = Ops.matmulInt32(xq.values(), pw); Tensor ad = xq.values().to(d);
             Tensor gpuInt = Ops.matmulInt32(ad, dw); Tensor back = gpuInt.to(Device.cpu())) {
            assertArrayEquals(cpuInt.toIntArray(), back.toIntArray());
            try (Tensor cpu = Ops.matmul(x, pw); Tensor xd = x.to(d); Tensor yb = Tensor.allocate(DType.BF16, d, m, n)) {
                Ops.matmul(xd, dw, null, yb, null);
                try (Tensor h = yb.to(Device.cpu())) {
                    float[] f = cpu.toFloatArray();
                    for (int i = 0; i < f.length; i++) {
                        float got = Float.intBitsToFloat(h.segment().getAtIndex(ValueLayout.JAVA_SHORT, i) << 16);
                        assertEquals(f[i], got, Math.abs(f[i]) * 0x1p-8f + 1e-30f, "bf16 element " + i);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {32, 128})
    void matmulInt32TakesPerGroupWeights(int group) {
        Device d = CudaTestSupport.gpu();
        Random r = new Random(group + 7);
        int n = 40;
        QuantScheme scheme = QuantScheme.int8PerGroup(group);
        for (int[] mk : new int[][] {{9, 1000}, {129, 1024}}) { // SKINNY family, then MMA
            int m = mk[0], k = mk[1];
            try (Tensor w = Tensor.of(random(r, n * k), n, k); Tensor x = Tensor.of(random(r, m * k), m, k);
                 QuantizedTensor wq = Quant.quantize(w, scheme); QuantizedTensor xq = Quant.quantize(x, scheme);
                 DeviceWeights dw = DeviceWeights.upload(wq, d); Tensor ad = xq.values().to(d);
                 Tensor c = Ops.matmulInt32(ad, dw); Tensor back = c.to(Device.cpu())) {
                byte[] a = xq.values().toByteArray(), b = wq.values().toByteArray();
                int[] got = back.toIntArray();
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        int acc = 0;
                        for (int kk = 0; kk < k; kk++) acc += a[i * k + kk] * b[j * k + kk];
                        assertEquals(acc, got[i * n + j], "group " + group + " m=" + m + " k=" + k + " at " + i + "," + j);
                    }
            }
        }
    }

    @Test
    void toAndHostCopiesWaitForNonBlockingStreams() {
        Device d = CudaTestSupport.gpu();
        Random r = new Random(5);
        int m = 256, n = 1024, k = 4096; // long enough that an unsynchronized read would see zeros
        try (Tensor w = Tensor.of(random(r, n * k), n, k); Tensor x = Tensor.of(random(r, m * k), m, k);
             DeviceWeights dw = DeviceWeights.quantize(w, QuantScheme.int8PerRow(), d); Tensor xd = x.to(d);
             Tensor ref = Ops.matmul(xd, dw); Tensor refHost = ref.to(Device.cpu())) {
            float[] want = refHost.toFloatArray();
            for (int round = 0; round < 3; round++) {
                try (Stream s = Stream.create(d); Tensor yd = Tensor.allocate(DType.F32, d, m, n);
                     Tensor viaCopy = Tensor.allocate(DType.F32, m, n)) {
                    Ops.matmul(xd, dw, null, yd, s);
                    try (Tensor viaTo = yd.to(Device.cpu())) { // no s.synchronize(): to() waits for the device
                        assertArrayEquals(want, viaTo.toFloatArray(), "to() after an op on a created stream");
                    }
                    Ops.matmul(xd, dw, null, yd, s);
                    yd.copyTo(viaCopy, s); // device to host: waits for s before it returns
                    assertArrayEquals(want, viaCopy.toFloatArray(), "copyTo(host, stream) after an op");
                }
            }
        }
    }

    @Test
    void streamsAndEventsTimeWork() {
        Device d = CudaTestSupport.gpu();
        Random r = new Random(4);
        int m = 64, n = 256, k = 512;
        long objects = Isthmus.memoryStats().openObjects(), bytes = d.ownedBytes();
        try (Tensor w = Tensor.of(random(r, n * k), n, k); Tensor x = Tensor.of(random(r, m * k), m, k);
             DeviceWeights dw = DeviceWeights.quantize(w, QuantScheme.int8PerRow(), d);
             Stream s = Stream.create(d); Tensor xd = Tensor.allocate(DType.F32, d, m, k);
             Tensor yd = Tensor.allocate(DType.F32, d, m, n); Tensor y = Tensor.allocate(DType.F32, m, n)) {
            assertTrue(s.ownsHandle() && s.handle() != 0);
            xd.copyFrom(x, s);
            try (Event start = s.record()) {
                Ops.matmul(xd, dw, null, yd, s);
                try (Event end = s.record()) {
                    yd.copyTo(y, s);
                    s.synchronize();
                    assertTrue(s.query());
                    end.synchronize();
                    assertTrue(start.elapsedMillis(end) >= 0);
                }
            }
            try (Tensor ref = Ops.matmul(xd, dw); Tensor h = ref.to(Device.cpu())) {
                assertArrayEquals(h.toFloatArray(), y.toFloatArray(), "stream and default-stream results agree");
            }
            try (Stream other = Stream.create(d); Event e = s.record()) {
                other.waitFor(e);
                other.synchronize();
            }
        }
        assertEquals(objects, Isthmus.memoryStats().openObjects(), "every device object closed");
        assertEquals(bytes, d.ownedBytes(), "device bytes (tensors, stream scratch) returned");
    }
}
