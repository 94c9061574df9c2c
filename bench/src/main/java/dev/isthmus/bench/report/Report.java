package dev.isthmus.bench.report;

import dev.isthmus.bench.Impl;
import dev.isthmus.bench.Shape;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/** Writes {@code <stem>.md}, {@code <stem>.json} and {@code <stem>.png} for one suite run. */
public final class Report {
    /** The baselines every row is compared with ("vs" columns). */
    static final List<Impl> BASELINES = List.of(Impl.ONEDNN, Impl.VECTOR_INT8, Impl.JLAMA_Q8Q4, Impl.JAVA_F32);

    /** A combination that was not run, and why. */
    public record Skip(Shape shape, Impl impl, String reason) {}

    /**
     * Everything about one run.
     *
     * @param command        the command line of this run
     * @param fullRunCommand the documented command for the whole suite
     * @param machine  label -> value, in display order
     * @param settings JMH settings in words ("forks 1, warmup 2 x 1 s, ...")
     * @param jmhJson  JMH's own JSON for all the runs (an array)
     */
    public record Suite(String date, String command, String fullRunCommand, int threads, String settings, Map<String, String> machine,
                        long l3Bytes, Ceilings ceilings, List<Row> rows, List<Skip> skipped, String jmhJson) {}

    private Report() {}

    /** Writes the three files; returns their paths (the PNG only when something could be plotted). */
    public static List<Path> write(Path dir, String stem, Suite s) throws IOException {
        Files.createDirectories(dir);
        List<Path> out = new ArrayList<>();
        Path png = dir.resolve(stem + ".png");
        String title = "y = x . W^T, N = K = 4096: GOP/s vs M  (" + s.machine().getOrDefault("CPU", "?") + ", "
                + s.threads() + " threads, " + s.date() + ")";
        boolean chart = Chart.write(png, s.rows(), s.ceilings(), title);
        Path md = dir.resolve(stem + ".md");
        Files.writeString(md, markdown(s, chart ? png.getFileName().toString() : null));
        out.add(md);
        Path json = dir.resolve(stem + ".json");
        Files.writeString(json, Json.write(json(s)));
        out.add(json);
        if (chart) out.add(png);
        return out;
    }

    // ------------------------------------------------------------------ formatting

    static String num(double v) {
        if (Double.isNaN(v) || Double.isInfinite(v)) return "—";
        double a = Math.abs(v);
        String f = a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : a >= 1 ? "%.2f" : "%.3f";
        return String.format(Locale.ROOT, f, v);
    }

    static String ratio(double v) {
        return Double.isNaN(v) || Double.isInfinite(v) ? "—" : String.format(Locale.ROOT, "%.2f×", v);
    }

    static String mib(double bytes) {
        return String.format(Locale.ROOT, "%.0f MiB", bytes / (1024 * 1024));
    }

    private static Map<String, Double> gopsByCombo(List<Row> rows) {
        Map<String, Double> m = new LinkedHashMap<>();
        for (Row r : rows) if (r.ok()) m.put(r.shape() + "|" + r.impl().id, r.gopsMedian());
        return m;
    }

    private static double vs(Map<String, Double> g, Row r, Impl base) {
        Double b = g.get(r.shape() + "|" + base.id);
        return b == null || !r.ok() ? Double.NaN : r.gopsMedian() / b;
    }

    // ------------------------------------------------------------------ markdown

