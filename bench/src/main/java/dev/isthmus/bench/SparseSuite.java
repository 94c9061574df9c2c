package dev.isthmus.bench;

import dev.isthmus.Isthmus;
import dev.isthmus.bench.ffi.BenchShim;
import dev.isthmus.bench.kernels.SparseKernels;
import dev.isthmus.bench.report.Ceilings;
import dev.isthmus.bench.report.SparseReport;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.results.RunResult;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * <pre>
 * bench/run.sh --suite sparse [--quick] [--cases f32-csr-90-m1,...] [--impls isthmus-avx512,...] [--out DIR] [--threads N] [--list]
 * </pre>
 * Runs {@link SparseBenchmark} over every (workload, impl) pair in scope: the isthmus sparse variants on the sparse
 * workloads, and on the dense workloads of the same dtypes and shapes the baselines (OpenBLAS sgemm, and sgemv at
 * M = 1, for f32; the project's dense INT8 GEMM for int8). Writes {@code <out>/<date>-<cpu>-sparse.md / .json /
 * .jmh.log} with every median, spread and speedup, and the bars. {@code --quick} runs M = 1 at 90% (and
 * 2:4) with short iterations (about two minutes); the full suite takes about 20 minutes on 2 vCPUs.
 */
public final class SparseSuite {
    static final String QUICK_CASES = "f32-dense-0-m1,s8-dense-0-m1,f32-csr-90-m1,s8-csr-90-m1,f32-24-50-m1,s8-24-50-m1";

    private SparseSuite() {}

    static String usage() {
        return "usage: bench/run.sh --suite sparse [--quick] [--cases W,...] [--impls a,b,...] [--out DIR] [--threads N] [--list]\n"
                + "  cases (DTYPE-FORMAT-SPARSITY-mM[-nN-kK]): " + String.join(", ", defaultCases()) + "\n"
                + "  impls: " + Arrays.stream(SparseImpl.values()).map(i -> i.id).collect(Collectors.joining(", "));
    }

    static List<String> defaultCases() {
        try {
            return List.of(SparseBenchmark.class.getField("workload").getAnnotation(Param.class).value());
        } catch (NoSuchFieldException e) {
            throw new IllegalStateException(e);
        }
    }

    record Args(boolean quick, boolean list, List<SparseCase> cases, List<SparseImpl> impls, Path out, int threads) {}

    static Args parse(String[] argv) {
        SuiteArgs p = SuiteArgs.parse(argv, "--cases", SparseSuite::usage);
        List<SparseCase> cases = (p.cases() != null ? p.cases() : p.quick() ? SuiteArgs.split(QUICK_CASES) : defaultCases())
                .stream().map(SparseCase::parse).toList();
        List<SparseImpl> impls = p.impls() != null ? p.impls().stream().map(SparseImpl::of).toList() : List.of(SparseImpl.values());
        return new Args(p.quick(), p.list(), cases, impls, p.out(), p.threads());
    }

