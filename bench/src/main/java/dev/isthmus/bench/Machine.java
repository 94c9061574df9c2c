package dev.isthmus.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/** What /proc/cpuinfo and the JVM say about this machine. */
public final class Machine {
    private static String model;
    private static Set<String> flags;
    private static String coresPerSocket;

    private Machine() {}

    private static synchronized void read() {
        if (flags != null) return;
        model = System.getProperty("os.arch");
        flags = new TreeSet<>();
        try {
            List<String> lines = Files.readAllLines(Path.of("/proc/cpuinfo"));
            for (String line : lines) {
                int c = line.indexOf(':');
                if (c < 0) continue;
                String key = line.substring(0, c).trim(), val = line.substring(c + 1).trim();
                if (key.equals("model name") && model.equals(System.getProperty("os.arch"))) model = val;
                if (key.equals("flags") && flags.isEmpty()) flags.addAll(List.of(val.split("\\s+")));
                if (key.equals("cpu cores") && coresPerSocket == null) coresPerSocket = val;
            }
        } catch (IOException e) {
            // not Linux: keep the defaults
        }
    }

    /** "model name" of /proc/cpuinfo (os.arch elsewhere). */
    public static String cpuModel() {
        read();
        return model;
    }

    /** The CPU's flags that matter here: avx2, fma, avx512*, *vnni*, amx*. */
    public static List<String> simdFlags() {
        read();
        return flags.stream().filter(f -> f.equals("avx2") || f.equals("fma") || f.startsWith("avx512") || f.contains("vnni")
                || f.startsWith("amx")).toList();
    }

    public static boolean has(String flag) {
        read();
        return flags.contains(flag);
    }

    /** AVX-512 F + BW + VL + VNNI, as the isthmus AVX-512 variant needs. */
    public static boolean hasAvx512Vnni() {
        return has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512_vnni");
    }

    public static int logicalCpus() {
        return Runtime.getRuntime().availableProcessors();
    }

    /** "cpu cores" of /proc/cpuinfo (cores per socket), or null. */
    public static String coresPerSocket() {
        read();
        return coresPerSocket;
    }

    /**
     * The size in bytes of the level-{@code level} unified/data cache of cpu0 (from sysfs), or -1. For
     * L3 this is the slice this core shares, the bound on what a GEMM's weights can keep resident.
     */
    public static long cacheBytes(int level) {
        Path base = Path.of("/sys/devices/system/cpu/cpu0/cache");
        for (int i = 0; i < 8; i++) {
            Path d = base.resolve("index" + i);
            try {
                if (!Files.isDirectory(d)) break;
                if (Integer.parseInt(Files.readString(d.resolve("level")).trim()) != level) continue;
                if (Files.readString(d.resolve("type")).trim().equals("Instruction")) continue;
                String v = Files.readString(d.resolve("size")).trim().toUpperCase(Locale.ROOT);
                long mul = v.endsWith("K") ? 1024 : v.endsWith("M") ? 1024 * 1024 : 1;
                return Long.parseLong(v.replaceAll("[^0-9]", "")) * mul;
            } catch (IOException | NumberFormatException e) {
                return -1;
            }
        }
        return -1;
    }

    /** "amd-epyc", "intel-xeon-platinum-8375c": the model as a file-name slug. */
    public static String cpuSlug() {
        String s = cpuModel().toLowerCase(Locale.ROOT)
                .replaceAll("\\((r|tm)\\)", " ")
                .replaceAll("@.*$", " ")
                .replaceAll("\\b(cpu|processor|\\d+-core)\\b", " ")
                .replaceAll("[^a-z0-9]+", "-")
                .replaceAll("^-+|-+$", "");
        return s.isEmpty() ? "cpu" : s;
    }

    /** "25.0.1+8-LTS (Eclipse Adoptium OpenJDK 64-Bit Server VM)". */
    public static String jdk() {
        return Runtime.version() + " (" + System.getProperty("java.vendor") + " " + System.getProperty("java.vm.name") + ")";
    }
}
