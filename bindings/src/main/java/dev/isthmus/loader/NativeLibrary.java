package dev.isthmus.loader;

import dev.isthmus.bindings.Isthmus;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.net.URL;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Locale;

/**
 * Finds, extracts, checks and loads {@code libisthmus.so}, once per JVM.
 *
 * <ul>
 *   <li>{@code -Disthmus.library.path=/path/to/libisthmus.so} (or its folder) loads that file;</li>
 *   <li>otherwise the library packaged in the {@code isthmus-native} jar under
 *       {@code META-INF/native/<os>-<arch>/} is extracted into a folder named by its SHA-256
 *       ({@code <java.io.tmpdir>/isthmus-<user>/<sha>/}, or {@code -Disthmus.extract.dir}), reused
 *       when a file with the same checksum is there, under a file lock so that concurrent JVMs
 *       never see a half-written library;</li>
 *   <li>before {@code System.load}, the library's {@code isthmus_abi_version()} is read through an
 *       isolated lookup and must equal {@link #EXPECTED_ABI}: a stale library is refused with a
 *       message, never half-bound.</li>
 * </ul>
 * The path and the ISA variant chosen are logged (System.Logger "dev.isthmus", level INFO).
 *
 * <pre>{@code
 * Path lib = NativeLibrary.load();   // normally done for you by the dev.isthmus API
 * }</pre>
 */
public final class NativeLibrary {
    /** The ABI version these bindings were generated for (ISTHMUS_ABI_VERSION of isthmus.h). */
    public static final int EXPECTED_ABI = Isthmus.ISTHMUS_ABI_VERSION();
    public static final String PATH_PROPERTY = "isthmus.library.path";
    public static final String EXTRACT_DIR_PROPERTY = "isthmus.extract.dir";
    static final String LIBRARY_FILE = "libisthmus.so";

    private static final System.Logger LOG = System.getLogger("dev.isthmus");
    private static volatile Path loaded;
    private static final java.util.concurrent.ConcurrentHashMap<Path, Object> IN_JVM_LOCKS =
            new java.util.concurrent.ConcurrentHashMap<>();

    private NativeLibrary() {}

    /** Loads the library if this JVM has not yet; returns its path. Thread-safe and idempotent. */
    public static Path load() {
        Path p = loaded;
        if (p != null) return p;
        synchronized (NativeLibrary.class) {
            if (loaded != null) return loaded;
            Path lib = locate();
            checkAbi(lib);
            try {
                System.load(lib.toString());
            } catch (UnsatisfiedLinkError e) {
                throw new NativeLibraryException("isthmus: cannot load " + lib + ": " + e.getMessage(), e);
            }
            int isa = Isthmus.isthmus_isa();
            LOG.log(System.Logger.Level.INFO, "isthmus: loaded {0} (ABI {1}), ISA variant {2}, {3} threads",
                    lib, EXPECTED_ABI, Isthmus.isthmus_isa_name(isa).getString(0),
                    Isthmus.isthmus_get_num_threads());
            loaded = lib;
            return lib;
        }
    }

    /** The loaded library's path, or null before {@link #load()}. */
    public static Path path() {
        return loaded;
    }

