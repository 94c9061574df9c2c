package dev.isthmus;

import dev.isthmus.quant.QuantScheme;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Shared inputs for the Java tests: seeded random data and the ISA variants this CPU can run. */
final class TestSupport {
    private TestSupport() {}

    /** The ISA variants this build and CPU support (each test forces them through the cap). */
    static List<Isa> isas() {
        List<Isa> out = new ArrayList<>();
        for (Isa i : Isa.values()) if (i.compareTo(Isthmus.supportedIsa()) <= 0) out.add(i);
        return out;
    }

    static float[] randomFloats(Random r, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * scale);
        return a;
    }

    static byte[] randomInt8(Random r, int n, boolean allowMinus128) {
        byte[] a = new byte[n];
        for (int i = 0; i < n; i++) a[i] = (byte) (allowMinus128 ? r.nextInt(256) - 128 : r.nextInt(255) - 127);
        return a;
    }

    static final QuantScheme[] NATIVE_SCHEMES = {
        QuantScheme.int8PerRow(), QuantScheme.int8PerTensor(), QuantScheme.int8PerGroup(32),
        QuantScheme.int8PerGroup(64), QuantScheme.int8PerGroup(128), QuantScheme.int8PerGroup(256),
    };

    static final int[] SIZES = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129};
}
