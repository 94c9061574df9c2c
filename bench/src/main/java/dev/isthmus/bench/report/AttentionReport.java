package dev.isthmus.bench.report;

import dev.isthmus.bench.AttentionCase;
import dev.isthmus.bench.AttentionImpl;
import dev.isthmus.bench.kernels.IsthmusAttention;

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

import static dev.isthmus.bench.report.Report.mib;
import static dev.isthmus.bench.report.Report.num;
import static dev.isthmus.bench.report.Report.ratio;

/** Writes {@code <stem>.md}, {@code <stem>.json} and {@code <stem>.png} for one attention suite run. */
public final class AttentionReport {
    /** Decode K/V GB/s of f32 and f16 at 4K and 32K, as a fraction of the read bandwidth (issue 4). */
    public static final double DECODE_BW_BAR = 0.60;
    /** int8 K/V over f16 K/V at 32K, speedup (issue 4). */
    public static final double INT8_SPEEDUP_BAR = 1.6;
    /** isthmus prefill GFLOP/s over the Vector API's (issue 4). */
    public static final double PREFILL_BAR = 3.0;
    /** The prefill case the Vector API baseline runs (its f32 row is the reference of every prefill ratio). */
    static final String PREFILL_BASE = "prefill-512-b1-f32";

    /** A combination that was not run, and why. */
    public record Skip(AttentionCase workload, AttentionImpl impl, String reason) {}

    /** One bar of the issue, evaluated on this run: {@code value >= target}. */
    public record Bar(String bar, String impl, String subject, double value, double target, String unit) {
        public boolean met() {
            return value >= target;
        }
    }

    /**
     * Everything about one run (see {@link Report.Suite}).
     *
     * @param ceilings the read bandwidth measured in this run (the int8 peaks are not measured)
     */
    public record Suite(String date, String command, String fullRunCommand, int threads, String settings, Map<String, String> machine,
                        long l3Bytes, long rotateBytes, Ceilings ceilings, List<AttentionRow> rows, List<Skip> skipped, String jmhJson) {}

    private AttentionReport() {}

    public static List<Path> write(Path dir, String stem, Suite s) throws IOException {
        Files.createDirectories(dir);
        List<Path> out = new ArrayList<>();
        Path png = dir.resolve(stem + ".png");
        AttentionImpl chartImpl = s.rows().stream().anyMatch(r -> r.ok() && r.impl() == AttentionImpl.ISTHMUS_AVX512 && r.workload().decode())
                ? AttentionImpl.ISTHMUS_AVX512 : AttentionImpl.ISTHMUS_AVX2;
        String title = "Decode attention, " + chartImpl.id + ": K/V GB/s vs context  (" + s.machine().getOrDefault("CPU", "?") + ", "
                + s.threads() + " threads, " + s.date() + ")";
        boolean chart = AttentionChart.write(png, s.rows(), chartImpl, readGbs(s), title);
        Path md = dir.resolve(stem + ".md");
        Files.writeString(md, markdown(s, chart ? png.getFileName().toString() : null, chartImpl));
        out.add(md);
        Path json = dir.resolve(stem + ".json");
        Files.writeString(json, Json.write(json(s)));
        out.add(json);
        if (chart) out.add(png);
        return out;
    }

    // ------------------------------------------------------------------ derived numbers

    static double readGbs(Suite s) {
        return s.ceilings() != null && s.ceilings().measured() ? s.ceilings().readGbs() : Double.NaN;
    }

    private static AttentionRow find(List<AttentionRow> rows, String workload, AttentionImpl impl) {
        for (AttentionRow r : rows) if (r.ok() && r.impl() == impl && r.workload().toString().equals(workload)) return r;
        return null;
    }

    /** f16 µs over this row's µs, same context, batch and impl (decode); NaN when either is missing. */
    static double vsF16(List<AttentionRow> rows, AttentionRow r) {
        AttentionCase c = r.workload();
        AttentionRow f16 = find(rows, new AttentionCase(c.kind(), c.context(), c.batch(), "f16").toString(), r.impl());
        return f16 == null || !r.ok() ? Double.NaN : f16.medianUs() / r.medianUs();
    }

