package dev.isthmus.bench.report;

import dev.isthmus.bench.JmhRun;
import dev.isthmus.bench.SparseCase;
import dev.isthmus.bench.SparseImpl;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The sparse suite's report: markdown (tables, bars, what ran) and JSON (every iteration, JMH's raw results). */
public final class SparseReport {
    private SparseReport() {}

    /** One (workload, impl) run; result is null while only planned. */
    public record Row(SparseCase workload, SparseImpl impl, JmhRun.Result result) {
        boolean ok() {
            return result != null && result.ok();
        }

        /** Bytes of weights one call reads, from the kernel's description ("N B of weights per call; ..."), or -1. */
        long weightBytes() {
            if (result == null || result.describe() == null) return -1;
            Matcher m = BYTES.matcher(result.describe());
            return m.lookingAt() ? Long.parseLong(m.group(1)) : -1;
        }
    }

    private static final Pattern BYTES = Pattern.compile("(\\d+) B of weights per call");

    public record Suite(String date, String command, int threads, String settings, Map<String, String> machine, int rotateMib,
                        Ceilings ceilings, List<Row> rows, List<String> skipped, String jmhJson) {}

    /** The bars: workload, baseline kind, minimum speedup. */
    record Bar(String workload, String against, double min) {}

    static final List<Bar> BARS = List.of(
            new Bar("f32-csr-90-m1", "f32", 4), new Bar("f32-csr-90-m128", "f32", 4),
            new Bar("f32-csr-70-m1", "f32", 2), new Bar("f32-csr-70-m128", "f32", 2),
            new Bar("s8-csr-90-m1", "s8", 2));

    /** The fastest dense baseline run of the same dtype and shape (both OpenBLAS entries for f32). */
    static Row baseline(List<Row> rows, SparseCase c) {
        Row best = null;
        for (Row r : rows)
            if (r.ok() && r.workload().equals(c.baseline()) && (best == null || r.result().medianUs() < best.result().medianUs())) best = r;
        return best;
    }

    static Row find(List<Row> rows, SparseCase c, SparseImpl i) {
        for (Row r : rows) if (r.ok() && r.workload().equals(c) && r.impl() == i) return r;
        return null;
    }

    /** The best isthmus variant's run of a workload (the widest ISA that ran). */
    static Row bestIsthmus(List<Row> rows, SparseCase c) {
        Row r = find(rows, c, SparseImpl.ISTHMUS_AVX512);
        return r != null ? r : find(rows, c, SparseImpl.ISTHMUS_AVX2);
    }

    public static List<Path> write(Path dir, String stem, Suite s) throws IOException {
        Path md = dir.resolve(stem + ".md"), json = dir.resolve(stem + ".json");
        Files.writeString(md, markdown(s));
        Files.writeString(json, json(s));
        return List.of(md, json);
    }

    static String f(double v) {
        if (Double.isNaN(v)) return "—";
        return v >= 100 ? String.format(Locale.ROOT, "%.0f", v) : v >= 10 ? String.format(Locale.ROOT, "%.1f", v)
                : String.format(Locale.ROOT, "%.2f", v);
    }

