package dev.isthmus.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NativeLibraryTest {
    @TempDir Path tmp;

    @Test
    void loadsThePackagedLibraryAndLogsIsa() {
        Path p = NativeLibrary.load();
        assertTrue(Files.isRegularFile(p), p.toString());
        assertEquals(p, NativeLibrary.load(), "load() is idempotent");
        assertEquals("linux-x86_64", NativeLibrary.platform());
    }

    @Test
    void extractionIsReusedAndSafeUnderConcurrency() throws Exception {
        byte[] bytes = new byte[1 << 20];
        new Random(7).nextBytes(bytes);
        Path first = NativeLibrary.extract(bytes, tmp);
        long stamp = Files.getLastModifiedTime(first).toMillis();
        Thread.sleep(20);
        assertEquals(first, NativeLibrary.extract(bytes, tmp), "same content -> same versioned folder");
        assertEquals(stamp, Files.getLastModifiedTime(first).toMillis(), "a matching file is reused, not rewritten");

        Files.write(first, new byte[] {1, 2, 3}); // corrupted by someone: replaced on next extraction
        assertTrue(java.util.Arrays.equals(bytes, Files.readAllBytes(NativeLibrary.extract(bytes, tmp))));

        byte[] other = bytes.clone();
        other[0] ^= 1;
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<Path>> fs = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                byte[] b = i % 2 == 0 ? bytes : other;
                fs.add(pool.submit(() -> NativeLibrary.extract(b, tmp.resolve("c"))));
            }
            for (int i = 0; i < 16; i++) {
                Path p = fs.get(i).get();
                assertTrue(java.util.Arrays.equals(i % 2 == 0 ? bytes : other, Files.readAllBytes(p)),
                        "concurrent extraction produced a torn file");
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void missingLibraryHasAClearMessage() {
        String old = System.getProperty(NativeLibrary.PATH_PROPERTY);
        System.setProperty(NativeLibrary.PATH_PROPERTY, tmp.resolve("nowhere").toString());
        try {
            NativeLibraryException e = assertThrows(NativeLibraryException.class, NativeLibrary::locate);
            assertTrue(e.getMessage().contains("isthmus.library.path") && e.getMessage().contains("nowhere"),
                    e.getMessage());
        } finally {
            if (old == null) System.clearProperty(NativeLibrary.PATH_PROPERTY);
            else System.setProperty(NativeLibrary.PATH_PROPERTY, old);
        }
    }

    @Test
    void notALibraryHasAClearMessage() throws Exception {
        Path junk = Files.write(tmp.resolve("libisthmus.so"), new byte[] {0x7f, 'E', 'L', 'F', 0});
        NativeLibraryException e = assertThrows(NativeLibraryException.class, () -> NativeLibrary.checkAbi(junk));
        assertTrue(e.getMessage().contains(junk.toString()), e.getMessage());
    }

    @Test
    void abiMismatchIsRefused() {
        Path fake = Path.of(System.getProperty("isthmus.test.native.build", "../native/target/cmake"),
                "libisthmus_abi_mismatch.so");
        assumeTrue(Files.isRegularFile(fake), "skipped: test library " + fake + " was not built (native tests off)");
        NativeLibraryException e = assertThrows(NativeLibraryException.class, () -> NativeLibrary.checkAbi(fake));
        assertTrue(e.getMessage().contains("ABI mismatch") && e.getMessage().contains("9999")
                && e.getMessage().contains(String.valueOf(NativeLibrary.EXPECTED_ABI)), e.getMessage());
    }
}
