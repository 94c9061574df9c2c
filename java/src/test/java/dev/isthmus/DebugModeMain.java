package dev.isthmus;

import dev.isthmus.attention.KvCache;
import dev.isthmus.attention.KvConfig;

import java.util.List;

/**
 * Run in a fresh JVM by {@link DebugModeTest} (debug mode is read once at load): leaves a tensor and a cache
 * unclosed, closes another tensor, drops a third unclosed, and prints what {@link Isthmus#openResources()}
 * reported, one {@code KEY=value} per line. The "dev.isthmus" System.Logger goes to java.util.logging's console
 * handler (stderr) by default, which the test reads from the same stream.
 */
public final class DebugModeMain {
    private DebugModeMain() {}

    static Tensor keptTensor;
    static KvCache keptCache;

    static void leakTensor() {
        keptTensor = Tensor.allocate(DType.I8, 3, 5);
    }

    static void leakCache() {
        keptCache = KvCache.create(KvConfig.builder().layers(1).kvHeads(1).headDim(16).numBlocks(4).maxSequences(1)
                .maxSequenceLength(64).build());
    }

    static void closedTensor() {
        try (Tensor t = Tensor.allocate(DType.F32, 7, 11)) {
            t.set(1f, 0, 0);
        }
    }

    static void dropTensor() {
        Tensor.allocate(DType.I32, 13, 17); // never closed, unreachable on return
    }

    public static void main(String[] args) throws Exception {
        long before = Isthmus.memoryStats().openObjects();
        leakTensor();
        leakCache();
        closedTensor();
        System.out.println("DEBUG=" + Isthmus.debugMode());
        System.out.println("OPEN_OBJECTS_ADDED=" + (Isthmus.memoryStats().openObjects() - before));
        List<OpenResource> open = Isthmus.openResources();
        System.out.println("LISTED=" + open.size());
        for (OpenResource r : open) {
            boolean fromTensor = r.creationStack().stream().anyMatch(e -> e.getMethodName().equals("leakTensor")
                    && e.getClassName().equals(DebugModeMain.class.getName()));
            boolean fromCache = r.creationStack().stream().anyMatch(e -> e.getMethodName().equals("leakCache"));
            System.out.println("RESOURCE kind=" + r.kind() + " description=" + r.description() + " bytes=" + r.bytes()
                    + " siteTensor=" + fromTensor + " siteCache=" + fromCache);
        }
        dropTensor();
        long deadline = System.nanoTime() + Long.parseLong(args.length > 0 ? args[0] : "20") * 1_000_000_000L;
        while (System.nanoTime() < deadline && Isthmus.openResources().stream().noneMatch(OpenResource::unreachable)) {
            System.gc();
            Thread.sleep(50);
        }
        Thread.sleep(200); // the cleaner logs right after marking it
        System.err.flush();
        long unreachable = Isthmus.openResources().stream().filter(OpenResource::unreachable).count();
        System.out.println("UNREACHABLE_LISTED=" + unreachable);
        keptTensor.close();
        keptCache.close();
        System.out.println("AFTER_CLOSE_LISTED=" + Isthmus.openResources().size());
        System.out.println("END");
    }
}
