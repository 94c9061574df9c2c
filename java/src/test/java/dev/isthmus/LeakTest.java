package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.speculative.AllOps;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import org.junit.jupiter.api.Test;

/**
 * Every op, many times ({@code -Disthmus.stress.iterations}, default 100): the library's own live memory
 * (outside per-thread scratch, which grows to a plateau), the native bytes held by isthmus objects and the
 * count of open objects return to their baseline, every iteration gives the same bits, and the process RSS
 * does not grow by more than {@link #RSS_BOUND_MB} after warm-up.
 */
class LeakTest {
    static final int ITERATIONS = Integer.getInteger("isthmus.stress.iterations", 100);
    static final int WARMUP = 5;
    /** Heap growth, JIT code and malloc arenas can move RSS a little; a leak of one op's outputs would not stay under. */
    static final long RSS_BOUND_MB = 64;

    static long rssKb() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status")))
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    @Test
    void everyOpManyTimesLeavesNothingBehind() throws Exception {
        MemoryStats start = Isthmus.memoryStats();
        if (Isthmus.debugMode()) // what earlier tests in this JVM left open, with where they made it
            for (OpenResource r : Isthmus.openResources()) System.out.println("LeakTest: open before: " + r);
        try (AllOps ops = new AllOps(42)) {
            Map<String, Long> want = ops.run();
            for (int i = 0; i < WARMUP; i++) assertEquals(want, ops.run());
            Isthmus.releaseThreadScratch();
            System.gc();
            MemoryStats base = Isthmus.memoryStats();
            long rss0 = rssKb(), rssMax = rss0;
            long t0 = System.nanoTime();
            for (int i = 0; i < ITERATIONS; i++) {
                assertEquals(want, ops.run(), "iteration " + i);
                if (i % 50 == 49) rssMax = Math.max(rssMax, rssKb());
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            Isthmus.releaseThreadScratch();
            System.gc();
            MemoryStats end = Isthmus.memoryStats();
            long rss1 = rssKb();
            rssMax = Math.max(rssMax, rss1);
            System.out.printf("LeakTest: %d iterations of %d ops in %.1f s; native live %d -> %d bytes (%d -> %d allocs,"
                            + " scratch %d -> %d), owned %d -> %d bytes in %d -> %d objects, RSS %d -> %d KB (max %d)%n",
                    ITERATIONS, want.size(), seconds, base.nativeLiveBytes(), end.nativeLiveBytes(),
                    base.nativeLiveAllocations(), end.nativeLiveAllocations(), base.nativeScratchBytes(),
                    end.nativeScratchBytes(), base.ownedBytes(), end.ownedBytes(), base.openObjects(), end.openObjects(),
                    rss0, rss1, rssMax);
            assertEquals(base.openObjects(), end.openObjects(), "open isthmus objects");
            assertEquals(base.ownedBytes(), end.ownedBytes(), "native bytes held by isthmus objects");
            // pool workers keep a scratch buffer each (2 allocations, a 16-byte header outside scratch_bytes)
            // once a task of theirs first needs one: at most that much may appear after warm-up
            long slackAllocs = 2 * end.poolThreads(), slackBytes = 16 * end.poolThreads();
            long grewAllocs = end.nativeLiveAllocations() - base.nativeLiveAllocations();
            long grewBytes = end.nativeNonScratchBytes() - base.nativeNonScratchBytes();
            assertTrue(grewAllocs >= 0 && grewAllocs <= slackAllocs, "native live allocations grew by " + grewAllocs);
            assertTrue(grewBytes >= 0 && grewBytes <= slackBytes, "native live bytes outside scratch grew by " + grewBytes);
            assertEquals(base.poolThreads(), end.poolThreads(), "pool threads");
            assertTrue(rssMax - rss0 <= RSS_BOUND_MB * 1024, "RSS grew from " + rss0 + " KB to " + rssMax + " KB over "
                    + ITERATIONS + " iterations (bound " + RSS_BOUND_MB + " MB)");
        }
        MemoryStats after = Isthmus.memoryStats();
        assertEquals(start.openObjects(), after.openObjects(), "the workload's own inputs are closed too");
        assertEquals(start.ownedBytes(), after.ownedBytes());
    }
}
