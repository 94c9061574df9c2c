package dev.isthmus.bench;

import dev.isthmus.Isthmus;
import dev.isthmus.bench.ffi.BenchShim;
import dev.isthmus.bench.ffi.JlamaNative;
import dev.isthmus.bench.ffi.OpenBlas;
import dev.isthmus.bench.kernels.VectorInt8Gemm;
import dev.isthmus.bench.report.Ceilings;
import dev.isthmus.bench.report.Report;
import dev.isthmus.bench.report.Row;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatFactory;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.module.ModuleFinder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * <pre>
 * /usr/lib/jvm/temurin-25-jdk-amd64/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Disthmus.bench.lib=native/target/cmake/bench/libisthmus_bench.so -jar bench/target/benchmarks.jar [--quick]
 * </pre>
 *
 * (from the repository root, after {@code mvn -B install -DskipTests}). Runs {@link GemmBenchmark} over
 * every (shape, impl) combination this machine supports, measures the machine's ceilings in the same run,
 * and writes {@code <out>/<yyyy-MM-dd>-<cpu>.md / .json / .png} (and {@code .jmh.log}, JMH's own output).
 *
 * <p>Any JDK 25 works; the forked benchmark JVMs use the same {@code java} as this runner. Options:
 * <ul>
 *   <li>{@code --suite gemm|attention}: which suite (default gemm, everything below); {@code attention} runs
 *       {@link AttentionBenchmark} instead, with its own options ({@link AttentionSuite});</li>
 *   <li>{@code --quick}: warmup 1 x 0.5 s, measurement 3 x 0.5 s, shorter ceilings (default: 2 x 1 s, 5 x 1 s);</li>
 *   <li>{@code --shapes 1x4096x4096,8x4096x4096}: only these shapes (default: GemmBenchmark's @Param list);</li>
 *   <li>{@code --impls isthmus-avx512,onednn}: only these implementations (default: all);</li>
 *   <li>{@code --out DIR}: where the report goes (default {@code bench/results});</li>
 *   <li>{@code --threads N}: threads of every implementation (default: the available processors);</li>
 *   <li>{@code --list}: print what would run and what is skipped, run nothing.</li>
 * </ul>
 * System properties: {@code -Disthmus.bench.lib} (the shim; default {@value BenchShim#DEFAULT_PATH}),
 * {@code -Disthmus.bench.openblas} (default {@value OpenBlas#DEFAULT_PATH}); {@code -Disthmus.library.path}
 * and {@code -Disthmus.extract.dir} pass through to the forks.
 */
public final class BenchSuite {
    /** The README command (printed into every report next to the command actually used). */
    public static final String COMMAND = "/usr/lib/jvm/temurin-25-jdk-amd64/bin/java --enable-native-access=ALL-UNNAMED "
            + "--add-modules jdk.incubator.vector -Disthmus.bench.lib=native/target/cmake/bench/libisthmus_bench.so "
            + "-jar bench/target/benchmarks.jar [--quick]";

    private record Combo(Shape shape, Impl impl) {}

    private static final class Args {
        boolean quick, list;
        List<Shape> shapes;
        List<Impl> impls;
        Path out = Path.of("bench/results");
        int threads = Runtime.getRuntime().availableProcessors();
    }

    private BenchSuite() {}

    public static void main(String[] argv) throws Exception {
        GemmBenchmark.quietIsthmusLog();
        String suite = "gemm";
        List<String> rest = new ArrayList<>();
        try {
            for (int i = 0; i < argv.length; i++) {
                if (argv[i].equals("--suite")) {
                    if (i + 1 >= argv.length) throw new IllegalArgumentException("--suite needs a value");
                    suite = argv[++i];
                } else if (argv[i].startsWith("--suite=")) {
                    suite = argv[i].substring("--suite=".length());
                } else {
                    rest.add(argv[i]);
                }
            }
            if (!suite.equals("gemm") && !suite.equals("attention") && !suite.equals("sparse"))
                throw new IllegalArgumentException("--suite " + suite + ": known suites are gemm (the default), attention and sparse");
        } catch (IllegalArgumentException e) {
            System.err.println("BenchSuite: " + e.getMessage());
            System.err.println(usage());
            System.exit(2);
            return;
        }
        if (suite.equals("attention")) AttentionSuite.run(argv, rest.toArray(String[]::new));
        else if (suite.equals("sparse")) SparseSuite.run(argv, rest.toArray(String[]::new));
        else gemm(argv, rest.toArray(String[]::new));
    }

    private static void gemm(String[] argv, String[] args) throws Exception {
        Args a;
        try {
            a = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("BenchSuite: " + e.getMessage());
            System.err.println(usage());
            System.exit(2);
            return;
        }
        System.setProperty(GemmBenchmark.THREADS_PROPERTY, Integer.toString(a.threads));
        System.setProperty(BenchShim.PATH_PROPERTY, BenchShim.configuredPath().toString());

        // ------------------------------------------------------------ what runs
        List<Combo> run = new ArrayList<>();
        List<Report.Skip> skipped = new ArrayList<>();
        for (Shape s : a.shapes)
            for (Impl i : a.impls) {
                String why = Availability.skipReason(i, s);
                if (why == null) run.add(new Combo(s, i));
                else skipped.add(new Report.Skip(s, i, why));
            }
        Map<String, String> machine = machine(a.threads);
        System.out.println("isthmus bench: " + run.size() + " runs on " + a.threads + " threads, " + (a.quick ? "quick" : "full") + " settings");
        machine.forEach((k, v) -> System.out.println("  " + k + ": " + v));
        printSkips(skipped);
        if (a.list) {
            for (Combo c : run) System.out.println("would run: " + c.shape() + " " + c.impl().id);
            return;
        }

        // ------------------------------------------------------------ ceilings first, on a quiet machine
        Ceilings ceilings = Ceilings.measure(a.threads, a.quick ? 0.3 : 1.0, a.quick ? 256L << 20 : 1L << 30, a.quick ? 3 : 5);
        if (ceilings.measured())
            System.out.printf(Locale.ROOT, "ceilings (%d threads): AVX2 int8 %.1f GOP/s, AVX-512 VNNI int8 %.1f GOP/s, read %.1f GB/s%n",
                    a.threads, ceilings.avx2Gops(), ceilings.vnniGops(), ceilings.readGbs());
        else
            System.out.println("ceilings not measured: " + ceilings.missing());

        // ------------------------------------------------------------ JMH, one fork per combination
        int warmIt = a.quick ? 1 : 2, measIt = a.quick ? 3 : 5;
        TimeValue warmT = a.quick ? TimeValue.milliseconds(500) : TimeValue.seconds(1);
        TimeValue measT = a.quick ? TimeValue.milliseconds(500) : TimeValue.seconds(1);
        String settings = "forks 1, warmup " + warmIt + " × " + warmT + ", measurement " + measIt + " × " + measT
                + ", mode average time, JMH " + jmhVersion() + "; forked JVM args: " + String.join(" ", forkArgs(a));
        String date = LocalDate.now().toString();
        String stem = stem(a.out, date + "-" + Machine.cpuSlug());
        Files.createDirectories(a.out);
        Path log = a.out.resolve(stem + ".jmh.log");
        Files.deleteIfExists(log);

        List<Row> rows = new ArrayList<>();
        List<RunResult> all = new ArrayList<>();
        int n = 0;
        for (Combo c : run) {
            n++;
            System.out.printf(Locale.ROOT, "[%d/%d] %-14s %-19s ", n, run.size(), c.shape(), c.impl().id);
            System.out.flush();
            Path comboLog = Files.createTempFile("isthmus-bench-", ".log");
            Path describe = Files.createTempFile("isthmus-bench-", ".txt");
            ChainedOptionsBuilder o = new OptionsBuilder()
                    .include("^" + Pattern.quote(GemmBenchmark.class.getName()) + "\\.gemm$")
                    .param("shape", c.shape().toString())
                    .param("impl", c.impl().id)
                    .forks(1)
                    .warmupIterations(warmIt).warmupTime(warmT)
                    .measurementIterations(measIt).measurementTime(measT)
                    .timeUnit(TimeUnit.MICROSECONDS)
                    .jvmArgs(forkArgs(a).toArray(String[]::new))
                    .jvmArgsAppend("-D" + GemmBenchmark.DESCRIBE_PROPERTY + "=" + describe)
                    .shouldFailOnError(true)
                    .verbosity(VerboseMode.NORMAL)
                    .output(comboLog.toString());
            long t0 = System.nanoTime();
            Row row;
            try {
                Collection<RunResult> res = new Runner(o.build()).run();
                row = res.isEmpty() ? Row.failed(c.shape(), c.impl(), "JMH returned no result") : row(c, res.iterator().next(), describe);
                all.addAll(res);
            } catch (RunnerException | RuntimeException e) {
                row = Row.failed(c.shape(), c.impl(), failure(e, comboLog));
            }
            String text = Files.exists(comboLog) ? Files.readString(comboLog) : "";
            Files.writeString(log, "\n######## " + c.shape() + " " + c.impl().id + "\n" + text, StandardCharsets.UTF_8,
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            Files.deleteIfExists(comboLog);
            Files.deleteIfExists(describe);
            rows.add(row);
            double secs = (System.nanoTime() - t0) / 1e9;
            if (row.ok())
                System.out.printf(Locale.ROOT, "%9.1f GOP/s  (%s µs/call, ±%.1f%%)  [%.0f s]%n", row.gopsMedian(),
                        fmt(row.medianUs()), row.errorPct(), secs);
            else
                System.out.printf(Locale.ROOT, "FAILED: %s  [%.0f s]%n", row.failure(), secs);
        }

        // ------------------------------------------------------------ report
        String jmhJson = jmhJson(all);
        Report.Suite suite = new Report.Suite(date, commandLine(argv), COMMAND, a.threads, settings, machine,
                Machine.cacheBytes(3), ceilings, rows, skipped, jmhJson);
        List<Path> files = Report.write(a.out, stem, suite);
        System.out.println("\nwrote:");
        for (Path p : files) System.out.println("  " + p);
        System.out.println("  " + log + " (JMH's output per run)");
        System.out.println("\n" + Files.readString(files.get(0)).lines()
                .filter(l -> l.startsWith("|")).collect(Collectors.joining("\n")));
    }

    // ------------------------------------------------------------------ arguments

    static String usage() {
        return "usage: " + COMMAND.replace(" [--quick]", "")
                + " [--suite gemm|attention] [--quick] [--shapes MxNxK,...] [--impls a,b,...] [--out DIR] [--threads N] [--list]\n"
                + "  shapes: " + String.join(", ", defaultShapes()) + "\n"
                + "  impls:  " + Arrays.stream(Impl.values()).map(i -> i.id).collect(Collectors.joining(", ")) + "\n"
                + "  --suite attention: see " + AttentionSuite.class.getSimpleName() + " (--suite attention --help)";
    }

    static List<String> defaultShapes() {
        try {
            return List.of(GemmBenchmark.class.getField("shape").getAnnotation(Param.class).value());
        } catch (NoSuchFieldException e) {
            throw new IllegalStateException(e);
        }
    }

    static Args parse(String[] argv) {
        SuiteArgs p = SuiteArgs.parse(argv, "--shapes", BenchSuite::usage);
        Args a = new Args();
        a.quick = p.quick();
        a.list = p.list();
        a.out = p.out();
        a.threads = p.threads();
        a.shapes = (p.cases() != null ? p.cases() : defaultShapes()).stream().map(Shape::parse).toList();
        a.impls = p.impls() != null ? p.impls().stream().map(Impl::of).toList() : List.of(Impl.values());
        return a;
    }

    // ------------------------------------------------------------------ forks

    /** The forked JVMs' arguments: native access, the Vector API, the shim, the threads, pass-through properties. */
    static List<String> forkArgs(Args a) {
        return forkArgs(a.threads);
    }

    static List<String> forkArgs(int threads) {
        List<String> args = new ArrayList<>(List.of("--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector",
                "-Djava.awt.headless=true",
                "-D" + BenchShim.PATH_PROPERTY + "=" + BenchShim.configuredPath(),
                "-D" + GemmBenchmark.THREADS_PROPERTY + "=" + threads));
        for (String p : List.of("isthmus.library.path", "isthmus.extract.dir", OpenBlas.PATH_PROPERTY, "java.io.tmpdir")) {
            String v = System.getProperty(p);
            if (v != null && (!p.equals("java.io.tmpdir") || ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
                    .anyMatch(x -> x.startsWith("-Djava.io.tmpdir="))))
                args.add("-D" + p + "=" + v);
        }
        // heap and GC settings given to the runner apply to the forks too
        for (String x : ManagementFactory.getRuntimeMXBean().getInputArguments())
            if (x.startsWith("-Xmx") || x.startsWith("-Xms") || x.startsWith("-XX:")) args.add(x);
        if (System.getProperty("isthmus.isa") != null)
            System.out.println("note: -Disthmus.isa is not passed to the forks (each isthmus-* impl forces its own variant)");
        return args;
    }

    private static Row row(Combo c, RunResult rr, Path describe) throws IOException {
        List<Double> its = new ArrayList<>();
        for (BenchmarkResult br : rr.getBenchmarkResults())
            for (IterationResult ir : br.getIterationResults()) its.add(ir.getPrimaryResult().getScore());
        var primary = rr.getPrimaryResult();
        String kernel = Files.exists(describe) ? Files.readString(describe).strip() : "";
        if (kernel.isEmpty()) kernel = null;
        return new Row(c.shape(), c.impl(), its.stream().mapToDouble(Double::doubleValue).toArray(), primary.getScore(),
                primary.getScoreError(), kernel, null);
    }

    /** The first line of the forked JVM's exception from the log, else the runner's exception. */
    static String failure(Exception e, Path log) {
        try {
            if (Files.exists(log)) {
                List<String> lines = Files.readAllLines(log);
                for (String l : lines) {
                    String t = l.strip();
                    if (t.contains("Exception: ") || t.contains("Error: ")) {
                        int c = t.indexOf(": ");
                        return t.substring(0, c).replaceAll(".*\\.", "") + ": " + t.substring(c + 2);
                    }
                }
            }
        } catch (IOException ignored) {
            // fall through
        }
        return e.getClass().getSimpleName() + ": " + e.getMessage();
    }

    static String jmhJson(List<RunResult> all) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (PrintStream ps = new PrintStream(bytes, true, StandardCharsets.UTF_8)) {
            ResultFormatFactory.getInstance(ResultFormatType.JSON, ps).writeOut(all);
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }

    static String jmhVersion() {
        String v = Runner.class.getPackage().getImplementationVersion();
        return v != null ? v : "1.37";
    }

    // ------------------------------------------------------------------ machine and files

    static Map<String, String> machine(int threads) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("CPU", Machine.cpuModel());
        String cores = Machine.logicalCpus() + " logical CPUs available to the JVM"
                + (Machine.coresPerSocket() != null ? " (cpuinfo: " + Machine.coresPerSocket() + " cores per socket)" : "");
        long l2 = Machine.cacheBytes(2), l3 = Machine.cacheBytes(3);
        if (l2 > 0 || l3 > 0) cores += "; L2 " + (l2 >> 10) + " KiB, L3 " + (l3 >> 20) + " MiB (cpu0, sysfs)";
        m.put("Cores", cores);
        m.put("Threads per implementation", Integer.toString(threads));
        m.put("SIMD flags", String.join(" ", Machine.simdFlags()));
        m.put("OS", System.getProperty("os.name") + " " + System.getProperty("os.version") + " " + System.getProperty("os.arch"));
        m.put("JDK", Machine.jdk() + "; forks run " + org.openjdk.jmh.util.Utils.getCurrentJvm());
        try {
            Isthmus.setThreads(threads);
            m.put("isthmus", Isthmus.describe());
        } catch (Throwable t) {
            m.put("isthmus", "does not load: " + t);
        }
        BenchShim shim = BenchShim.get();
        m.put("bench shim", shim == null ? BenchShim.unavailableReason() : shim.path().toString());
        m.put("oneDNN", shim == null ? "—" : shim.dnnlInfo());
        OpenBlas blas = OpenBlas.get();
        m.put("OpenBLAS", blas == null ? OpenBlas.unavailableReason() : blas.config() + " (" + blas.path() + ")");
        m.put("Jlama", JlamaNative.load() ? "jlama-native 0.8.4 linux-x86_64 (libjlama.so from the jar), gemm_q8_q4 flags "
                + JlamaNative.flags(Machine.has("avx512f")) : JlamaNative.unavailableReason());
        m.put("Vector API", ModuleFinder.ofSystem().find("jdk.incubator.vector").isEmpty() ? "absent"
                : vectorSpecies());
        return m;
    }

    /** The Vector API species (needs the module; the runner may have been started without it). */
    private static String vectorSpecies() {
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty())
            return "jdk.incubator.vector (preferred species known in the forks only: start the runner with --add-modules jdk.incubator.vector)";
        return "jdk.incubator.vector, " + VectorInt8Gemm.species();
    }

    private static void printSkips(List<Report.Skip> skipped) {
        Map<String, List<Report.Skip>> byReason = skipped.stream().collect(Collectors.groupingBy(
                k -> k.impl().id + "\u0000" + k.reason(), LinkedHashMap::new, Collectors.toList()));
        for (List<Report.Skip> l : byReason.values())
            System.out.println(l.get(0).impl().id + " skipped (" + l.stream().map(k -> k.shape().toString())
                    .collect(Collectors.joining(", ")) + "): " + l.get(0).reason());
    }

    /** date-cpu, or date-cpu-2, -3... when a report of that name is already there. */
    static String stem(Path dir, String base) {
        String s = base;
        for (int i = 2; Files.exists(dir.resolve(s + ".md")) || Files.exists(dir.resolve(s + ".json")); i++) s = base + "-" + i;
        return s;
    }

    /** The command that started this JVM, as one shell line. */
    static String commandLine(String[] argv) {
        List<String> parts = new ArrayList<>();
        parts.add(ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        parts.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
        String main = System.getProperty("sun.java.command", BenchSuite.class.getName());
        String first = main.split(" ", 2)[0];
        if (first.endsWith(".jar")) {
            parts.add("-jar");
            parts.add(first);
        } else {
            parts.add("-cp");
            parts.add(System.getProperty("java.class.path"));
            parts.add(first);
        }
        parts.addAll(List.of(argv));
        return parts.stream().map(p -> p.matches("[A-Za-z0-9_./=:,+@%-]+") ? p : "'" + p.replace("'", "'\\''") + "'")
                .collect(Collectors.joining(" "));
    }

    static String fmt(double v) {
        return v >= 100 ? String.format(Locale.ROOT, "%.0f", v) : String.format(Locale.ROOT, "%.1f", v);
    }
}