    /** "linux-x86_64" and the like: the folder under META-INF/native/ for this JVM's platform. */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String o = os.contains("linux") ? "linux" : os.contains("mac") ? "macos" : os.contains("win") ? "windows" : os;
        String a = switch (arch) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64", "arm64" -> "aarch64";
            default -> arch;
        };
        return o + "-" + a;
    }

    static Path locate() {
        String override = System.getProperty(PATH_PROPERTY);
        if (override != null && !override.isBlank()) {
            Path p = Path.of(override);
            if (Files.isDirectory(p)) p = p.resolve(LIBRARY_FILE);
            if (!Files.isRegularFile(p))
                throw new NativeLibraryException("isthmus: -D" + PATH_PROPERTY + "=" + override
                        + " but no library file is there (expected " + p + ")");
            return p.toAbsolutePath();
        }
        String platform = platform();
        String resource = "META-INF/native/" + platform + "/" + LIBRARY_FILE;
        ClassLoader cl = NativeLibrary.class.getClassLoader();
        URL url = cl == null ? ClassLoader.getSystemResource(resource) : cl.getResource(resource);
        if (url == null)
            throw new NativeLibraryException("isthmus: no native library for this platform (" + platform
                    + "; os.name=" + System.getProperty("os.name") + ", os.arch=" + System.getProperty("os.arch")
                    + "): resource " + resource + " not found. isthmus ships linux-x86_64; put the "
                    + "isthmus-native jar on the class path, or point -D" + PATH_PROPERTY + " at a libisthmus.so");
        String dir = System.getProperty(EXTRACT_DIR_PROPERTY);
        Path base = dir != null ? Path.of(dir)
                : Path.of(System.getProperty("java.io.tmpdir"), "isthmus-" + System.getProperty("user.name", "user"));
        try (InputStream in = url.openStream()) {
            return extract(in.readAllBytes(), base);
        } catch (IOException e) {
            throw new NativeLibraryException("isthmus: cannot read " + url + ": " + e.getMessage(), e);
        }
    }

    /**
     * Writes {@code bytes} as {@code base/<sha256>/libisthmus.so}, or reuses the file already there when
     * its checksum matches. Concurrent callers (threads or JVMs) serialize on a lock file.
     */
    public static Path extract(byte[] bytes, Path base) {
        return extract(bytes, base, LIBRARY_FILE);
    }

    /** As {@link #extract(byte[], Path)}, writing {@code base/<sha256>/<fileName>} (the CUDA library uses it). */
    public static Path extract(byte[] bytes, Path base, String fileName) {
        String sha = sha256(bytes);
        Path dir = base.resolve(sha.substring(0, 16));
        Path lib = dir.resolve(fileName);
        try {
            Files.createDirectories(dir);
            // a file lock excludes other JVMs; threads of this JVM queue on the folder's monitor
            synchronized (IN_JVM_LOCKS.computeIfAbsent(dir.toAbsolutePath().normalize(), d -> new Object())) {
            try (FileChannel lockCh = FileChannel.open(dir.resolve(".lock"), StandardOpenOption.CREATE,
                    StandardOpenOption.WRITE);
                 FileLock ignored = lockCh.lock()) {
                if (Files.isRegularFile(lib) && sha.equals(sha256(Files.readAllBytes(lib)))) return lib;
                Path tmp = Files.createTempFile(dir, "libisthmus", ".tmp");
                Files.write(tmp, bytes);
                try {
                    Files.move(tmp, lib, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(tmp, lib, StandardCopyOption.REPLACE_EXISTING);
                }
                return lib;
            }
            }
        } catch (IOException e) {
            throw new NativeLibraryException("isthmus: cannot extract the native library into " + dir
                    + ": " + e.getMessage() + " (set -D" + EXTRACT_DIR_PROPERTY + " to a writable folder)", e);
        }
    }

    /**
     * Reads {@code isthmus_abi_version()} from the library at {@code lib} through an isolated lookup
     * (nothing is bound globally) and fails unless it equals {@link #EXPECTED_ABI}.
     */
    public static void checkAbi(Path lib) {
        checkAbi(lib, "isthmus_abi_version", EXPECTED_ABI, "isthmus library");
    }

    /**
     * Reads the int returned by the function {@code symbol} of the library at {@code lib} through an isolated
     * lookup and fails unless it equals {@code expected}. {@code what} names the library in messages.
     */
    static void checkAbi(Path lib, String symbol, int expected, String what) {
        int found;
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup lookup = SymbolLookup.libraryLookup(lib, arena);
            MemorySegment fn = lookup.find(symbol).orElseThrow(() -> new NativeLibraryException(
                    "isthmus: " + lib + " is not an " + what + " (no " + symbol + " symbol)"));
            found = (int) Linker.nativeLinker().downcallHandle(fn, FunctionDescriptor.of(ValueLayout.JAVA_INT))
                    .invokeExact();
        } catch (NativeLibraryException e) {
            throw e;
        } catch (IllegalArgumentException e) {
            throw new NativeLibraryException("isthmus: cannot open " + lib + ": " + e.getMessage(), e);
        } catch (Throwable t) {
            throw new NativeLibraryException("isthmus: cannot query the ABI version of " + lib + ": " + t, t);
        }
        if (found != expected)
            throw new NativeLibraryException("isthmus: ABI mismatch: " + lib + " has ABI version " + found
                    + " but these bindings need " + expected + "; the native library and the Java jars "
                    + "come from different isthmus versions");
    }

    static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