    static String markdown(Suite s, String pngName) {
        StringBuilder md = new StringBuilder();
        md.append("# isthmus GEMM benchmark: ").append(s.machine().getOrDefault("CPU", "?")).append(", ").append(s.date()).append("\n\n");
        md.append("`y[M,N] = x[M,K] . W[N,K]^T`, JMH average time per call, converted to GOP/s = 2·M·N·K / time. ")
          .append("Every implementation runs on ").append(s.threads()).append(" threads and is checked against an f64 reference ")
          .append("on the same inputs before it is timed.\n\n");
        md.append("Command (this run, from the repository root):\n\n```\n").append(s.command()).append("\n```\n\n");
        md.append("The whole suite: `").append(s.fullRunCommand()).append("` (`--quick`: 1 × 0.5 s warmup, 3 × 0.5 s measurement; ")
          .append("`--shapes`, `--impls`, `--out DIR`, `--threads N`, `--list`).\n\n");

        md.append("## Machine\n\n");
        for (Map.Entry<String, String> e : s.machine().entrySet())
            md.append("- **").append(e.getKey()).append("**: ").append(e.getValue()).append('\n');
        md.append("- **JMH**: ").append(s.settings()).append("\n\n");

        md.append("## Ceilings (measured in this run, ").append(s.threads()).append(" threads)\n\n");
        Ceilings c = s.ceilings();
        if (c == null || !c.measured()) {
            md.append("Not measured: ").append(c == null ? "skipped" : c.missing()).append("\n\n");
        } else {
            md.append("| ceiling | value |\n|---|---|\n");
            md.append("| int8 MAC peak, AVX2 (vpmaddubsw + vpmaddwd + vpaddd, register-only, ").append(num(c.seconds())).append(" s) | ")
              .append(num(c.avx2Gops())).append(" GOP/s |\n");
            md.append("| int8 MAC peak, AVX-512 VNNI (vpdpbusd zmm, register-only) | ")
              .append(c.vnniGops() > 0 ? num(c.vnniGops()) + " GOP/s" : "— (no AVX-512 VNNI)").append(" |\n");
            md.append("| read bandwidth (").append(mib(c.bandwidthBytes())).append(" buffer, best of ").append(c.reps()).append(") | ")
              .append(num(c.readGbs())).append(" GB/s |\n");
            md.append("| int8 weight-streaming bound at M = 1 (2 ops per weight byte × BW) | ").append(num(c.int8StreamingBoundGops(1)))
              .append(" GOP/s |\n\n");
        }

        md.append("## Results\n\n");
        md.append("GOP/s at the median measurement iteration; ± is JMH's 99.9% confidence half-width of the mean time, in % ")
          .append("(with 3 to 5 iterations the t-quantile is 31.6 to 8.6, so it is wide: min–max, over the measurement iterations, ")
          .append("is the practical spread). Weight GB/s = weight bytes as stored (int8 N·K, q4 N·K/2, f32 4·N·K; ")
          .append("scales not counted) / time. Ratios: this row's GOP/s over the baseline's on the same shape.\n\n");
        md.append("| shape (MxNxK) | impl | GOP/s | ± | min–max GOP/s | µs/call | weight GB/s |");
        for (Impl b : BASELINES) md.append(" vs ").append(b.id).append(" |");
        md.append("\n|---|---|---:|---:|---:|---:|---:|");
        md.append("---:|".repeat(BASELINES.size())).append('\n');
        Map<String, Double> g = gopsByCombo(s.rows());
        for (Row r : s.rows()) {
            md.append("| ").append(r.shape()).append(" | ").append(r.impl().id).append(" | ");
            if (!r.ok()) {
                md.append("failed: ").append(r.failure() == null ? "no result" : r.failure().replace('|', '/').replace('\n', ' '))
                  .append(" | | | | |").append(" |".repeat(BASELINES.size())).append('\n');
                continue;
            }
            md.append("**").append(num(r.gopsMedian())).append("** | ")
              .append(Double.isNaN(r.errorPct()) ? "—" : String.format(Locale.ROOT, "%.1f%%", r.errorPct())).append(" | ")
              .append(num(r.gopsMin())).append("–").append(num(r.gopsMax())).append(" | ")
              .append(num(r.medianUs())).append(" | ")
              .append(num(r.weightGbs())).append(" |");
            for (Impl b : BASELINES) md.append(' ').append(ratio(vs(g, r, b))).append(" |");
            md.append('\n');
        }
        md.append('\n');
        if (pngName != null) md.append("![GOP/s against M](").append(pngName).append(")\n\n");

        if (!s.skipped().isEmpty()) {
            md.append("## Not run\n\n");
            Map<String, List<Skip>> byReason = s.skipped().stream().collect(Collectors.groupingBy(
                    k -> k.impl().id + "\u0000" + k.reason(), LinkedHashMap::new, Collectors.toList()));
            for (List<Skip> l : byReason.values())
                md.append("- **").append(l.get(0).impl().id).append("** (")
                  .append(l.stream().map(k -> k.shape().toString()).collect(Collectors.joining(", "))).append("): ")
                  .append(l.get(0).reason()).append('\n');
            md.append('\n');
        }

        md.append("## What each implementation computes\n\n");
        Set<Impl> seen = new LinkedHashSet<>();
        for (Row r : s.rows()) seen.add(r.impl());
        for (Impl i : seen) {
            md.append("- **").append(i.id).append("**: ").append(i.description);
            s.rows().stream().filter(r -> r.impl() == i && r.kernel() != null).findFirst()
                    .ifPresent(r -> md.append(". Ran as: ").append(r.kernel()));
            md.append('\n');
        }
        md.append('\n');

        md.append("## Notes\n\n");
        if (seen.contains(Impl.JLAMA_Q8Q4))
            md.append("- **jlama-q8q4 reads 4-bit weights** (half the bytes of int8, plus a scale per 32): Jlama has no int8 × int8 kernel, ")
              .append("so gemm_q8_q4 is its closest native kernel, not the same precision. Its published libjlama.so holds no AVX-512 ")
              .append("instruction: the HAS_AVX2 flag selects its *_512 functions, which run AVX2 code.\n");
        if (seen.contains(Impl.ONEDNN))
            md.append("- **onednn** computes u8 × s8 → s32 with no f32 dequantization epilogue (isthmus writes f32 with scales applied), ")
              .append("weights reordered once at creation into oneDNN's preferred layout.\n");
        if (seen.contains(Impl.ISTHMUS_FUSED))
            md.append("- **isthmus-fused** includes quantizing the f32 activations in every call; the other isthmus rows take ")
              .append("activations quantized beforehand.\n");
        if (seen.contains(Impl.VECTOR_INT8))
            md.append("- **vector-int8** widens the int8 activations to shorts in every call (M·K, small next to M·N·K).\n");
        if (seen.contains(Impl.JAVA_F32) || seen.contains(Impl.OPENBLAS_F32))
            md.append("- **java-f32** and **openblas-f32** multiply f32 weights (4 bytes each): a different precision and 4× the weight bytes.\n");
        md.append("- Cache: the int8 and Jlama implementations (and oneDNN) cycle through copies of W with their own memory, ")
          .append(String.format(Locale.ROOT, "together >= %d MB", dev.isthmus.bench.GemmBenchmark.ROTATE_BYTES >> 20))
          .append(s.l3Bytes() > 0 ? " (this CPU's L3: " + mib(s.l3Bytes()) + ")" : "")
          .append(", so each call streams its weights from memory as in a real model, never from a warm L3.\n");
        md.append("- Files: this report, `").append(pngName == null ? "(no chart)" : pngName).append("`, and the JSON next to it ")
          .append("(JMH's raw results under `jmh`, this table under `summary`).\n");
        return md.toString();
    }

