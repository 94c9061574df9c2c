package dev.isthmus.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.isthmus.bindings.cuda.IsthmusCuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The CUDA bindings match isthmus_cuda.h, and the optional CUDA library is loaded (or refused) with a reason. */
class CudaLibraryTest {
    private static final Pattern DECL = Pattern.compile(
            "^[A-Za-z_][\\w\\s\\*]*?\\b(isthmus_cuda_[a-z0-9_]+)\\s*\\(", Pattern.MULTILINE);

    @TempDir Path tmp;

    static Set<String> headerFunctions() throws IOException {
        String text = Files.readString(Path.of(System.getProperty("isthmus.test.cuda.header",
                "../cuda/include/isthmus_cuda.h")));
        text = text.replaceAll("(?s)/\\*.*?\\*/", " ");
        text = text.replaceAll("(?m)^\\s*#.*$", " ");
        Set<String> fns = new TreeSet<>();
        Matcher m = DECL.matcher(text);
        while (m.find()) fns.add(m.group(1));
        return fns;
    }

    static Set<String> bindingFunctions() {
        return Arrays.stream(IsthmusCuda.class.getMethods())
                .filter(mt -> Modifier.isStatic(mt.getModifiers()))
                .map(Method::getName)
                .filter(n -> n.startsWith("isthmus_cuda_") && !n.contains("$"))
                .collect(Collectors.toCollection(TreeSet::new));
    }

    @Test
    void everyHeaderFunctionHasABindingAndViceVersa() throws IOException {
        Set<String> header = headerFunctions();
        assertTrue(header.size() >= 25, "parsed too few declarations from isthmus_cuda.h: " + header);
        assertEquals(header, bindingFunctions(),
                "bindings/ is out of date with cuda/include/isthmus_cuda.h: run bindings/regenerate.sh");
    }

    @Test
    void expectedAbiIsTheHeaders() {
        assertEquals(1, CudaLibrary.EXPECTED_ABI);
        assertEquals(IsthmusCuda.ISTHMUS_CUDA_ABI_VERSION(), CudaLibrary.EXPECTED_ABI);
    }

    @Test
    void loadedOrAReasonNeverBoth() {
        // the attempt never throws, and exactly one of path / reason is set; require() agrees
        boolean loaded = CudaLibrary.isLoaded();
        if (loaded) {
            assertNotNull(CudaLibrary.path());
            assertNull(CudaLibrary.unavailableReason());
            assertEquals(CudaLibrary.path(), CudaLibrary.require());
        } else {
            String why = CudaLibrary.unavailableReason();
            System.out.println("CudaLibraryTest: CUDA library not loaded: " + why);
            assertNull(CudaLibrary.path());
            assertTrue(why != null && why.contains(CudaLibrary.LIBRARY_FILE), why);
            NativeLibraryException e = assertThrows(NativeLibraryException.class, CudaLibrary::require);
            assertEquals(why, e.getMessage(), "require() repeats the remembered reason");
        }
    }

    @Test
    void missingOverrideHasAClearMessage() {
        String old = System.getProperty(CudaLibrary.PATH_PROPERTY);
        System.setProperty(CudaLibrary.PATH_PROPERTY, tmp.resolve("nowhere").toString());
        try {
            NativeLibraryException e = assertThrows(NativeLibraryException.class, CudaLibrary::locate);
            assertTrue(e.getMessage().contains(CudaLibrary.PATH_PROPERTY) && e.getMessage().contains("nowhere"),
                    e.getMessage());
        } finally {
            restore(CudaLibrary.PATH_PROPERTY, old);
        }
    }

    @Test
    void foundNextToTheCpuLibraryOverride() throws IOException {
        Path cpu = Files.write(tmp.resolve("libisthmus.so"), new byte[] {1});
        Path cuda = Files.write(tmp.resolve(CudaLibrary.LIBRARY_FILE), new byte[] {2});
        String oldCuda = System.getProperty(CudaLibrary.PATH_PROPERTY);
        String oldCpu = System.getProperty(NativeLibrary.PATH_PROPERTY);
        System.clearProperty(CudaLibrary.PATH_PROPERTY);
        try {
            System.setProperty(NativeLibrary.PATH_PROPERTY, cpu.toString());   // the file: its folder is searched
            assertEquals(cuda.toAbsolutePath(), CudaLibrary.locate());
            System.setProperty(NativeLibrary.PATH_PROPERTY, tmp.toString());   // the folder itself
            assertEquals(cuda.toAbsolutePath(), CudaLibrary.locate());
        } finally {
            restore(CudaLibrary.PATH_PROPERTY, oldCuda);
            restore(NativeLibrary.PATH_PROPERTY, oldCpu);
        }
    }

    @Test
    void theCpuLibraryIsNotACudaLibrary() {
        Path cpu = NativeLibrary.load();
        NativeLibraryException e = assertThrows(NativeLibraryException.class,
                () -> NativeLibrary.checkAbi(cpu, "isthmus_cuda_abi_version", CudaLibrary.EXPECTED_ABI,
                        "isthmus CUDA library"));
        assertTrue(e.getMessage().contains("not an isthmus CUDA library")
                && e.getMessage().contains("isthmus_cuda_abi_version"), e.getMessage());
    }

    @Test
    void notALibraryHasAClearMessage() throws Exception {
        Path junk = Files.write(tmp.resolve(CudaLibrary.LIBRARY_FILE), new byte[] {0x7f, 'E', 'L', 'F', 0});
        NativeLibraryException e = assertThrows(NativeLibraryException.class,
                () -> NativeLibrary.checkAbi(junk, "isthmus_cuda_abi_version", 1, "isthmus CUDA library"));
        assertTrue(e.getMessage().contains(junk.toString()), e.getMessage());
    }

    @Test
    void everyBindingResolvesInTheLoadedLibrary() {
        assumeTrue(CudaLibrary.isLoaded(), () -> {
            String why = "skipped: " + CudaLibrary.unavailableReason();
            System.out.println("CudaLibraryTest.everyBindingResolvesInTheLoadedLibrary " + why);
            return why;
        });
        List<String> missing = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup lookup = SymbolLookup.libraryLookup(CudaLibrary.path(), arena);
            for (String fn : bindingFunctions())
                if (lookup.find(fn).isEmpty()) missing.add(fn);
        }
        assertTrue(missing.isEmpty(), "symbols bound but not exported by " + CudaLibrary.path() + ": " + missing);
        assertEquals(CudaLibrary.EXPECTED_ABI, IsthmusCuda.isthmus_cuda_abi_version());
    }

    private static void restore(String key, String old) {
        if (old == null) System.clearProperty(key);
        else System.setProperty(key, old);
    }
}