    static String markdown(Suite s) {
        StringBuilder b = new StringBuilder();
        b.append("# isthmus sparse matmul benchmark, ").append(s.date()).append("\n\n");
        b.append("`y[M,N] = x[M,K] . W[N,K]^T` with W pruned (magnitude per row for CSR, by block norm for BSR, 2:4 along K), "
                + "against the dense baselines of the same precision on the unpruned W: OpenBLAS `cblas_sgemm` and, at M = 1, "
                + "`cblas_sgemv` for f32 (the faster of the two is the baseline); the project's dense INT8 GEMM "
                + "(`isthmus_gemm_s8`, per-row scales, best ISA) for int8. Every kernel was checked against the f64 product of its "
                + "inputs before it was timed. Weights rotate over copies totalling more than ").append(s.rotateMib())
                .append(" MiB, so every call reads its weights from DRAM, not L3. Times are the median of the JMH measurement "
                        + "iterations (µs per call), with the min–max over iterations.\n\n");
        b.append("| machine | |\n|---|---|\n");
        s.machine().forEach((k, v) -> b.append("| ").append(k).append(" | ").append(v.replace("|", "\\|")).append(" |\n"));
        if (s.ceilings() != null && s.ceilings().measured())
            b.append(String.format(Locale.ROOT, "| read bandwidth (%d threads, best of %d) | %.1f GB/s |%n", s.threads(),
                    s.ceilings().reps(), s.ceilings().readGbs()));
        b.append("\nCommand: `").append(s.command()).append("`  \nSettings: ").append(s.settings()).append("\n\n");

        b.append("## Bars (the issue's)\n\n| bar | workload | impl | µs | baseline | baseline µs | speedup | needed | met |\n"
                + "|---|---|---|---:|---|---:|---:|---:|---|\n");
        for (Bar bar : BARS) {
            SparseCase c = SparseCase.parse(bar.workload());
            Row r = bestIsthmus(s.rows(), c), base = baseline(s.rows(), c);
            if (r == null || base == null) {
                b.append("| ").append(bar.workload()).append(" >= ").append(f(bar.min())).append("x | ").append(c)
                        .append(" | — | — | — | — | — | ").append(f(bar.min())).append("x | not run |\n");
                continue;
            }
            double sp = base.result().medianUs() / r.result().medianUs();
            b.append("| ").append(bar.workload()).append(" >= ").append(f(bar.min())).append("x | ").append(c).append(" | ")
                    .append(r.impl().id).append(" | ").append(f(r.result().medianUs())).append(" | ").append(base.impl().id)
                    .append(" | ").append(f(base.result().medianUs())).append(" | **").append(f(sp)).append("x** | ")
                    .append(f(bar.min())).append("x | ").append(sp >= bar.min() ? "yes" : "**no**").append(" |\n");
        }

        b.append("\n## Every run\n\n| workload | impl | median µs | min–max µs | ± (JMH 99.9%) | weights MB | weight GB/s | "
                + "vs best dense | vs sgemm |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Row r : s.rows()) {
            b.append("| ").append(r.workload()).append(" | ").append(r.impl().id).append(" | ");
            if (!r.ok()) {
                b.append("FAILED: ").append(r.result() == null ? "not run" : r.result().failure().replace("|", "\\|"))
                        .append(" | | | | | | |\n");
                continue;
            }
            JmhRun.Result x = r.result();
            long wb = r.weightBytes();
            double gbs = wb > 0 ? wb / (x.medianUs() * 1e3) : Double.NaN;
            Row base = r.workload().dense() ? null : baseline(s.rows(), r.workload());
            Row sgemm = r.workload().dense() || !r.workload().dtype().equals("f32") ? null
                    : find(s.rows(), r.workload().baseline(), SparseImpl.OPENBLAS_SGEMM);
            b.append("**").append(f(x.medianUs())).append("** | ").append(f(x.minUs())).append("–").append(f(x.maxUs())).append(" | ")
                    .append(String.format(Locale.ROOT, "%.1f%%", 100 * x.errorUs() / x.scoreUs())).append(" | ")
                    .append(wb > 0 ? f(wb / 1e6) : "—").append(" | ").append(f(gbs)).append(" | ")
                    .append(base == null ? "—" : f(base.result().medianUs() / x.medianUs()) + "×").append(" | ")
                    .append(sgemm == null ? "—" : f(sgemm.result().medianUs() / x.medianUs()) + "×").append(" |\n");
        }
        b.append("\n## What ran\n\n");
        for (Row r : s.rows())
            if (r.ok() && r.result().describe() != null)
                b.append("- ").append(r.workload()).append(" ").append(r.impl().id).append(": ").append(r.result().describe()).append('\n');
        if (!s.skipped().isEmpty()) {
            b.append("\n## Skipped\n\n");
            for (String k : s.skipped()) b.append("- ").append(k).append('\n');
        }
        return b.toString();
    }

    static String json(Suite s) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("date", s.date());
        o.put("command", s.command());
        o.put("threads", s.threads());
        o.put("settings", s.settings());
        o.put("machine", s.machine());
        o.put("rotate_mib", s.rotateMib());
        o.put("read_gbs", s.ceilings() == null ? Double.NaN : s.ceilings().readGbs());
        List<Object> rows = new ArrayList<>();
        for (Row r : s.rows()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("workload", r.workload().toString());
            m.put("impl", r.impl().id);
            if (r.ok()) {
                m.put("median_us", r.result().medianUs());
                m.put("min_us", r.result().minUs());
                m.put("max_us", r.result().maxUs());
                List<Object> its = new ArrayList<>();
                for (double v : r.result().iterationsUs()) its.add(v);
                m.put("iterations_us", its);
                m.put("weight_bytes", r.weightBytes());
                m.put("describe", r.result().describe());
                Row base = r.workload().dense() ? null : baseline(s.rows(), r.workload());
                if (base != null) {
                    m.put("baseline", base.impl().id);
                    m.put("speedup", base.result().medianUs() / r.result().medianUs());
                }
            } else {
                m.put("failure", r.result() == null ? "not run" : r.result().failure());
            }
            rows.add(m);
        }
        o.put("rows", rows);
        o.put("skipped", s.skipped());
        o.put("jmh", Json.jmh(s.jmhJson()));
        return Json.write(o);
    }
}