    /** GFLOP/s over the Vector API's on the f32 prefill case; NaN when either is missing. */
    static double vsVector(List<AttentionRow> rows, AttentionRow r) {
        AttentionRow base = find(rows, PREFILL_BASE, AttentionImpl.VECTOR_F32);
        return base == null || !r.ok() || r.workload().decode() ? Double.NaN : r.gflopsMedian() / base.gflopsMedian();
    }

    /** True for the cases the decode bandwidth bar covers: f32 and f16 K/V at 4K and 32K. */
    static boolean decodeBarCase(AttentionCase c) {
        return c.decode() && (c.context() == 4096 || c.context() == 32768) && (c.kv().equals("f32") || c.kv().equals("f16"));
    }

    /** The bars, per isthmus variant, for what this run measured. */
    public static List<Bar> bars(Suite s) {
        List<Bar> bars = new ArrayList<>();
        double bw = readGbs(s);
        for (AttentionImpl impl : List.of(AttentionImpl.ISTHMUS_AVX512, AttentionImpl.ISTHMUS_AVX2)) {
            for (AttentionRow r : s.rows())
                if (r.ok() && r.impl() == impl && decodeBarCase(r.workload()) && !Double.isNaN(bw))
                    bars.add(new Bar("decode K/V GB/s >= 60% of read bandwidth (f32/f16, 4K and 32K)", impl.id, r.workload().toString(),
                            r.gbsMedian() / bw, DECODE_BW_BAR, "fraction of read bandwidth"));
            for (int batch : new int[] {1, 8}) {
                AttentionRow f16 = find(s.rows(), "decode-32768-b" + batch + "-f16", impl);
                AttentionRow i8 = find(s.rows(), "decode-32768-b" + batch + "-int8", impl);
                if (f16 != null && i8 != null)
                    bars.add(new Bar("decode int8 K/V >= 1.6x faster than f16 K/V at 32K", impl.id, "decode-32768-b" + batch,
                            f16.medianUs() / i8.medianUs(), INT8_SPEEDUP_BAR, "speedup"));
            }
            AttentionRow pre = find(s.rows(), PREFILL_BASE, impl);
            if (pre != null && !Double.isNaN(vsVector(s.rows(), pre)))
                bars.add(new Bar("prefill GFLOP/s >= 3x the Vector API (f32, same JVM)", impl.id, PREFILL_BASE,
                        vsVector(s.rows(), pre), PREFILL_BAR, "ratio"));
        }
        return bars;
    }

    // ------------------------------------------------------------------ markdown

    private static String pct(double v) {
        return Double.isNaN(v) || Double.isInfinite(v) ? "—" : String.format(Locale.ROOT, "%.0f%%", 100 * v);
    }

    private static String errPct(AttentionRow r) {
        return Double.isNaN(r.errorPct()) ? "—" : String.format(Locale.ROOT, "%.1f%%", r.errorPct());
    }

    private static String failure(AttentionRow r) {
        return "failed: " + (r.failure() == null ? "no result" : r.failure().replace('|', '/').replace('\n', ' '));
    }

