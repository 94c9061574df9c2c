package dev.isthmus;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.isthmus.quant.DeviceWeights;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

import java.util.Random;

import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

import org.junit.jupiter.api.Test;

/**
 * JCuda interop on a GPU (skipped, saying why, elsewhere): memory and a stream made by JCuda's driver API in the
 * primary context are wrapped as isthmus tensors and a stream, isthmus quantizes and multiplies on them, JCuda copies
 * the result back, and it equals the CPU's bit for bit (per-row scales).
 */
class CudaJCudaInteropTest {
    /** JCuda keeps the address protected; a subclass may read its own. */
    static final class DevicePtr extends CUdeviceptr {
        long address() {
            return getNativePointer();
        }
    }

    static final class RawStream extends CUstream {
        long handle() {
            return getNativePointer();
        }
    }

    @Test
    void jcudaMemoryAndStreamRunIsthmusKernels() {
        Device d = CudaTestSupport.gpu();   // skips before JCuda's natives are loaded
        JCudaDriver.setExceptionsEnabled(true);
        cuInit(0);
        CUdevice dev = new CUdevice();
        cuDeviceGet(dev, d.index());
        CUcontext ctx = new CUcontext();
        cuDevicePrimaryCtxRetain(ctx, dev);  // the context isthmus runs in
        cuCtxSetCurrent(ctx);
        int m = 17, n = 48, k = 256;
        Random r = new Random(11);
        float[] x = new float[m * k], w = new float[n * k];
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
        for (int i = 0; i < w.length; i++) w[i] = (float) r.nextGaussian();
        DevicePtr px = new DevicePtr(), pwv = new DevicePtr(), pws = new DevicePtr(), py = new DevicePtr();
        RawStream stream = new RawStream();
        try (Tensor hostX = Tensor.of(x, m, k); Tensor hostW = Tensor.of(w, n, k);
             QuantizedTensor wq = Quant.quantize(hostW, QuantScheme.int8PerRow());
             PackedWeights pw = PackedWeights.pack(wq); Tensor cpu = Ops.matmul(hostX, pw)) {
            cuMemAlloc(px, (long) m * k * Sizeof.FLOAT);
            cuMemAlloc(pwv, (long) n * k);
            cuMemAlloc(pws, (long) n * Sizeof.FLOAT);
            cuMemAlloc(py, (long) m * n * Sizeof.FLOAT);
            cuMemcpyHtoD(px, Pointer.to(x), (long) m * k * Sizeof.FLOAT);
            cuMemcpyHtoD(pwv, Pointer.to(wq.values().toByteArray()), (long) n * k);
            cuMemcpyHtoD(pws, Pointer.to(wq.scales().toFloatArray()), (long) n * Sizeof.FLOAT);
            cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING);

            try (Tensor tx = Tensor.wrapDevicePointer(d, px.address(), DType.F32, m, k);
                 DeviceWeights dw = DeviceWeights.of(new QuantizedTensor(
                         Tensor.wrapDevicePointer(d, pwv.address(), DType.I8, n, k),
                         Tensor.wrapDevicePointer(d, pws.address(), DType.F32, n), QuantScheme.int8PerRow()));
                 Tensor ty = Tensor.wrapDevicePointer(d, py.address(), DType.F32, m, n);
                 Stream s = Stream.wrap(d, stream.handle())) {
                assertFalse(tx.ownsMemory() || s.ownsHandle());
                try (QuantizedTensor aq = Quant.quantize(tx, QuantScheme.int8PerRow(), s)) {
                    Ops.matmul(aq, dw, null, ty, s);
                    cuStreamSynchronize(stream);     // JCuda waits for isthmus's work
                }
            }
            float[] y = new float[m * n];
            cuMemcpyDtoH(Pointer.to(y), py, (long) m * n * Sizeof.FLOAT);
            float[] want = cpu.toFloatArray();
            for (int i = 0; i < y.length; i++)
                assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(y[i]), "element " + i);
        } finally {
            for (DevicePtr p : new DevicePtr[] {px, pwv, pws, py})
                if (p.address() != 0) cuMemFree(p);
            if (stream.handle() != 0) cuStreamDestroy(stream);
            cuDevicePrimaryCtxRelease(dev);
        }
    }
}
