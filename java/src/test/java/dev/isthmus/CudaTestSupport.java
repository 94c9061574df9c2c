package dev.isthmus;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * GPU tests call {@link #gpu()}: it skips them (saying why, printed once per JVM) when no CUDA device is usable. With
 * {@code -Disthmus.test.requireGpu=true} (cuda/test/java-gpu-tests.sh on the GPU machine, where a missing device
 * means a broken setup) it fails them instead.
 */
public final class CudaTestSupport {
    /** The system property that turns a missing GPU from a skip into a failure. */
    public static final String REQUIRE_GPU = "isthmus.test.requireGpu";
    private static final AtomicBoolean LOGGED = new AtomicBoolean();

    private CudaTestSupport() {}

    /** cuda:0, or a skipped test whose reason is why there is none (a failed one under {@link #REQUIRE_GPU}). */
    public static Device gpu() {
        String why = Device.cudaUnavailableReason().orElse(null);
        if (why != null && Boolean.getBoolean(REQUIRE_GPU))
            fail("no CUDA device, and -D" + REQUIRE_GPU + "=true requires one: " + why);
        if (why != null && LOGGED.compareAndSet(false, true))
            System.out.println("GPU tests skipped: " + why);
        assumeTrue(why == null, () -> "no CUDA device: " + why);
        return Device.cuda(0);
    }
}
