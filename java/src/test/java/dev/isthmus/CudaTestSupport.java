package dev.isthmus;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.concurrent.atomic.AtomicBoolean;

/** GPU tests call {@link #gpu()}: it skips them (saying why, printed once per JVM) when no CUDA device is usable. */
public final class CudaTestSupport {
    private static final AtomicBoolean LOGGED = new AtomicBoolean();

    private CudaTestSupport() {}

    /** cuda:0, or a skipped test whose reason is why there is none. */
    public static Device gpu() {
        String why = Device.cudaUnavailableReason().orElse(null);
        if (why != null && LOGGED.compareAndSet(false, true))
            System.out.println("GPU tests skipped: " + why);
        assumeTrue(why == null, () -> "no CUDA device: " + why);
        return Device.cuda(0);
    }
}
