package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.isthmus.quant.DeviceWeights;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.util.Arrays;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The CUDA API's Java-side checks, which need no GPU: device discovery without one, argument validation, host access
 * of device tensors, and mixing devices. A device that was not checked against the machine
 * ({@link Device#uncheckedCudaForTests}) stands in for a GPU; every path that gets past validation must then end in a
 * {@link DeviceUnavailableException}, never a crash.
 */
class CudaNoGpuTest {
    private static final Device FAKE = Device.uncheckedCudaForTests(0);
    private static final Device FAKE1 = Device.uncheckedCudaForTests(1);
    /** A plausible, 256-aligned device address; never dereferenced on the host. */
    private static final long PTR = 0x7f00_0000_0000L;

    private static <T extends Throwable> void refuses(Class<T> type, Executable call, String... words) {
        T e = assertThrows(type, call);
        for (String w : words)
            assertTrue(e.getMessage() != null && e.getMessage().contains(w), "message lacks '" + w + "': " + e.getMessage());
    }

    private static boolean noGpu() {
        return !Device.isCudaAvailable();
    }

    @Test
    void withoutAGpuCountIsZeroAndCudaSaysWhy() {
        assumeFalse(Device.isCudaAvailable(), "a CUDA device is present: the no-GPU behaviour is not observable");
        assertEquals(0, Device.cudaCount());
        String why = Device.cudaUnavailableReason().orElseThrow();
        DeviceUnavailableException e = assertThrows(DeviceUnavailableException.class, () -> Device.cuda(0));
        assertTrue(e.getMessage().startsWith("cuda:0 is not available: ") && e.getMessage().contains(why), e.getMessage());
        assertNotEquals(DeviceUnavailableException.Reason.INDEX_OUT_OF_RANGE, e.reason());
        if (e.reason() == DeviceUnavailableException.Reason.NO_LIBRARY)
            assertTrue(why.contains("libisthmus_cuda.so is not in this build/jar") || why.contains("cannot"), why);
        else
            assertTrue(why.contains("driver") || why.contains("device"), why);
        // asking again gives the same answer and never throws
        assertEquals(0, Device.cudaCount());
        assertThrows(DeviceUnavailableException.class, () -> Device.cuda(3));
        assertTrue(e instanceof IllegalStateException);
        System.out.println("CudaNoGpuTest: no CUDA here (" + e.reason() + "): " + why);
    }

    @Test
    void cudaIndexIsValidated() {
        refuses(IllegalArgumentException.class, () -> Device.cuda(-1), "index", "-1");
        if (Device.isCudaAvailable()) {
            int n = Device.cudaCount();
            DeviceUnavailableException e = assertThrows(DeviceUnavailableException.class, () -> Device.cuda(n));
            assertEquals(DeviceUnavailableException.Reason.INDEX_OUT_OF_RANGE, e.reason());
            assertTrue(e.getMessage().contains("index " + n + " out of range: " + n + " device(s)"), e.getMessage());
        }
    }

    @Test
    void devicesAreValues() {
        assertEquals("cpu", Device.cpu().toString());
        assertEquals("cuda:0", FAKE.toString());
        assertEquals("cuda:1", FAKE1.toString());
        assertEquals(FAKE, Device.uncheckedCudaForTests(0));
        assertEquals(FAKE.hashCode(), Device.uncheckedCudaForTests(0).hashCode());
        assertNotEquals(FAKE, FAKE1);
        assertNotEquals(Device.cpu(), FAKE);
        assertTrue(Device.cpu().isCpu() && !Device.cpu().isCuda() && FAKE.isCuda());
        assertEquals("cpu", Device.cpu().name());
        refuses(IllegalStateException.class, () -> Device.cpu().properties(), "cpu");
        refuses(IllegalStateException.class, () -> Device.cpu().freeMemory(), "cpu");
        Device.cpu().synchronize(); // a no-op
    }

    @Test
    void everyExistingTensorIsOnTheCpu() {
        try (Tensor t = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2); Tensor v = t.rows(0, 1)) {
            assertEquals(Device.cpu(), t.device());
            assertEquals(Device.cpu(), v.device());
            refuses(IllegalStateException.class, t::devicePointer, "cpu", "segment()");
        }
        try (Tensor t = Tensor.allocate(DType.F32, Device.cpu(), 2, 3)) {
            assertEquals(Device.cpu(), t.device());
            assertTrue(t.ownsMemory());
            assertEquals(6, t.toFloatArray().length);
        }
    }

    @Test
    void toOnTheCpuCopies() {
        try (Tensor t = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3); Tensor c = t.to(Device.cpu())) {
            assertTrue(Arrays.equals(t.toFloatArray(), c.toFloatArray()));
            assertNotEquals(t.segment().address(), c.segment().address());
            t.set(9f, 0, 0);
            assertEquals(1f, c.getFloat(0, 0), "a copy, not a view");
        }
        try (Tensor t = Tensor.allocate(DType.BF16, 3); Tensor c = t.to(Device.cpu())) {
            assertEquals(DType.BF16, c.dtype());
        }
    }

    @Test
    void factoriesValidateTheirArguments() {
        refuses(NullPointerException.class, () -> Tensor.allocate(null, Device.cpu(), 2), "dtype");
        refuses(IllegalArgumentException.class, () -> Tensor.allocate(DType.F32, (Device) null, 2), "device is null");
        refuses(IllegalArgumentException.class, () -> Tensor.allocate(DType.F32, FAKE, 2, -1), "shape");
        refuses(IllegalArgumentException.class, () -> Tensor.allocate(DType.F32, FAKE), "shape");
        refuses(IllegalArgumentException.class, () -> Tensor.wrapDevicePointer(null, PTR, DType.F32, 2), "device is null");
        refuses(IllegalArgumentException.class, () -> Event.create(null), "device is null");
        refuses(IllegalArgumentException.class, () -> Stream.create(null), "device is null");
        refuses(NullPointerException.class, () -> Tensor.wrapDevicePointer(FAKE, PTR, null, 2), "dtype");
        refuses(IllegalArgumentException.class, () -> Tensor.wrapDevicePointer(Device.cpu(), PTR, DType.F32, 2),
                "cpu", "Tensor.wrap");
        refuses(IllegalArgumentException.class, () -> Tensor.wrapDevicePointer(FAKE, 0, DType.F32, 2), "devicePtr", "NULL");
        refuses(IllegalArgumentException.class, () -> Tensor.wrapDevicePointer(FAKE, PTR + 2, DType.F32, 2),
                "devicePtr", "aligned", "F32");
        refuses(IllegalArgumentException.class, () -> Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 0), "shape");
        refuses(IllegalArgumentException.class, () -> Tensor.wrapDevicePointer(FAKE, PTR, DType.F32), "shape");
        refuses(IllegalArgumentException.class, () -> Tensor.wrapDevicePointer(FAKE, -256L, DType.F32, 1024),
                "address space");
        refuses(IllegalArgumentException.class, () -> Stream.create(Device.cpu()), "cpu");
        refuses(IllegalArgumentException.class, () -> Stream.wrap(null, 0), "device");
        refuses(IllegalArgumentException.class, () -> Event.create(Device.cpu()), "cpu");
        refuses(IllegalArgumentException.class, () -> Device.uncheckedCudaForTests(-2), "index");
    }

    @Test
    void aDeviceAllocationWithoutAGpuSaysWhy() {
        assumeFalse(Device.isCudaAvailable(), "a CUDA device is present");
        refuses(DeviceUnavailableException.class, () -> Tensor.allocate(DType.F32, FAKE, 4, 4), "Tensor.allocate", "CUDA");
        refuses(DeviceUnavailableException.class, () -> Stream.create(FAKE), "CUDA");
        refuses(DeviceUnavailableException.class, () -> Event.create(FAKE), "CUDA");
        refuses(DeviceUnavailableException.class, FAKE::synchronize, "CUDA");
        refuses(DeviceUnavailableException.class, FAKE::properties, "CUDA");
    }

    @Test
    void hostAccessOfADeviceTensorIsRefusedNamingTheDevice() {
        try (Tensor t = Tensor.wrapDevicePointer(FAKE1, PTR, DType.F32, 2, 3)) {
            assertEquals(FAKE1, t.device());
            assertFalse(t.ownsMemory());
            assertTrue(t.isAlive());
            assertEquals(PTR, t.devicePointer());
            assertTrue(t.toString().contains("cuda:1"), t.toString());
            for (Executable call : new Executable[] {t::segment, () -> t.getFloat(0, 0), () -> t.set(1f, 0, 0),
                    t::toFloatArray})
                refuses(IllegalStateException.class, call, "cuda:1", "to(Device.cpu())");
            try (Tensor r = t.rows(1, 2)) {
                assertEquals(PTR + 12, r.devicePointer(), "a row view offsets the device address");
                assertEquals(FAKE1, r.device());
                refuses(IllegalStateException.class, r::segment, "cuda:1");
            }
        }
        try (Tensor b = Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 5)) {
            refuses(IllegalStateException.class, () -> b.getByte(0), "cuda:0");
            refuses(IllegalStateException.class, b::toByteArray, "cuda:0");
        }
        try (Tensor i = Tensor.wrapDevicePointer(FAKE, PTR, DType.I32, 5)) {
            refuses(IllegalStateException.class, () -> i.set(1, 0), "cuda:0");
            refuses(IllegalStateException.class, i::toIntArray, "cuda:0");
        }
    }

    @Test
    void wrappedDeviceTensorsAreClosedByClose() {
        Tensor t = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 2, 64);
        Tensor view = t.rows(0, 1);
        assertTrue(t.isAlive() && view.isAlive());
        view.close(); // a view's close marks only the view
        assertFalse(view.isAlive());
        assertTrue(t.isAlive());
        refuses(IllegalStateException.class, view::devicePointer, "closed");
        refuses(IllegalStateException.class, view::lease, "closed");
        Tensor view2 = t.rows(1, 2);
        t.close();
        t.close(); // idempotent
        assertFalse(t.isAlive());
        assertFalse(view2.isAlive(), "a view of a closed tensor is closed");
        assertTrue(t.toString().contains("closed"), t.toString());
        refuses(IllegalStateException.class, t::devicePointer, "closed");
        refuses(IllegalStateException.class, t::lease, "closed");
        refuses(IllegalStateException.class, view2::lease, "closed");
        refuses(IllegalStateException.class, () -> t.to(Device.cpu()), "closed");
        try (DeviceWeights w = fakeWeights(FAKE, QuantScheme.int8PerRow());
             Tensor y = Tensor.wrapDevicePointer(FAKE, PTR + (3 << 20), DType.F32, 2, 3);
             Tensor h = Tensor.allocate(DType.F32, 2, 64)) {
            refuses(IllegalStateException.class, () -> Ops.matmul(t, w, null, y, null), "x", "closed");
            refuses(IllegalStateException.class, () -> Ops.matmul(t, w), "x", "closed");
            refuses(IllegalStateException.class, () -> t.copyFrom(h, null), "closed");
            assertTrue(w.isAlive());
            w.values().close();
            assertFalse(w.isAlive(), "closing a wrapped tensor of the weights closes them");
            refuses(IllegalStateException.class, () -> Ops.matmul(y, w), "w", "closed");
        }
        // a lease blocks close, as for owned memory
        Tensor u = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 4);
        try (Tensor.Lease l = u.lease()) {
            refuses(IllegalStateException.class, u::close, "in use");
        }
        u.close();
        assertFalse(u.isAlive());
    }

    @Test
    void cpuOpsRefuseDeviceTensorsNamingBothDevices() {
        try (Tensor x = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 2, 64);
             Tensor hostW = Tensor.of(new float[64 * 3], 3, 64);
             PackedWeights w = PackedWeights.quantize(hostW, QuantScheme.int8PerRow());
             Tensor hostX = Tensor.allocate(DType.F32, 2, 64);
             Tensor y = Tensor.allocate(DType.F32, 2, 3)) {
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w), "x is on cuda:0", "w is on cpu");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w, null, y), "x is on cuda:0", "w is on cpu");
            try (Tensor dy = Tensor.wrapDevicePointer(FAKE, PTR + 4096, DType.F32, 2, 3)) {
                refuses(IllegalArgumentException.class, () -> Ops.matmul(hostX, w, null, dy), "out is on cuda:0");
            }
            // any other CPU op: Checks.usable names the device
            refuses(IllegalArgumentException.class, () -> Ops.rmsNorm(x, null, hostX.rows(0, 1), 1e-5f, x), "cuda:0",
                    "CPU");
            refuses(IllegalArgumentException.class, () -> Quant.dequantize(new QuantizedTensor(
                    Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 2, 64),
                    Tensor.wrapDevicePointer(FAKE, PTR + 4096, DType.F32, 2), QuantScheme.int8PerRow())), "cuda:0");
        }
    }

    /** Fake device weights [3, 64] per row on dev (wrapped pointers: nothing is allocated). */
    private static DeviceWeights fakeWeights(Device dev, QuantScheme scheme) {
        long count = scheme.scaleCount(3, 64);
        return DeviceWeights.of(new QuantizedTensor(Tensor.wrapDevicePointer(dev, PTR + (1 << 20), DType.I8, 3, 64),
                Tensor.wrapDevicePointer(dev, PTR + (2 << 20), DType.F32, count), scheme));
    }

    @Test
    void deviceMatmulRefusesMixedDevicesBeforeAnyNativeCall() {
        try (DeviceWeights w = fakeWeights(FAKE, QuantScheme.int8PerRow());
             Tensor hostX = Tensor.allocate(DType.F32, 2, 64);
             Tensor x = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 2, 64);
             Tensor x1 = Tensor.wrapDevicePointer(FAKE1, PTR, DType.F32, 2, 64);
             Tensor y = Tensor.wrapDevicePointer(FAKE, PTR + (3 << 20), DType.F32, 2, 3);
             Tensor y1 = Tensor.wrapDevicePointer(FAKE1, PTR + (3 << 20), DType.F32, 2, 3);
             Tensor hostY = Tensor.allocate(DType.F32, 2, 3);
             Tensor bias1 = Tensor.wrapDevicePointer(FAKE1, PTR + (4 << 20), DType.F32, 3);
             Stream s1 = Stream.wrap(FAKE1, 0)) {
            refuses(IllegalArgumentException.class, () -> Ops.matmul(hostX, w), "x is on cpu", "w is on cuda:0");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x1, w), "x is on cuda:1", "w is on cuda:0");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x1, w, null, y, null), "x is on cuda:1", "cuda:0");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w, null, y1, null), "out is on cuda:1", "cuda:0");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w, null, hostY, null), "out is on cpu", "cuda:0");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w, bias1, y, null), "bias is on cuda:1");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w, null, y, s1), "stream is on cuda:1",
                    "w is on cuda:0");
            try (Tensor a8 = Tensor.allocate(DType.I8, 2, 64); Tensor c = Tensor.allocate(DType.I32, 2, 3)) {
                refuses(IllegalArgumentException.class, () -> Ops.matmulInt32(a8, w), "a is on cpu", "cuda:0");
                refuses(IllegalArgumentException.class, () -> Ops.matmulInt32(a8, w, c, null), "a is on cpu");
            }
        }
    }

    @Test
    void deviceMatmulValidatesShapesDtypesAndOverlap() {
        try (DeviceWeights w = fakeWeights(FAKE, QuantScheme.int8PerRow());
             Tensor x = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 2, 64);
             Tensor xk = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 2, 63);
             Tensor xi = Tensor.wrapDevicePointer(FAKE, PTR, DType.I32, 2, 64);
             Tensor y = Tensor.wrapDevicePointer(FAKE, PTR + (3 << 20), DType.F32, 2, 3);
             Tensor yBad = Tensor.wrapDevicePointer(FAKE, PTR + (3 << 20), DType.F32, 3, 3);
             Tensor yI8 = Tensor.wrapDevicePointer(FAKE, PTR + (3 << 20), DType.I8, 2, 3);
             Tensor yOver = Tensor.wrapDevicePointer(FAKE, PTR + 64, DType.F32, 2, 3);
             Tensor biasBad = Tensor.wrapDevicePointer(FAKE, PTR + (4 << 20), DType.F32, 4)) {
            refuses(IllegalArgumentException.class, () -> Ops.matmul((Tensor) null, w), "x is null");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, (DeviceWeights) null), "w is null");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w, null, null, null), "out is null");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(xk, w, null, y, null), "K = 63", "[3, 64]");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(xi, w, null, y, null), "x must be one of", "I32");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w, null, yBad, null), "out must be [2, 3]");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w, null, yI8, null), "out must be one of");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w, null, yOver, null), "out", "overlaps x");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(x, w, biasBad, y, null), "bias must hold 3");
            refuses(IllegalArgumentException.class, () -> Ops.matmulInt32(x, w), "a must be I8");
            // per-group activations need the weights' group
            try (QuantizedTensor a = new QuantizedTensor(Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 2, 64),
                    Tensor.wrapDevicePointer(FAKE, PTR + (5 << 20), DType.F32, 2 * 2), QuantScheme.int8PerGroup(32))) {
                refuses(IllegalArgumentException.class, () -> Ops.matmul(a, w, null, y, null), "group of 32");
            }
            // everything valid: the call gets as far as asking for CUDA, and says why there is none
            if (noGpu()) {
                refuses(DeviceUnavailableException.class, () -> Ops.matmul(x, w, null, y, null), "matmul", "CUDA");
                refuses(DeviceUnavailableException.class, () -> Ops.matmul(x, w), "CUDA");
                refuses(DeviceUnavailableException.class, () -> Quant.quantize(x, QuantScheme.int8PerRow()), "CUDA");
            }
        }
    }

    @Test
    void matmulInt32AcceptsPerGroupWeights() {
        // exact int32 output uses no scales: per-group weights pass the Java checks (the native call gets
        // PER_ROW, group 0) and the call gets as far as asking for CUDA
        try (DeviceWeights w = fakeWeights(FAKE, QuantScheme.int8PerGroup(32));
             Tensor a = Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 2, 64);
             Tensor c = Tensor.wrapDevicePointer(FAKE, PTR + (3 << 20), DType.I32, 2, 3)) {
            assertEquals(QuantScheme.Granularity.PER_GROUP, w.scheme().granularity());
            if (noGpu()) {
                refuses(DeviceUnavailableException.class, () -> Ops.matmulInt32(a, w, c, null), "matmulInt32", "CUDA");
                refuses(DeviceUnavailableException.class, () -> Ops.matmulInt32(a, w), "CUDA");
            }
        }
    }

    @Test
    void allocatingFormsValidateBeforeAllocating() {
        // the forms that return a new tensor check K, dtype and devices before allocating it: without a GPU a K
        // mismatch is still the IllegalArgumentException naming both shapes, not a DeviceUnavailableException
        try (DeviceWeights w = fakeWeights(FAKE, QuantScheme.int8PerRow());
             Tensor xk = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 2, 63);
             Tensor ak = Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 2, 63);
             Tensor xi = Tensor.wrapDevicePointer(FAKE, PTR, DType.I32, 2, 64);
             QuantizedTensor qk = new QuantizedTensor(Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 2, 63),
                     Tensor.wrapDevicePointer(FAKE, PTR + (5 << 20), DType.F32, 2), QuantScheme.int8PerRow())) {
            refuses(IllegalArgumentException.class, () -> Ops.matmul(xk, w), "x F32[2, 63]", "K = 63", "w is [3, 64]");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(qk, w), "a I8[2, 63]", "K = 63", "w is [3, 64]");
            refuses(IllegalArgumentException.class, () -> Ops.matmulInt32(ak, w), "a I8[2, 63]", "K = 63",
                    "w is [3, 64]");
            refuses(IllegalArgumentException.class, () -> Ops.matmul(xi, w), "x must be one of", "I32");
            try (QuantizedTensor g = new QuantizedTensor(Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 2, 64),
                    Tensor.wrapDevicePointer(FAKE, PTR + (5 << 20), DType.F32, 2 * 2), QuantScheme.int8PerGroup(32))) {
                refuses(IllegalArgumentException.class, () -> Ops.matmul(g, w), "group of 32");
            }
        }
    }

    @Test
    void deviceQuantizeValidates() {
        try (Tensor x = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 2, 64);
             Tensor xi = Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 2, 64);
             Tensor host = Tensor.allocate(DType.F32, 2, 64);
             Stream s1 = Stream.wrap(FAKE1, 0)) {
            refuses(IllegalArgumentException.class, () -> Quant.quantize(x, QuantScheme.int8PerTensor(), null),
                    "per row or per group");
            refuses(IllegalArgumentException.class, () -> Quant.quantize(x, QuantScheme.int8PerRow().asymmetric(), null),
                    "no CUDA kernel");
            refuses(IllegalArgumentException.class, () -> Quant.quantize(xi, QuantScheme.int8PerRow(), null), "x must be");
            refuses(IllegalArgumentException.class, () -> Quant.quantize(host, QuantScheme.int8PerRow(), null), "cpu");
            refuses(IllegalArgumentException.class, () -> Quant.quantize(x, QuantScheme.int8PerRow(), s1),
                    "stream is on cuda:1", "x is on cuda:0");
            refuses(IllegalArgumentException.class, () -> Quant.quantize(x, null, null), "scheme");
        }
    }

    @Test
    void deviceWeightsValidate() {
        try (Tensor hostW = Tensor.allocate(DType.F32, 3, 64)) {
            refuses(IllegalArgumentException.class, () -> DeviceWeights.quantize(hostW, QuantScheme.int8PerRow(),
                    Device.cpu()), "device is cpu", "PackedWeights");
            refuses(IllegalArgumentException.class, () -> DeviceWeights.quantize(hostW, QuantScheme.int8PerRow(), null),
                    "device is null");
            refuses(IllegalArgumentException.class, () -> DeviceWeights.quantize(null, QuantScheme.int8PerRow(), FAKE),
                    "w is null");
            refuses(IllegalArgumentException.class, () -> DeviceWeights.quantize(hostW,
                    QuantScheme.int8PerRow().withBits(4), FAKE), "no CUDA kernel");
            try (Tensor devW = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 3, 64)) {
                refuses(IllegalArgumentException.class, () -> DeviceWeights.quantize(devW, QuantScheme.int8PerRow(), FAKE),
                        "w is on cuda:0");
            }
            try (QuantizedTensor hostQ = Quant.quantize(hostW, QuantScheme.int8PerRow())) {
                refuses(IllegalArgumentException.class, () -> DeviceWeights.of(hostQ), "cpu", "upload");
                if (noGpu())
                    refuses(DeviceUnavailableException.class, () -> DeviceWeights.upload(hostQ, FAKE), "CUDA");
            }
        }
        // device quantized tensors: symmetric, values and scales on one device
        refuses(IllegalArgumentException.class, () -> new QuantizedTensor(Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 2, 8),
                Tensor.wrapDevicePointer(FAKE1, PTR, DType.F32, 2), QuantScheme.int8PerRow()), "scales is on cuda:1");
        refuses(IllegalArgumentException.class, () -> new QuantizedTensor(Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 2, 8),
                Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 3), QuantScheme.int8PerRow()), "scales must hold 2");
    }

    @Test
    void copiesValidateBeforeAnyNativeCall() {
        try (Tensor host = Tensor.allocate(DType.F32, 2, 3);
             Tensor host2 = Tensor.allocate(DType.F32, 2, 3);
             Tensor dev = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 2, 3);
             Tensor devI = Tensor.wrapDevicePointer(FAKE, PTR, DType.I32, 2, 3);
             Tensor dev1 = Tensor.wrapDevicePointer(FAKE1, PTR, DType.F32, 2, 3);
             Tensor devWide = Tensor.wrapDevicePointer(FAKE, PTR + 4096, DType.F32, 3, 3);
             Stream s0 = Stream.wrap(FAKE, 0);
             Stream s1 = Stream.wrap(FAKE1, 0)) {
            refuses(IllegalArgumentException.class, () -> dev.copyFrom(null, s0), "src is null");
            refuses(IllegalArgumentException.class, () -> host.copyTo(null, s0), "dst is null");
            refuses(IllegalArgumentException.class, () -> dev.copyFrom(host, s1), "stream is on cuda:1");
            refuses(IllegalArgumentException.class, () -> dev1.copyFrom(dev, s0), "cuda:0", "cuda:1");
            refuses(IllegalArgumentException.class, () -> host2.copyFrom(host, s0), "both on cpu");
            refuses(IllegalArgumentException.class, () -> devI.copyFrom(host, s0), "does not match");
            refuses(IllegalArgumentException.class, () -> devWide.copyFrom(host, s0), "does not match");
            refuses(IllegalArgumentException.class, () -> dev.to(FAKE1), "cuda:0", "cuda:1");
            refuses(IllegalArgumentException.class, () -> dev.to(null), "target is null");
            try (Tensor strided = Tensor.wrap(host.segment(), DType.F32, new long[] {2, 2}, new long[] {3, 1})) {
                refuses(IllegalArgumentException.class, () -> dev.rows(0, 2).copyTo(strided, s0), "not contiguous");
                refuses(IllegalArgumentException.class, () -> strided.to(FAKE), "not contiguous");
            }
            try (Tensor overlapping = Tensor.wrapDevicePointer(FAKE, PTR + 8, DType.F32, 2, 3)) {
                refuses(IllegalArgumentException.class, () -> overlapping.copyFrom(dev, s0), "overlaps");
            }
            if (noGpu()) {
                refuses(DeviceUnavailableException.class, () -> dev.copyFrom(host, s0), "CUDA");
                // a null stream is the legacy default stream (synchronous), as for the ops
                refuses(DeviceUnavailableException.class, () -> dev.copyFrom(host, null), "CUDA");
                refuses(DeviceUnavailableException.class, () -> dev.copyTo(host, null), "CUDA");
                refuses(DeviceUnavailableException.class, () -> host.to(FAKE), "CUDA");
                refuses(DeviceUnavailableException.class, () -> dev.to(Device.cpu()), "CUDA");
                refuses(DeviceUnavailableException.class, s0::synchronize, "CUDA");
            }
        }
    }

    @Test
    void streamsAndEventsValidate() {
        try (Stream s = Stream.wrap(FAKE, 0x1234)) {
            assertEquals(FAKE, s.device());
            assertEquals(0x1234, s.handle());
            assertFalse(s.ownsHandle());
            assertTrue(s.isAlive());
            refuses(IllegalArgumentException.class, () -> s.waitFor(null), "event is null");
            s.close(); // wrapped: destroys nothing, idempotent
            assertFalse(s.isAlive());
            refuses(IllegalStateException.class, s::lease, "closed");
            try (Tensor x = Tensor.wrapDevicePointer(FAKE, PTR, DType.F32, 2, 3);
                 Tensor h = Tensor.allocate(DType.F32, 2, 3)) {
                refuses(IllegalStateException.class, () -> x.copyFrom(h, s), "closed");
            }
        }
    }

    @Test
    void cleanupKeepsThePrimaryException() {
        IllegalArgumentException primary = new IllegalArgumentException("primary");
        assertSame(primary, dev.isthmus.internal.Cleanup.closeQuietly(() -> {
            throw new IllegalStateException("close failed");
        }, primary));
        assertEquals(1, primary.getSuppressed().length);
        assertEquals("close failed", primary.getSuppressed()[0].getMessage());
        assertSame(primary, dev.isthmus.internal.Cleanup.closeQuietly(null, primary));
    }

    @Test
    void quantizedTensorCloseClosesTheScalesWhenTheValuesFail() {
        Tensor v = Tensor.wrapDevicePointer(FAKE, PTR, DType.I8, 2, 8);
        Tensor sc = Tensor.wrapDevicePointer(FAKE, PTR + 4096, DType.F32, 2);
        QuantizedTensor q = new QuantizedTensor(v, sc, QuantScheme.int8PerRow());
        try (Tensor.Lease l = v.lease()) { // values in use: their close throws
            refuses(IllegalStateException.class, q::close, "in use");
        }
        assertFalse(sc.isAlive(), "scales closed although closing the values threw");
        assertTrue(v.isAlive());
        q.close();
        assertFalse(v.isAlive());
    }

    @Test
    void wrappedStreamsAreCountedUntilClosed() {
        long before = Isthmus.memoryStats().openObjects();
        Stream s = Stream.wrap(FAKE, 0);
        assertEquals(before + 1, Isthmus.memoryStats().openObjects());
        s.close();
        assertEquals(before, Isthmus.memoryStats().openObjects());
        assertEquals(0, FAKE.ownedBytes());
    }
}
