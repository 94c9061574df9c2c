package dev.isthmus.bench.ffi;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Loads Jlama's {@code libjlama.so} (jlama-native 0.8.4, linux-x86_64) so that its jextract bindings
 * ({@code com.github.tjake.jlama.tensor.operations.cnative.NativeSimd}, which look symbols up with
 * {@code SymbolLookup.loaderLookup()}) find them: the library is extracted from the jar to a temporary
 * file and {@code System.load}ed from this class, which lives in the same class loader as NativeSimd.
 */
public final class JlamaNative {
    public static final String RESOURCE = "META-INF/native/lib/libjlama.so";
    public static final String BINDINGS = "com.github.tjake.jlama.tensor.operations.cnative.NativeSimd";
    /** vector_simd.h flags: HAS_F16C, and HAS_AVX2, which selects the *_512 code paths (in the published
     * 0.8.4 build those hold no AVX-512 instruction: both paths run the same AVX2 code). */
    public static final int HAS_F16C = 2, HAS_AVX2 = 4;

    private static Path loaded;
    private static String unavailable;

    private JlamaNative() {}

    /** True once libjlama is loaded and NativeSimd resolves; else {@link #unavailableReason()} says why. */
    public static synchronized boolean load() {
        if (loaded != null) return true;
        if (unavailable != null) return false;
        String os = System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT);
        String arch = System.getProperty("os.arch", "");
        if (!os.contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            unavailable = "the jlama-native jar in use is linux-x86_64 only (this is " + os + "/" + arch + ")";
            return false;
        }
        ClassLoader cl = JlamaNative.class.getClassLoader();
        try {
            Class.forName(BINDINGS, false, cl);
        } catch (ClassNotFoundException e) {
            unavailable = BINDINGS + " not found: jlama-native must be on the class path as a multi-release jar "
                    + "(the class exists only under META-INF/versions/20..22)";
            return false;
        }
        try (InputStream in = cl.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                unavailable = RESOURCE + " not found on the class path";
                return false;
            }
            Path tmp = Files.createTempFile("libjlama-", ".so");
            tmp.toFile().deleteOnExit();
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            System.load(tmp.toString());
            loaded = tmp;
            return true;
        } catch (IOException | UnsatisfiedLinkError e) {
            unavailable = "cannot load libjlama.so: " + e.getMessage();
            return false;
        }
    }

    public static synchronized String unavailableReason() {
        load();
        return unavailable;
    }

    /**
     * The flags Jlama's NativeSimdTensorOperations passes on this machine: HAS_F16C on Linux, HAS_AVX2 when
     * its MachineSpec finds AVX-512 (the Vector API's preferred species is 512 bits).
     */
    public static int flags(boolean avx512) {
        return HAS_F16C | (avx512 ? HAS_AVX2 : 0);
    }
}
