package dev.isthmus;

import dev.isthmus.bindings.cuda.IsthmusCuda;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Cuda;
import dev.isthmus.internal.Leases;
import dev.isthmus.internal.Resources;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A CUDA event with timing: a marker recorded on a {@link Stream}, to wait for ({@link #synchronize()},
 * {@link Stream#waitFor(Event)}) or to time device work between two of them ({@link #elapsedMillis(Event)}).
 * Owned: {@link #close()} destroys it.
 *
 * <pre>{@code
 * try (Event start = stream.record()) {
 *     Ops.matmul(x, w, null, y, stream);
 *     try (Event end = stream.record()) {
 *         end.synchronize();
 *         System.out.println(start.elapsedMillis(end) + " ms");
 *     }
 * }
 * }</pre>
 */
public final class Event implements AutoCloseable {
    private final Device device;
    private final long handle;
    private final Leases leases = new Leases();
    private final Resources.Handle accounting;

    private Event(Device device, long handle) {
        this.device = device;
        this.handle = handle;
        this.accounting = Resources.openDevice(this, "Event", device.index(), 0, () -> "event on " + device);
    }

    /**
     * A new event on a CUDA device (not yet recorded).
     *
     * @throws IllegalArgumentException for a null or CPU device
     */
    public static Event create(Device device) {
        Stream.cudaDevice(device, "device");
        Cuda.require("Event.create");
        long h = Cuda.created(out -> IsthmusCuda.isthmus_cuda_event_create(device.index(), out), "Event.create " + device);
        try {
            return new Event(device, h);
        } catch (RuntimeException | Error e) {
            IsthmusCuda.isthmus_cuda_event_destroy(device.index(), Cuda.ptr(h)); // a status, never throws
            throw e;
        }
    }

    /** The device. */
    public Device device() {
        return device;
    }

    long handle() {
        return handle;
    }

    Tensor.Lease lease() {
        Runnable r = leases.acquire(this);
        return r::run;
    }

    /**
     * Records the event on {@code stream} (it completes when the work queued before it has). Returns this.
     *
     * @throws IllegalArgumentException for a null stream or one of another device
     */
    public Event record(Stream stream) {
        Checks.notNull(stream, "stream");
        if (!stream.device().equals(device))
            throw new IllegalArgumentException("stream is on " + stream.device() + " but event is on " + device);
        Cuda.require("Event.record");
        try (Tensor.Lease l = lease(); Tensor.Lease ls = stream.lease()) {
            Cuda.check(IsthmusCuda.isthmus_cuda_event_record(device.index(), Cuda.ptr(handle), Cuda.ptr(stream.handle())),
                    "Event.record");
        }
        return this;
    }

    /** Waits until the event has completed. */
    public void synchronize() {
        Cuda.require("Event.synchronize");
        try (Tensor.Lease l = lease()) {
            Cuda.check(IsthmusCuda.isthmus_cuda_event_synchronize(device.index(), Cuda.ptr(handle)), "Event.synchronize");
        }
    }

    /**
     * Milliseconds of device time from this event to {@code end}, both recorded and completed
     * ({@code cudaEventElapsedTime}; resolution about half a microsecond).
     *
     * @throws IllegalArgumentException for a null end or one of another device
     * @throws IsthmusException         when either has not been recorded or has not completed
     */
    public float elapsedMillis(Event end) {
        Checks.notNull(end, "end");
        if (!end.device.equals(device))
            throw new IllegalArgumentException("end is on " + end.device + " but this event is on " + device);
        Cuda.require("Event.elapsedMillis");
        try (Tensor.Lease l = lease(); Tensor.Lease le = end.lease(); Arena arena = Arena.ofConfined()) {
            MemorySegment ms = arena.allocate(ValueLayout.JAVA_FLOAT);
            Cuda.check(IsthmusCuda.isthmus_cuda_event_elapsed_ms(device.index(), Cuda.ptr(handle), Cuda.ptr(end.handle),
                    ms), "Event.elapsedMillis");
            return ms.get(ValueLayout.JAVA_FLOAT, 0);
        }
    }

    /** Destroys the event. Idempotent. */
    @Override
    public void close() {
        if (!leases.markClosed(this)) return;
        try {
            Cuda.check(IsthmusCuda.isthmus_cuda_event_destroy(device.index(), Cuda.ptr(handle)), "Event.close");
        } finally {
            accounting.close();
        }
    }

    @Override
    public String toString() {
        return "Event[" + device + (leases.isClosed() ? ", closed" : "") + "]";
    }
}