    static String markdown(Suite s, String pngName, AttentionImpl chartImpl) {
        double bw = readGbs(s);
        StringBuilder md = new StringBuilder();
        md.append("# isthmus attention benchmark: ").append(s.machine().getOrDefault("CPU", "?")).append(", ").append(s.date()).append("\n\n");
        md.append("Attention over the paged KV cache at Llama-3-8B head shapes: ").append(AttentionCase.Q_HEADS).append(" query heads, ")
          .append(AttentionCase.KV_HEADS).append(" KV heads (GQA), head dim ").append(AttentionCase.HEAD_DIM)
          .append(", scale 1/√128, no softcap, no window. JMH average time per `KvCache.attention` call (K/V are written once per trial, ")
          .append("not timed). Every implementation runs on ").append(s.threads())
          .append(" threads and is checked against an f64 reference on the same inputs before it is timed.\n\n");
        md.append("- **Decode** (q_len = 1; every sequence holds `context` tokens, the newest is the query): K/V GB/s = bytes of K and V of the ")
          .append("whole context of every sequence (kv_heads · 2 · head_dim · element bytes per token, plus 2 · 4 bytes of scales per token and ")
          .append("KV head for int8) / time, against the read bandwidth measured in this run.\n");
        md.append("- **Prefill** (a fresh sequence of 512 tokens, all of them queries, causal): GFLOP/s = 4 · head_dim · q_heads · Σᵢ(i + 1) / time ")
          .append("(query i sees i + 1 keys; 2 FLOP per multiply-add of q·k and of p·v), against a Vector API implementation in the same JVM.\n\n");
        md.append("Command (this run, from the repository root):\n\n```\n").append(s.command()).append("\n```\n\n");
        md.append("The whole suite: `").append(s.fullRunCommand()).append("` (`--quick`: a few cases, 1 × 0.5 s warmup, 3 × 0.5 s measurement; ")
          .append("`--cases`, `--impls`, `--out DIR`, `--threads N`, `--list`).\n\n");

        md.append("## Machine\n\n");
        for (Map.Entry<String, String> e : s.machine().entrySet())
            md.append("- **").append(e.getKey()).append("**: ").append(e.getValue()).append('\n');
        md.append("- **JMH**: ").append(s.settings()).append("\n\n");

        md.append("## Ceiling (measured in this run, ").append(s.threads()).append(" threads)\n\n");
        Ceilings c = s.ceilings();
        if (c == null || !c.measured()) {
            md.append("Read bandwidth not measured: ").append(c == null ? "skipped" : c.missing())
              .append(". The % of bandwidth columns and the decode bar are left empty.\n\n");
        } else {
            md.append("| ceiling | value |\n|---|---|\n");
            md.append("| read bandwidth (").append(mib(c.bandwidthBytes())).append(" buffer, best of ").append(c.reps())
              .append(", libisthmus_bench `ibench_read_bandwidth_gbs`) | ").append(num(c.readGbs())).append(" GB/s |\n");
            md.append("| 60% of it (the decode bar) | ").append(num(DECODE_BW_BAR * c.readGbs())).append(" GB/s |\n\n");
        }

        List<Bar> bars = bars(s);
        md.append("## Bars (issue 4)\n\n");
        if (bars.isEmpty()) {
            md.append("None of the cases the bars name were measured in this run.\n\n");
        } else {
            md.append("| bar | impl | case | measured | target | met |\n|---|---|---|---:|---:|---|\n");
            for (Bar b : bars) {
                boolean frac = b.unit().startsWith("fraction");
                md.append("| ").append(b.bar()).append(" | ").append(b.impl()).append(" | ").append(b.subject()).append(" | ")
                  .append(frac ? pct(b.value()) : ratio(b.value())).append(" | ")
                  .append(frac ? pct(b.target()) : ratio(b.target())).append(" | ")
                  .append(b.met() ? "yes" : "**no**").append(" |\n");
            }
            md.append('\n');
        }

        List<AttentionRow> decode = s.rows().stream().filter(r -> r.workload().decode()).toList();
        if (!decode.isEmpty()) {
            md.append("## Decode\n\n");
            md.append("Median over the measurement iterations; ± is JMH's 99.9% confidence half-width of the mean time (wide with 3 to 5 ")
              .append("iterations: min–max is the practical spread). vs f16: the f16 row's time over this row's, same context, batch and variant.\n\n");
            md.append("| case | impl | K/V read per call | cache layers | µs/call | ± | min–max µs | K/V GB/s | min–max GB/s | % of read BW | vs f16 |\n");
            md.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for (AttentionRow r : decode) {
                md.append("| ").append(r.workload()).append(" | ").append(r.impl().id).append(" | ")
                  .append(mib(r.workload().kvBytesRead())).append(" | ")
                  .append(IsthmusAttention.layers(r.workload(), s.rotateBytes())).append(" | ");
                if (!r.ok()) {
                    md.append(failure(r)).append(" | | | | | | |\n");
                    continue;
                }
                md.append(num(r.medianUs())).append(" | ").append(errPct(r)).append(" | ")
                  .append(num(r.minUs())).append("–").append(num(r.maxUs())).append(" | **")
                  .append(num(r.gbsMedian())).append("** | ")
                  .append(num(r.gbs(r.maxUs()))).append("–").append(num(r.gbs(r.minUs()))).append(" | ")
                  .append(pct(r.gbsMedian() / bw)).append(" | ")
                  .append(r.workload().kv().equals("f16") ? "—" : ratio(vsF16(s.rows(), r))).append(" |\n");
            }
            md.append('\n');
            if (pngName != null)
                md.append("![decode K/V GB/s against context, ").append(chartImpl.id).append("](").append(pngName).append(")\n\n");
        }

        List<AttentionRow> prefill = s.rows().stream().filter(r -> !r.workload().decode()).toList();
        if (!prefill.isEmpty()) {
            md.append("## Prefill\n\n");
            md.append("vs vector-f32: this row's GFLOP/s over the Vector API's on `").append(PREFILL_BASE)
              .append("` (the baseline reads f32 K/V; isthmus rows with other K/V types are compared with the same f32 row).\n\n");
            md.append("| case | impl | µs/call | ± | min–max µs | GFLOP/s | min–max GFLOP/s | vs vector-f32 |\n");
            md.append("|---|---|---:|---:|---:|---:|---:|---:|\n");
            for (AttentionRow r : prefill) {
                md.append("| ").append(r.workload()).append(" | ").append(r.impl().id).append(" | ");
                if (!r.ok()) {
                    md.append(failure(r)).append(" | | | | | |\n");
                    continue;
                }
                md.append(num(r.medianUs())).append(" | ").append(errPct(r)).append(" | ")
                  .append(num(r.minUs())).append("–").append(num(r.maxUs())).append(" | **")
                  .append(num(r.gflopsMedian())).append("** | ")
                  .append(num(r.gflops(r.maxUs()))).append("–").append(num(r.gflops(r.minUs()))).append(" | ")
                  .append(ratio(vsVector(s.rows(), r))).append(" |\n");
            }
            md.append('\n');
        }

        if (!s.skipped().isEmpty()) {
            md.append("## Not run\n\n");
            Map<String, List<Skip>> byReason = s.skipped().stream().collect(Collectors.groupingBy(
                    k -> k.impl().id + "\u0000" + k.reason(), LinkedHashMap::new, Collectors.toList()));
            for (List<Skip> l : byReason.values())
                md.append("- **").append(l.get(0).impl().id).append("** (")
                  .append(l.stream().map(k -> k.workload().toString()).collect(Collectors.joining(", "))).append("): ")
                  .append(l.get(0).reason()).append('\n');
            md.append('\n');
        }

        md.append("## What each implementation computes\n\n");
        Set<AttentionImpl> seen = new LinkedHashSet<>();
        for (AttentionRow r : s.rows()) seen.add(r.impl());
        for (AttentionImpl i : seen) {
            md.append("- **").append(i.id).append("**: ").append(i.description);
            s.rows().stream().filter(r -> r.impl() == i && r.kernel() != null).findFirst()
                    .ifPresent(r -> md.append(". Ran as (").append(r.workload()).append("): ").append(r.kernel()));
            md.append('\n');
        }
        md.append('\n');

        md.append("## Notes\n\n");
        md.append("- Cache: each case's cache is sized for it (blocks of 16 tokens, exactly the blocks its sequences need) and filled ")
          .append("once per trial through the Java API (`extend`, then `write` per chunk of 512 positions, random K/V uniform in [-1, 1), ")
          .append("no RoPE). Decode caches smaller than ")
          .append(mib(s.rotateBytes())).append(s.l3Bytes() > 0 ? " (this CPU's L3: " + mib(s.l3Bytes()) + ")" : "")
          .append(" get more layers (the `cache layers` column), each with its own K/V, and each call reads the next layer, as a ")
          .append("model's layer loop does: K/V stream from memory, never from a warm L3.\n");
        md.append("- Decode GB/s counts only K/V (and int8 scales) bytes; q, out and the block tables are small next to them. ")
          .append("Per the C ABI, decode splits long contexts into chunks of 512 keys that run in parallel and are merged ")
          .append("(flash-decoding), so a single sequence uses every thread.\n");
        if (seen.contains(AttentionImpl.VECTOR_F32))
            md.append("- **vector-f32** computes the same attention (f32, causal, GQA, online softmax) from plain f32 arrays, token-major ")
              .append("K and V as a model produces them; it transposes each KV head's K inside every call (O(keys · d), included in its time). ")
              .append("isthmus reads K already transposed by the cache's layout.\n");
        md.append("- Files: this report, `").append(pngName == null ? "(no chart)" : pngName).append("`, and the JSON next to it ")
          .append("(JMH's raw results under `jmh`, these tables under `summary` and `bars`).\n");
        return md.toString();
    }

