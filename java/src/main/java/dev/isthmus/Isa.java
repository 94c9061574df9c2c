package dev.isthmus;

/** Kernel variants, in increasing order of capability (ISTHMUS_ISA_* of isthmus.h). */
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