    // ------------------------------------------------------------------ json

    static Map<String, Object> json(Suite s) {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("date", s.date());
        root.put("command", s.command());
        root.put("full_run_command", s.fullRunCommand());
        root.put("threads", s.threads());
        root.put("jmh_settings", s.settings());
        root.put("machine", new LinkedHashMap<>(s.machine()));
        Map<String, Object> c = new LinkedHashMap<>();
        Ceilings ce = s.ceilings();
        if (ce != null) {
            c.put("threads", ce.threads());
            c.put("missing", ce.missing());
            c.put("avx2_int8_peak_gops", ce.avx2Gops());
            c.put("vnni_int8_peak_gops", ce.vnniGops());
            c.put("read_bandwidth_gbs", ce.readGbs());
            c.put("read_bandwidth_buffer_bytes", ce.bandwidthBytes());
            c.put("peak_seconds", ce.seconds());
        }
        root.put("ceilings", c);
        Map<String, Double> g = gopsByCombo(s.rows());
        List<Object> summary = new ArrayList<>();
        for (Row r : s.rows()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("shape", r.shape().toString());
            m.put("m", r.shape().m());
            m.put("n", r.shape().n());
            m.put("k", r.shape().k());
            m.put("impl", r.impl().id);
            m.put("ok", r.ok());
            if (r.ok()) {
                m.put("gops_median", r.gopsMedian());
                m.put("gops_min", r.gopsMin());
                m.put("gops_max", r.gopsMax());
                m.put("us_median", r.medianUs());
                m.put("us_score", r.scoreUs());
                m.put("us_error_999", r.errorUs());
                m.put("us_iterations", r.iterationsUs());
                m.put("weight_bytes", r.weightBytes());
                m.put("weight_gbs", r.weightGbs());
                for (Impl b : BASELINES) m.put("vs_" + b.id.replace('-', '_'), vs(g, r, b));
            } else {
                m.put("failure", r.failure());
            }
            m.put("kernel", r.kernel());
            summary.add(m);
        }
        root.put("summary", summary);
        List<Object> skipped = new ArrayList<>();
        for (Skip k : s.skipped()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("shape", k.shape().toString());
            m.put("impl", k.impl().id);
            m.put("reason", k.reason());
            skipped.add(m);
        }
        root.put("skipped", skipped);
        root.put("jmh", Json.jmh(s.jmhJson()));
        return root;
    }
}