    // ------------------------------------------------------------------ json

    static Map<String, Object> json(Suite s) {
        double bw = readGbs(s);
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("suite", "attention");
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
            c.put("read_bandwidth_gbs", ce.readGbs());
            c.put("read_bandwidth_buffer_bytes", ce.bandwidthBytes());
            c.put("read_bandwidth_reps", ce.reps());
        }
        root.put("ceilings", c);
        root.put("rotate_bytes", s.rotateBytes());
        List<Object> bars = new ArrayList<>();
        for (Bar b : bars(s)) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("bar", b.bar());
            m.put("impl", b.impl());
            m.put("case", b.subject());
            m.put("value", b.value());
            m.put("target", b.target());
            m.put("unit", b.unit());
            m.put("met", b.met());
            bars.add(m);
        }
        root.put("bars", bars);
        List<Object> summary = new ArrayList<>();
        for (AttentionRow r : s.rows()) {
            AttentionCase w = r.workload();
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("case", w.toString());
            m.put("kind", w.decode() ? "decode" : "prefill");
            m.put("context", w.context());
            m.put("batch", w.batch());
            m.put("q_len", w.qLen());
            m.put("kv_type", w.kv());
            m.put("q_heads", AttentionCase.Q_HEADS);
            m.put("kv_heads", AttentionCase.KV_HEADS);
            m.put("head_dim", AttentionCase.HEAD_DIM);
            m.put("impl", r.impl().id);
            m.put("ok", r.ok());
            m.put("kv_bytes_read", w.kvBytesRead());
            m.put("flops", w.flops());
            if (r.impl().isIsthmus()) m.put("cache_layers", IsthmusAttention.layers(w, s.rotateBytes()));
            if (r.ok()) {
                m.put("us_median", r.medianUs());
                m.put("us_min", r.minUs());
                m.put("us_max", r.maxUs());
                m.put("us_score", r.scoreUs());
                m.put("us_error_999", r.errorUs());
                m.put("us_iterations", r.iterationsUs());
                m.put("kv_gbs_median", r.gbsMedian());
                m.put("fraction_of_read_bandwidth", r.gbsMedian() / bw);
                m.put("gflops_median", r.gflopsMedian());
                m.put("vs_f16", w.decode() ? vsF16(s.rows(), r) : Double.NaN);
                m.put("vs_vector_f32", vsVector(s.rows(), r));
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
            m.put("case", k.workload().toString());
            m.put("impl", k.impl().id);
            m.put("reason", k.reason());
            skipped.add(m);
        }
        root.put("skipped", skipped);
        root.put("jmh", Json.jmh(s.jmhJson()));
        return root;
    }
}
