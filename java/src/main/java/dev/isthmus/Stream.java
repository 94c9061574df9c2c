package dev.isthmus;

import dev.isthmus.bindings.cuda.IsthmusCuda;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Cleanup;
import dev.isthmus.internal.Cuda;
import dev.isthmus.internal.Leases;
import dev.isthmus.internal.Resources;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A CUDA stream: an ordered queue of device work. Ops and device-to-device copies given a {@code Stream} enqueue
 * their work and return without waiting (the CUDA rule); {@link #synchronize()} waits, and reports an error a kernel
 * hit on the device (an {@link IsthmusException} with status {@link IsthmusException#DEVICE}). Copies between host
 * and device memory ({@link Tensor#copyFrom(Tensor, Stream)}) are queued on the stream too but wait for it before
 * they return, since the host memory is only leased for the call. The forms of ops and copies with a {@code null}
 * stream run on the device's legacy default stream and wait before they return.
 *
 * <p><b>Ordering with non-blocking streams.</b> Streams from {@link #create(Device)} do not wait for the legacy
 * default stream, nor it for them: a {@code null}-stream op or copy may run while a kernel queued on such a stream
 * is still writing its input. Synchronize that stream first (or order the two with {@link Event}s).
 * {@link Tensor#to(Device)} is the exception: it waits for the whole device ({@link Device#synchronize()}) before
 * copying, so {@code y.to(Device.cpu())} after an op on any stream reads the finished result.
 *
 * <p>Two kinds:
 * <ul>
 *   <li>{@link #create(Device)}: a new non-blocking stream ({@code cudaStreamNonBlocking}: it does not wait for the
 *       legacy default stream), owned: {@link #close()} destroys it (work already queued still completes);</li>
 *   <li>{@link #wrap(Device, long)}: a {@code cudaStream_t} / {@code CUstream} the caller owns (from JCuda, the CUDA
 *       runtime, PyTorch), or {@code 0} for the legacy default stream: {@code close()} never destroys it. The stream
 *       must belong to the device's <b>primary context</b> (the CUDA runtime's; with JCuda's driver API, create it
 *       after {@code cuDevicePrimaryCtxRetain} + {@code cuCtxSetCurrent}), as isthmus_cuda.h requires. isthmus
 *       cannot check the handle: a wrong one can crash the process (see {@link #wrap}).</li>
 * </ul>
 * A stream keeps a device scratch buffer for the ops that need one (the activation quantization of
 * {@link Ops#matmul(Tensor, dev.isthmus.quant.DeviceWeights, Tensor, Tensor, Stream)} and split-K workspaces), grown
 * on demand and freed by {@code close()}; ops on one stream from several threads are serialized while they enqueue.
 * Close every stream, wrapped ones included: closing frees the scratch (and waits for the device, as
 * {@code cudaFree} does).
 *
 * <pre>{@code
 * Device gpu = Device.cuda(0);
 * try (Stream s = Stream.create(gpu);
 *      Tensor x = Tensor.allocate(DType.F32, gpu, m, k);
 *      Tensor y = Tensor.allocate(DType.F32, gpu, m, n)) {
 *     x.copyFrom(hostX, s);                       // H2D: queued, then waits for s (host memory)
 *     Ops.matmul(x, weights, null, y, s);         // async
 *     y.copyTo(hostY, s);                         // D2H
 *     s.synchronize();                            // hostY is ready; device errors surface here
 * }
 * }</pre>
 */
public final class Stream implements AutoCloseable {
    private final Device device;
    private final long handle;
    private final boolean owned;
    private final Leases leases = new Leases();
    private final Resources.Handle accounting;
    /**
     * Held by ops while they enqueue on this stream and guards the scratch: a private object, so code that
     * synchronizes on the public Stream cannot block or break it.
     */
    private final Object lock = new Object();
    /** Device scratch for ops (guarded by lock). */
    private long scratch;
    private long scratchBytes;

    private Stream(Device device, long handle, boolean owned) {
        this.device = device;
        this.handle = handle;
        this.owned = owned;
        String what = (owned ? "created" : "wrapped 0x" + Long.toHexString(handle)) + " on " + device;
        this.accounting = Resources.openDevice(this, "Stream", device.index(), 0, () -> what);
    }

    /**
     * A new non-blocking stream on a CUDA device, owned: {@link #close()} destroys it.
     *
     * @throws IllegalArgumentException for a null or CPU device
     */
    public static Stream create(Device device) {
        cudaDevice(device, "device");
        Cuda.require("Stream.create");
        long h = Cuda.created(out -> IsthmusCuda.isthmus_cuda_stream_create(device.index(), out), "Stream.create " + device);
        try {
            return new Stream(device, h, true);
        } catch (RuntimeException | Error e) {
            IsthmusCuda.isthmus_cuda_stream_destroy(device.index(), Cuda.ptr(h));
            throw e;
        }
    }

    /**
     * Wraps a stream the caller owns ({@code cudaStream_t} / {@code CUstream} as a long, e.g. JCuda's
     * {@code new CUstream()} after {@code cuStreamCreate}, read with {@code getNativePointer()}), or {@code 0} for the
     * legacy default stream. No copy, no ownership: {@link #close()} frees only isthmus's scratch, never the stream.
     * The stream must live in {@code device}'s primary context and outlive this object; isthmus cannot check either.
     * <b>A wrong handle can crash the process</b>: the CUDA runtime dereferences a {@code cudaStream_t} as a pointer
     * to its own structures, so a bogus or destroyed one is undefined behaviour in native code (typically a
     * segmentation fault of the JVM), outside the guarantee that user input never crashes the JVM.
     *
     * @throws IllegalArgumentException for a null or CPU device
     */
    public static Stream wrap(Device device, long cuStreamHandle) {
        cudaDevice(device, "device");
        return new Stream(device, cuStreamHandle, false);
    }

    /** The device whose work this stream queues. */
    public Device device() {
        return device;
    }

    /** The {@code cudaStream_t} as a long (0: the legacy default stream). */
    public long handle() {
        return handle;
    }

    /** True for {@link #create}d streams, which {@link #close()} destroys. */
    public boolean ownsHandle() {
        return owned;
    }

    /** True until {@link #close()}. */
    public boolean isAlive() {
        return !leases.isClosed();
    }

    /**
     * Waits until all work queued on the stream has completed.
     *
     * @throws IsthmusException      with status {@link IsthmusException#DEVICE} for an error on the device
     * @throws IllegalStateException when closed
     */
    public void synchronize() {
        Cuda.require("Stream.synchronize");
        try (Tensor.Lease l = lease()) {
            Cuda.synchronize(device.index(), handle, "Stream.synchronize " + this);
        }
    }

    /** True when all work queued on the stream has completed; does not wait. */
    public boolean query() {
        Cuda.require("Stream.query");
        try (Tensor.Lease l = lease(); Arena arena = Arena.ofConfined()) {
            MemorySegment done = arena.allocate(ValueLayout.JAVA_INT);
            Cuda.check(IsthmusCuda.isthmus_cuda_stream_query(device.index(), Cuda.ptr(handle), done),
                    "Stream.query " + this);
            return done.get(ValueLayout.JAVA_INT, 0) != 0;
        }
    }

    /**
     * Work queued on this stream after this call waits for {@code event} ({@code cudaStreamWaitEvent}).
     *
     * @throws IllegalArgumentException for a null event or one of another device
     */
    public void waitFor(Event event) {
        Checks.notNull(event, "event");
        if (!event.device().equals(device))
            throw new IllegalArgumentException("event is on " + event.device() + " but stream is on " + device);
        Cuda.require("Stream.waitFor");
        try (Tensor.Lease l = lease(); Tensor.Lease le = event.lease()) {
            Cuda.check(IsthmusCuda.isthmus_cuda_stream_wait_event(device.index(), Cuda.ptr(handle),
                    Cuda.ptr(event.handle())), "Stream.waitFor " + this);
        }
    }

    /** A new event recorded on this stream now (for timing: {@code start.elapsedMillis(end)}). Close it. */
    public Event record() {
        Event e = Event.create(device);
        try {
            e.record(this);
            return e;
        } catch (RuntimeException | Error x) {
            Cleanup.closeQuietly(e, x);
            throw x;
        }
    }

    /**
     * Takes a lease on the stream, as ops do while they queue work on it: {@link #close()} fails while one is held.
     *
     * @throws IllegalStateException when the stream is closed
     */
    public Tensor.Lease lease() {
        Runnable r = leases.acquire(this);
        return r::run;
    }

    /** The lock ops hold while they enqueue on this stream (and use its {@link #scratch}). */
    Object lock() {
        return lock;
    }

    /**
     * At least {@code bytes} of device scratch for an op on this stream, valid until the next call of this method;
     * callers hold {@link #lock()} from here until their work is enqueued (calls on one stream are ordered, so the
     * next op's use waits for this one's on the device). Grows to {@code max(bytes, 2 * old)}, or to exactly
     * {@code bytes} when that larger allocation fails.
     */
    long scratch(long bytes) {
        assert Thread.holdsLock(lock);
        if (bytes <= scratchBytes) return scratch;
        long grown = Math.max(bytes, scratchBytes > Long.MAX_VALUE / 2 ? bytes : scratchBytes * 2);
        if (scratch != 0) {
            long old = scratch, oldBytes = scratchBytes;
            scratch = 0;
            scratchBytes = 0;
            accounting.grow(-oldBytes);
            Cuda.free(device.index(), old, "Stream scratch " + this); // waits for the device: in-flight users finish
        }
        try {
            scratch = Cuda.malloc(device.index(), grown, "Stream scratch " + this);
        } catch (IsthmusException e) {
            if (grown == bytes) throw e;
            grown = bytes; // the doubling is an optimization: retry with what this op needs
            try {
                scratch = Cuda.malloc(device.index(), grown, "Stream scratch " + this);
            } catch (RuntimeException | Error e2) {
                e2.addSuppressed(e);
                throw e2;
            }
        }
        scratchBytes = grown;
        accounting.grow(grown);
        return scratch;
    }

    /**
     * Frees the scratch (waiting for the device, as {@code cudaFree} does) and destroys the stream if it was created
     * here. Idempotent.
     *
     * @throws IllegalStateException while an op on another thread is enqueuing on this stream
     */
    @Override
    public void close() {
        if (!leases.markClosed(this)) return;
        try {
            try {
                synchronized (lock) {
                    if (scratch != 0) {
                        long s = scratch;
                        scratch = 0;
                        scratchBytes = 0;
                        Cuda.free(device.index(), s, "Stream.close " + this);
                    }
                }
            } finally { // the stream is destroyed even when freeing the scratch failed
                if (owned) {
                    Cuda.require("Stream.close");
                    Cuda.check(IsthmusCuda.isthmus_cuda_stream_destroy(device.index(), Cuda.ptr(handle)),
                            "Stream.close " + this);
                }
            }
        } finally {
            accounting.close();
        }
    }

    @Override
    public String toString() {
        return "Stream[" + device + (handle == 0 ? ", legacy default" : ", 0x" + Long.toHexString(handle))
                + (owned ? "" : ", wrapped") + (isAlive() ? "" : ", closed") + "]";
    }

    static void cudaDevice(Device device, String name) {
        Checks.notNull(device, name);
        if (!device.isCuda())
            throw new IllegalArgumentException(name + " is " + device + ": streams and events are for CUDA devices");
    }
}
