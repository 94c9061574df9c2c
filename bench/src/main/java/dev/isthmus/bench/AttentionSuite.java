package dev.isthmus.bench;

import dev.isthmus.Isthmus;
import dev.isthmus.bench.ffi.BenchShim;
import dev.isthmus.bench.kernels.VectorAttention;
import dev.isthmus.bench.report.AttentionReport;
import dev.isthmus.bench.report.AttentionRow;
import dev.isthmus.bench.report.Ceilings;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.results.RunResult;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * <pre>
 * /usr/lib/jvm/temurin-25-jdk-amd64/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Disthmus.bench.lib=native/target/cmake/bench/libisthmus_bench.so -jar bench/target/benchmarks.jar --suite attention [--quick]
 * </pre>
 *
 * (from the repository root, after {@code mvn -B install -DskipTests}; {@code bench/run.sh --suite attention}
 * does both). Runs {@link AttentionBenchmark} over every (case, impl) combination this machine supports,
 * measures the read bandwidth in the same run, and writes {@code <out>/<yyyy-MM-dd>-<cpu>-attention.md /
 * .json / .png} (and {@code .jmh.log}). The decode cases' caches need up to 2 GiB of native memory (32K
 * tokens x 8 sequences, f32) besides the JVM heap.
 *
 * <p>Options (after {@code --suite attention}):
 * <ul>
 *   <li>{@code --quick}: a smoke test of about a minute: the best isthmus variant and the Vector API on
 *       {@value #QUICK_CASES}; warmup 1 x 0.5 s, measurement 3 x 0.5 s, a shorter bandwidth measurement
 *       (default: every case and impl, 2 x 1 s, 5 x 1 s; about 12 minutes on 2 vCPUs);</li>
 *   <li>{@code --cases decode-4096-b8-f16,prefill-512-b1-f32}: only these cases (default: AttentionBenchmark's @Param list);</li>
 *   <li>{@code --impls isthmus-avx512,vector-f32}: only these implementations;</li>
 *   <li>{@code --out DIR}, {@code --threads N}, {@code --list}: as for the GEMM suite.</li>
 * </ul>
 * {@code -Disthmus.bench.attention.rotate=BYTES} (default 256 MiB; 0 turns it off) sets how many bytes of
 * K/V decode cycles through (see {@link dev.isthmus.bench.kernels.IsthmusAttention}).
 */
public final class AttentionSuite {
    public static final String COMMAND = BenchSuite.COMMAND.replace(" [--quick]", " --suite attention [--quick]");
    static final String QUICK_CASES = "decode-4096-b1-f32,decode-4096-b1-f16,decode-4096-b1-bf16,decode-4096-b1-int8,"
            + "decode-32768-b1-f16,decode-32768-b1-int8,prefill-512-b1-f32";

    private record Combo(AttentionCase workload, AttentionImpl impl) {}

    private static final class Args {
        boolean quick, list;
        List<AttentionCase> cases;
        List<AttentionImpl> impls;
        Path out = Path.of("bench/results");
        int threads = Runtime.getRuntime().availableProcessors();
    }

    private AttentionSuite() {}

    /** @param argv the whole command line (for the report), {@code args} the options after {@code --suite attention} was taken out */
    static void run(String[] argv, String[] args) throws Exception {
        Args a;
        try {
            a = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("BenchSuite --suite attention: " + e.getMessage());
            System.err.println(usage());
            System.exit(2);
            return;
        }
        System.setProperty(GemmBenchmark.THREADS_PROPERTY, Integer.toString(a.threads));
        System.setProperty(BenchShim.PATH_PROPERTY, BenchShim.configuredPath().toString());

        // ------------------------------------------------------------ what runs
        List<Combo> run = new ArrayList<>();
        List<AttentionReport.Skip> skipped = new ArrayList<>();
        for (AttentionCase c : a.cases)
            for (AttentionImpl i : a.impls) {
                String why = Availability.skipReason(i, c);
                if (why == null) run.add(new Combo(c, i));
                else if (!(i == AttentionImpl.VECTOR_F32 && (c.decode() || !c.kv().equals("f32") || c.batch() != 1)))
                    skipped.add(new AttentionReport.Skip(c, i, why)); // the baseline's scope is by design, not a skip
            }
        Map<String, String> machine = machine(a.threads);
        System.out.println("isthmus attention bench: " + run.size() + " runs on " + a.threads + " threads, " + (a.quick ? "quick" : "full") + " settings");
        machine.forEach((k, v) -> System.out.println("  " + k + ": " + v));
        for (AttentionReport.Skip k : skipped) System.out.println(k.impl().id + " skipped (" + k.workload() + "): " + k.reason());
        if (a.list) {
            for (Combo c : run) System.out.println("would run: " + c.workload() + " " + c.impl().id);
            return;
        }

        // ------------------------------------------------------------ the ceiling first, on a quiet machine
        long bwBytes = a.quick ? 256L << 20 : 1L << 30;
        Ceilings ceilings = Ceilings.measureBandwidth(a.threads, bwBytes, a.quick ? 3 : 5);
        if (ceilings.measured())
            System.out.printf(Locale.ROOT, "read bandwidth (%d threads, %d MiB, best of %d): %.1f GB/s%n", a.threads, bwBytes >> 20,
                    ceilings.reps(), ceilings.readGbs());
        else
            System.out.println("read bandwidth not measured: " + ceilings.missing());

        // ------------------------------------------------------------ JMH, one fork per combination
        JmhRun.Settings settings = JmhRun.Settings.of(a.quick, forkArgs(a.threads));
        String date = LocalDate.now().toString();
        String stem = BenchSuite.stem(a.out, date + "-" + Machine.cpuSlug() + "-attention");
        Files.createDirectories(a.out);
        Path log = a.out.resolve(stem + ".jmh.log");
        Files.deleteIfExists(log);

        List<AttentionRow> rows = new ArrayList<>();
        List<RunResult> all = new ArrayList<>();
        int n = 0;
        for (Combo c : run) {
            n++;
            System.out.printf(Locale.ROOT, "[%d/%d] %-21s %-15s ", n, run.size(), c.workload(), c.impl().id);
            System.out.flush();
            long t0 = System.nanoTime();
            JmhRun.Result r = JmhRun.run(AttentionBenchmark.class, "attention",
                    Map.of("workload", c.workload().toString(), "impl", c.impl().id), settings, log, c.workload() + " " + c.impl().id);
            if (r.raw() != null) all.add(r.raw());
            AttentionRow row = r.ok() ? new AttentionRow(c.workload(), c.impl(), r.iterationsUs(), r.scoreUs(), r.errorUs(), r.describe(), null)
                    : AttentionRow.failed(c.workload(), c.impl(), r.failure());
            rows.add(row);
            double secs = (System.nanoTime() - t0) / 1e9;
            if (!row.ok())
                System.out.printf(Locale.ROOT, "FAILED: %s  [%.0f s]%n", row.failure(), secs);
            else if (c.workload().decode())
                System.out.printf(Locale.ROOT, "%8.1f GB/s%s  (%s µs/call, ±%.1f%%)  [%.0f s]%n", row.gbsMedian(),
                        ceilings.measured() ? String.format(Locale.ROOT, " = %3.0f%% of BW", 100 * row.gbsMedian() / ceilings.readGbs()) : "",
                        BenchSuite.fmt(row.medianUs()), row.errorPct(), secs);
            else
                System.out.printf(Locale.ROOT, "%8.1f GFLOP/s  (%s µs/call, ±%.1f%%)  [%.0f s]%n", row.gflopsMedian(),
                        BenchSuite.fmt(row.medianUs()), row.errorPct(), secs);
        }

        // ------------------------------------------------------------ report
        AttentionReport.Suite suite = new AttentionReport.Suite(date, BenchSuite.commandLine(argv), COMMAND, a.threads, settings.describe(), machine,
                Machine.cacheBytes(3), AttentionBenchmark.rotateBytes(), ceilings, rows, skipped, BenchSuite.jmhJson(all));
        List<Path> files = AttentionReport.write(a.out, stem, suite);
        System.out.println("\nwrote:");
        for (Path p : files) System.out.println("  " + p);
        System.out.println("  " + log + " (JMH's output per run)");
        System.out.println("\n" + Files.readString(files.get(0)).lines()
                .filter(l -> l.startsWith("|")).collect(Collectors.joining("\n")));
    }

    // ------------------------------------------------------------------ arguments

    static String usage() {
        return "usage: " + COMMAND.replace(" [--quick]", "")
                + " [--quick] [--cases CASE,...] [--impls a,b,...] [--out DIR] [--threads N] [--list]\n"
                + "  cases: " + String.join(", ", defaultCases()) + "\n"
                + "         (any (decode|prefill)-CONTEXT-bBATCH-(f32|f16|bf16|int8))\n"
                + "  quick: " + QUICK_CASES.replace(",", ", ") + "\n"
                + "  impls: " + Arrays.stream(AttentionImpl.values()).map(i -> i.id).collect(Collectors.joining(", "));
    }

    static List<String> defaultCases() {
        try {
            return List.of(AttentionBenchmark.class.getField("workload").getAnnotation(Param.class).value());
        } catch (NoSuchFieldException e) {
            throw new IllegalStateException(e);
        }
    }

    static Args parse(String[] argv) {
        SuiteArgs p = SuiteArgs.parse(argv, "--cases", AttentionSuite::usage);
        Args a = new Args();
        a.quick = p.quick();
        a.list = p.list();
        a.out = p.out();
        a.threads = p.threads();
        if (p.cases() != null) a.cases = p.cases().stream().map(AttentionCase::parse).toList();
        if (p.impls() != null) a.impls = p.impls().stream().map(AttentionImpl::of).toList();
        if (a.cases == null) a.cases = (a.quick ? SuiteArgs.split(QUICK_CASES) : defaultCases()).stream().map(AttentionCase::parse).toList();
        if (a.impls == null) {
            a.impls = List.of(AttentionImpl.values());
            if (a.quick) { // the best isthmus variant here, and the baseline
                AttentionImpl best = Availability.skipReason(AttentionImpl.ISTHMUS_AVX512, a.cases.get(0)) == null
                        ? AttentionImpl.ISTHMUS_AVX512 : AttentionImpl.ISTHMUS_AVX2;
                a.impls = List.of(best, AttentionImpl.VECTOR_F32);
            }
        }
        return a;
    }


    // ------------------------------------------------------------------ forks and machine

    /** The GEMM suite's fork arguments, plus the rotation property when set. */
    static List<String> forkArgs(int threads) {
        List<String> args = new ArrayList<>(BenchSuite.forkArgs(threads));
        String rotate = System.getProperty(AttentionBenchmark.ROTATE_PROPERTY);
        if (rotate != null) args.add("-D" + AttentionBenchmark.ROTATE_PROPERTY + "=" + rotate);
        return args;
    }

    /** The GEMM suite's machine description without the GEMM baselines, with the attention kernels and the float species. */
    static Map<String, String> machine(int threads) {
        Map<String, String> m = BenchSuite.machine(threads);
        m.remove("oneDNN");
        m.remove("OpenBLAS");
        m.remove("Jlama");
        try {
            String kernels = Isthmus.kernels().stream().filter(k -> k.op().contains("attention"))
                    .map(k -> k.name() + (k.available() ? "" : " (not on this CPU)")).collect(Collectors.joining(", "));
            m.put("isthmus attention kernels", kernels.isEmpty() ? "none listed by Isthmus.kernels()" : kernels);
        } catch (Throwable t) {
            m.put("isthmus attention kernels", "unknown: " + t);
        }
        if (m.containsKey("Vector API") && ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent())
            m.put("Vector API", "jdk.incubator.vector, " + VectorAttention.species());
        return m;
    }
}
