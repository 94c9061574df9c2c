package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class RuntimeInfoTest {
    @AfterEach
    void restore() {
        Isthmus.setIsaCap(Isa.AVX512);
        Isthmus.setThreads(Runtime.getRuntime().availableProcessors());
    }

    @Test
    void describesTheLoadedLibrary() {
        String d = Isthmus.describe();
        assertTrue(d.contains(Isthmus.version()) && d.contains(Isthmus.isa().toString()), d);
        assertTrue(Isthmus.libraryPath().toString().endsWith("libisthmus.so"), d);
        assertEquals(dev.isthmus.loader.NativeLibrary.EXPECTED_ABI, Isthmus.abiVersion());
    }

    @Test
    void isaCapLowersTheActiveVariant() {
        for (Isa cap : Isa.values()) {
            Isthmus.setIsaCap(cap);
            Isa want = cap.compareTo(Isthmus.supportedIsa()) < 0 ? cap : Isthmus.supportedIsa();
            assertEquals(want, Isthmus.isa());
            assertEquals(cap, Isthmus.isaCap());
        }
        assertThrows(IllegalArgumentException.class, () -> Isthmus.setIsaCap(null));
    }

    @Test
    void threads() {
        Isthmus.setThreads(3);
        assertEquals(3, Isthmus.threads());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Isthmus.setThreads(0));
        assertTrue(e.getMessage().contains("threads"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Isthmus.setThreads(5000));
    }

    @Test
    void registryListsEveryVariantOfEveryOp() {
        List<KernelInfo> ks = Isthmus.kernels();
        Map<String, List<KernelInfo>> byOp = ks.stream().collect(Collectors.groupingBy(KernelInfo::op));
        for (String op : List.of("quantize_s8", "gemm_s8", "gemm_s8_s32")) {
            List<KernelInfo> v = byOp.get(op);
            assertEquals(3, v.size(), op + ": " + v);
            for (KernelInfo k : v) {
                assertTrue(k.name().endsWith("__" + k.isa().name().toLowerCase()), k.toString());
                assertEquals(k.isa().compareTo(Isthmus.supportedIsa()) <= 0, k.available(), k.toString());
            }
        }
    }
}