    static void run(String[] argv, String[] args) throws Exception {
        Args a;
        try {
            a = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("BenchSuite --suite sparse: " + e.getMessage());
            System.err.println(usage());
            System.exit(2);
            return;
        }
        System.setProperty(GemmBenchmark.THREADS_PROPERTY, Integer.toString(a.threads()));
        System.setProperty(BenchShim.PATH_PROPERTY, BenchShim.configuredPath().toString());

        List<SparseReport.Row> planned = new ArrayList<>();
        List<String> skipped = new ArrayList<>();
        for (SparseCase c : a.cases())
            for (SparseImpl i : a.impls()) {
                if (i.scope(c) != null) continue; // by design, not a skip
                String why = SparseKernels.skipReason(i, c);
                if (why == null) planned.add(new SparseReport.Row(c, i, null));
                else skipped.add(i.id + " on " + c + ": " + why);
            }
        Map<String, String> machine = machine(a.threads());
        System.out.println("isthmus sparse bench: " + planned.size() + " runs on " + a.threads() + " threads, "
                + (a.quick() ? "quick" : "full") + " settings");
        machine.forEach((k, v) -> System.out.println("  " + k + ": " + v));
        skipped.forEach(s -> System.out.println("skipped: " + s));
        if (a.list()) {
            planned.forEach(r -> System.out.println("would run: " + r.workload() + " " + r.impl().id));
            return;
        }

        long bwBytes = a.quick() ? 256L << 20 : 1L << 30;
        Ceilings ceilings = Ceilings.measureBandwidth(a.threads(), bwBytes, a.quick() ? 3 : 5);
        if (ceilings.measured())
            System.out.printf(Locale.ROOT, "read bandwidth (%d threads, %d MiB, best of %d): %.1f GB/s%n", a.threads(),
                    bwBytes >> 20, ceilings.reps(), ceilings.readGbs());

        JmhRun.Settings settings = JmhRun.Settings.of(a.quick(), BenchSuite.forkArgs(a.threads()));
        String date = LocalDate.now().toString();
        Files.createDirectories(a.out());
        String stem = BenchSuite.stem(a.out(), date + "-" + Machine.cpuSlug() + "-sparse");
        Path log = a.out().resolve(stem + ".jmh.log");
        Files.deleteIfExists(log);
        List<SparseReport.Row> rows = new ArrayList<>();
        List<RunResult> raw = new ArrayList<>();
        int n = 0;
        for (SparseReport.Row p : planned) {
            n++;
            System.out.printf(Locale.ROOT, "[%d/%d] %-20s %-16s ", n, planned.size(), p.workload(), p.impl().id);
            System.out.flush();
            long t0 = System.nanoTime();
            Map<String, String> params = new LinkedHashMap<>();
            params.put("workload", p.workload().toString());
            params.put("impl", p.impl().id);
            JmhRun.Result r = JmhRun.run(SparseBenchmark.class, "matmul", params, settings, log, p.workload() + " " + p.impl().id);
            if (r.raw() != null) raw.add(r.raw());
            rows.add(new SparseReport.Row(p.workload(), p.impl(), r));
            double secs = (System.nanoTime() - t0) / 1e9;
            if (r.ok())
                System.out.printf(Locale.ROOT, "%10s µs  (%s–%s)  [%.0f s]%n", BenchSuite.fmt(r.medianUs()), BenchSuite.fmt(r.minUs()),
                        BenchSuite.fmt(r.maxUs()), secs);
            else
                System.out.printf(Locale.ROOT, "FAILED: %s  [%.0f s]%n", r.failure(), secs);
        }
        SparseReport.Suite suite = new SparseReport.Suite(date, BenchSuite.commandLine(argv), a.threads(), settings.describe(), machine,
                SparseBenchmark.ROTATE_MIB, ceilings, rows, skipped, BenchSuite.jmhJson(raw));
        List<Path> files = SparseReport.write(a.out(), stem, suite);
        System.out.println("\nwrote:");
        for (Path f : files) System.out.println("  " + f);
        System.out.println("  " + log + " (JMH's output per run)");
        System.out.println("\n" + Files.readString(files.get(0)).lines().filter(l -> l.startsWith("|")).collect(Collectors.joining("\n")));
    }

    /** The GEMM suite's machine description, with the sparse kernels and without the baselines this suite does not run. */
    static Map<String, String> machine(int threads) {
        Map<String, String> m = BenchSuite.machine(threads);
        m.remove("oneDNN");
        m.remove("Jlama");
        m.remove("Vector API");
        m.remove("bench shim");
        try {
            m.put("isthmus sparse kernels", Isthmus.kernels().stream().filter(k -> k.op().startsWith("spmm"))
                    .map(k -> k.name() + (k.available() ? "" : " (not on this CPU)")).collect(Collectors.joining(", ")));
        } catch (Throwable t) {
            m.put("isthmus sparse kernels", "unknown: " + t);
        }
        return m;
    }
}
