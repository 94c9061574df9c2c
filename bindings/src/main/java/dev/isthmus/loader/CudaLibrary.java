package dev.isthmus.loader;

import dev.isthmus.bindings.cuda.IsthmusCuda;

import java.io.IOException;
import java.io.InputStream;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Finds, checks and loads the optional {@code libisthmus_cuda.so}, lazily and at most once per JVM.
 *
 * <p>The CUDA library is optional: it is built only where {@code nvcc} is found, so a jar or build may lack it,
 * and the JVM runs without it. Nothing here runs at class initialization of the bindings: the generated
 * {@link IsthmusCuda} resolves each symbol on the first call of that function, through the class loader's
 * lookup, so <b>every caller must call {@link #require()} (or check {@link #isLoaded()}) before it calls any
 * {@code IsthmusCuda} function</b>. Otherwise the first call fails with a {@code NoSuchElementException} inside an
 * {@code ExceptionInInitializerError}, and that function stays unusable for the life of the JVM.
 *
 * <p>Where it looks, in order:
 * <ol>
 *   <li>{@code -Disthmus.cuda.library.path=/path/to/libisthmus_cuda.so} (or its folder): that file, or an error
 *       if it is not there;</li>
 *   <li>next to the CPU library named by {@code -Disthmus.library.path} (its folder, or the folder of the file it
 *       names);</li>
 *   <li>the resource {@code META-INF/native/<os>-<arch>/libisthmus_cuda.so} (next to {@code libisthmus.so} in the
 *       {@code isthmus-native} jar), extracted like the CPU library into a folder named by its checksum.</li>
 * </ol>
 * Before {@code System.load}, {@code isthmus_cuda_abi_version()} is read through an isolated lookup and must
 * equal {@link #EXPECTED_ABI}. Every failure (not found, not loadable because {@code libcudart} or another
 * dependency is missing, wrong ABI) is remembered and reported by {@link #unavailableReason()} and by the
 * {@link NativeLibraryException} of {@link #require()}: the attempt is not repeated.
 *
 * <p>Loading the library does not need a GPU or a driver: whether a device is usable is the library's answer
 * ({@code isthmus_cuda_device_count}), which {@code dev.isthmus.Device} reports.
 *
 * <pre>{@code
 * if (CudaLibrary.isLoaded()) ...;                  // normally done for you by dev.isthmus.Device
 * else System.out.println(CudaLibrary.unavailableReason());
 * }</pre>
 */
public final class CudaLibrary {
    /** The ABI version these bindings were generated for (ISTHMUS_CUDA_ABI_VERSION of isthmus_cuda.h). */
    public static final int EXPECTED_ABI = IsthmusCuda.ISTHMUS_CUDA_ABI_VERSION();
    /** System property naming the CUDA library file (or its folder). */
    public static final String PATH_PROPERTY = "isthmus.cuda.library.path";
    /** The file name of the CUDA library. */
    public static final String LIBRARY_FILE = "libisthmus_cuda.so";

    private static final System.Logger LOG = System.getLogger("dev.isthmus");

    /** The outcome of the one attempt: a path, or the reason there is none. */
    private record Outcome(Path path, String problem) {}

    private static volatile Outcome outcome;

    private CudaLibrary() {}

    /** True when the CUDA library is loaded (tries once, on the first call). Never throws. */
    public static boolean isLoaded() {
        return attempt().path != null;
    }

    /** The loaded library's path, or null when it is not available (tries once). */
    public static Path path() {
        return attempt().path;
    }

    /** Why the CUDA library is not available (tries once), or null when it is loaded. */
    public static String unavailableReason() {
        return attempt().problem;
    }

    /**
     * Loads the library if this JVM has not tried yet and returns its path.
     *
     * @throws NativeLibraryException saying why the library is not available (the same text every time)
     */
    public static Path require() {
        Outcome o = attempt();
        if (o.path == null) throw new NativeLibraryException(o.problem);
        return o.path;
    }

    private static Outcome attempt() {
        Outcome o = outcome;
        if (o != null) return o;
        synchronized (CudaLibrary.class) {
            if (outcome != null) return outcome;
            try {
                Path lib = locate();
                NativeLibrary.checkAbi(lib, "isthmus_cuda_abi_version", EXPECTED_ABI, "isthmus CUDA library");
                try {
                    System.load(lib.toString());
                } catch (UnsatisfiedLinkError e) {
                    throw new NativeLibraryException("isthmus: cannot load " + lib + ": " + e.getMessage(), e);
                }
                LOG.log(System.Logger.Level.INFO, "isthmus: loaded {0} (CUDA ABI {1})", lib, EXPECTED_ABI);
                outcome = new Outcome(lib, null);
            } catch (NativeLibraryException e) {
                LOG.log(System.Logger.Level.DEBUG, "isthmus: no CUDA library: {0}", e.getMessage());
                outcome = new Outcome(null, e.getMessage());
            } catch (RuntimeException | LinkageError e) {
                outcome = new Outcome(null, "isthmus: cannot load " + LIBRARY_FILE + ": " + e);
            }
            return outcome;
        }
    }

    static Path locate() {
        List<String> looked = new ArrayList<>();
        String own = System.getProperty(PATH_PROPERTY);
        if (own != null && !own.isBlank()) {
            Path p = Path.of(own);
            if (Files.isDirectory(p)) p = p.resolve(LIBRARY_FILE);
            if (!Files.isRegularFile(p))
                throw new NativeLibraryException("isthmus: -D" + PATH_PROPERTY + "=" + own
                        + " but no library file is there (expected " + p + ")");
            return p.toAbsolutePath();
        }
        String cpu = System.getProperty(NativeLibrary.PATH_PROPERTY);
        if (cpu != null && !cpu.isBlank()) {
            Path p = Path.of(cpu);
            Path dir = Files.isDirectory(p) ? p : p.toAbsolutePath().getParent();
            if (dir != null) {
                Path candidate = dir.resolve(LIBRARY_FILE);
                if (Files.isRegularFile(candidate)) return candidate.toAbsolutePath();
                looked.add(candidate + " (next to -D" + NativeLibrary.PATH_PROPERTY + ")");
            }
        }
        String resource = "META-INF/native/" + NativeLibrary.platform() + "/" + LIBRARY_FILE;
        ClassLoader cl = CudaLibrary.class.getClassLoader();
        URL url = cl == null ? ClassLoader.getSystemResource(resource) : cl.getResource(resource);
        if (url == null) {
            looked.add("the class path resource " + resource);
            throw new NativeLibraryException("isthmus: " + LIBRARY_FILE + " is not in this build/jar (looked at "
                    + String.join(" and ", looked) + "); the CUDA library is built only where nvcc is found. Put a jar "
                    + "that holds it on the class path, or point -D" + PATH_PROPERTY + " at a " + LIBRARY_FILE);
        }
        String dir = System.getProperty(NativeLibrary.EXTRACT_DIR_PROPERTY);
        Path base = dir != null ? Path.of(dir)
                : Path.of(System.getProperty("java.io.tmpdir"), "isthmus-" + System.getProperty("user.name", "user"));
        try (InputStream in = url.openStream()) {
            return NativeLibrary.extract(in.readAllBytes(), base, LIBRARY_FILE);
        } catch (IOException e) {
            throw new NativeLibraryException("isthmus: cannot read " + url + ": " + e.getMessage(), e);
        }
    }
}
