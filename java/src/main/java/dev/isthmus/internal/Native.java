package dev.isthmus.internal;

import dev.isthmus.IsthmusException;
import dev.isthmus.bindings.Isthmus;
import dev.isthmus.loader.NativeLibrary;

/** Loads the library before any binding is touched and turns native statuses into exceptions. */
public final class Native {
    private Native() {}

    /** -Disthmus.isa=ref|avx2|avx512 caps the kernels' ISA at load (like ISTHMUS_ISA in the environment). */
    public static final String ISA_PROPERTY = "isthmus.isa";

    static {
        NativeLibrary.load();
        String cap = System.getProperty(ISA_PROPERTY);
        if (cap != null && !cap.isBlank()) {
            int code = switch (cap.trim().toLowerCase(java.util.Locale.ROOT)) {
                case "ref" -> Isthmus.ISTHMUS_ISA_REF();
                case "avx2" -> Isthmus.ISTHMUS_ISA_AVX2();
                case "avx512" -> Isthmus.ISTHMUS_ISA_AVX512();
                default -> throw new IllegalArgumentException("-D" + ISA_PROPERTY + "=" + cap
                        + ": must be ref, avx2 or avx512");
            };
            check(Isthmus.isthmus_set_isa_cap(code), "-D" + ISA_PROPERTY);
        }
    }

    /** Makes sure libisthmus is loaded (class initialization does it once). */
    public static void ensureLoaded() {
        // the static initializer has run when this returns
    }

    /**
     * Like {@link #check}, but a native refusal of the caller's data (an invalid-argument status whose
     * message contains one of {@code dataMarkers}, e.g. "not finite" or "-128") is the caller's bad input:
     * an {@link IllegalArgumentException} naming {@code argument}, as the Java-side checks throw.
     */
    public static void checkInput(int status, String operation, String argument, String... dataMarkers) {
        if (status == Isthmus.ISTHMUS_OK()) return;
        String msg = Isthmus.isthmus_last_error().getString(0);
        if (status == Isthmus.ISTHMUS_ERR_INVALID_ARGUMENT())
            for (String marker : dataMarkers)
                if (msg.contains(marker)) throw new IllegalArgumentException(argument + ": " + msg);
        throw new IsthmusException(operation, status, msg);
    }

    /** Throws {@link IsthmusException} with the native message unless {@code status} is ISTHMUS_OK. */
    public static void check(int status, String operation) {
        if (status != Isthmus.ISTHMUS_OK()) {
            String msg = Isthmus.isthmus_last_error().getString(0);
            throw new IsthmusException(operation, status, msg);
        }
    }
}
