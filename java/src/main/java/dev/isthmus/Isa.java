package dev.isthmus;

/**
 * Kernel variants, in increasing order of capability (ISTHMUS_ISA_* of isthmus.h).
 *
 * <pre>{@code
 * if (Isthmus.supportedIsa().compareTo(Isa.AVX512) < 0) System.out.println("no AVX-512 VNNI here");
 * Isthmus.setIsaCap(Isa.REF);   // run the reference kernels, e.g. to check a result
 * }</pre>
 */
public enum Isa {
    /** Portable scalar C: the reference every other variant is tested against. */
    REF,
    /** AVX2 + FMA. */
    AVX2,
    /** AVX-512 F + BW + VL + VNNI. */
    AVX512;

    /** The native code, ISTHMUS_ISA_*. */
    public int code() {
        return ordinal();
    }

    /** The variant of a native code. */
    public static Isa of(int code) {
        if (code < 0 || code >= values().length) throw new IllegalArgumentException("unknown ISA code " + code);
        return values()[code];
    }
}
