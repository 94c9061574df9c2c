package dev.isthmus.bench.report;

import dev.isthmus.bench.AttentionImpl;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.XYStyler;
import org.knowm.xchart.style.lines.SeriesLines;
import org.knowm.xchart.style.markers.SeriesMarkers;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Decode K/V GB/s against context (log2 x), a line per (K/V type, batch) of one isthmus variant, with the
 * read bandwidth measured in the same run and the 60% bar as horizontal lines.
 */
final class AttentionChart {
    private AttentionChart() {}

    private static final Map<String, Color> COLORS = Map.of(
            "f32", new Color(0x08306b), "f16", new Color(0x238b45), "bf16", new Color(0xe6550d), "int8", new Color(0xd62728));

    /** Writes the PNG; returns false (writing nothing) when {@code impl} has no decode row. */
    static boolean write(Path png, List<AttentionRow> rows, AttentionImpl impl, double readGbs, String title) throws IOException {
        List<AttentionRow> dec = rows.stream().filter(r -> r.ok() && r.impl() == impl && r.workload().decode()).toList();
        if (dec.isEmpty()) return false;
        XYChart chart = new XYChartBuilder().width(1200).height(720).title(title)
                .xAxisTitle("context (tokens per sequence)").yAxisTitle("K/V GB/s (K + V (+ int8 scales) bytes read / time)").build();
        XYStyler st = chart.getStyler();
        st.setLegendPosition(Styler.LegendPosition.OutsideE);
        st.setChartBackgroundColor(Color.WHITE);
        st.setPlotBackgroundColor(Color.WHITE);
        st.setPlotGridLinesColor(new Color(0xdddddd));
        st.setLegendBorderColor(Color.WHITE);
        st.setChartTitleFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
        st.setLegendFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        st.setAxisTickLabelsFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        st.setMarkerSize(7);
        st.setYAxisMin(0.0);
        // x = log2(context), labelled with the context itself at the powers of two
        double x0 = log2(dec.stream().mapToInt(r -> r.workload().context()).min().orElse(1)) - 0.5;
        double x1 = log2(dec.stream().mapToInt(r -> r.workload().context()).max().orElse(1)) + 0.5;
        st.setXAxisMin(x0);
        st.setXAxisMax(x1);
        st.setXAxisTickMarkSpacingHint(120); // one tick per power of two (XChart drops all labels when two are equal)
        chart.setCustomXAxisTickLabelsFormatter(v -> Long.toString(Math.round(Math.pow(2, v))));
        double maxY = Double.isNaN(readGbs) ? 0 : readGbs * 1.1;
        for (String kv : List.of("f32", "f16", "bf16", "int8"))
            for (int batch : dec.stream().mapToInt(r -> r.workload().batch()).distinct().sorted().toArray()) {
                List<AttentionRow> rs = dec.stream().filter(r -> r.workload().kv().equals(kv) && r.workload().batch() == batch)
                        .sorted((a, b) -> Integer.compare(a.workload().context(), b.workload().context())).toList();
                if (rs.isEmpty()) continue;
                double[] x = rs.stream().mapToDouble(r -> log2(r.workload().context())).toArray();
                double[] y = rs.stream().mapToDouble(AttentionRow::gbsMedian).toArray();
                for (double v : y) maxY = Math.max(maxY, v);
                XYSeries s = chart.addSeries(kv + ", batch " + batch, x, y);
                s.setMarker(batch == 1 ? SeriesMarkers.CIRCLE : SeriesMarkers.SQUARE);
                s.setLineStyle(batch == 1 ? new BasicStroke(1.8f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_ROUND, 10f, new float[] {6f, 3f}, 0f)
                        : SeriesLines.SOLID);
                s.setLineColor(COLORS.get(kv));
                s.setMarkerColor(COLORS.get(kv));
            }
        st.setYAxisMax(maxY * 1.05);
        if (!Double.isNaN(readGbs)) {
            line(chart, String.format(Locale.ROOT, "read bandwidth (%.1f GB/s)", readGbs), x0, x1, readGbs,
                    new Color(0x252525), SeriesLines.DASH_DASH);
            line(chart, String.format(Locale.ROOT, "60%% of it (%.1f GB/s)", 0.6 * readGbs), x0, x1, 0.6 * readGbs,
                    new Color(0x969696), SeriesLines.DOT_DOT);
        }
        try (OutputStream out = Files.newOutputStream(png)) {
            BitmapEncoder.saveBitmap(chart, out, BitmapEncoder.BitmapFormat.PNG);
        }
        return true;
    }

    private static double log2(double v) {
        return Math.log(v) / Math.log(2);
    }

    private static void line(XYChart chart, String name, double x0, double x1, double y, Color c, BasicStroke style) {
        XYSeries s = chart.addSeries(name, new double[] {x0, x1}, new double[] {y, y});
        s.setMarker(SeriesMarkers.NONE);
        s.setLineStyle(style);
        s.setLineColor(c);
    }
}
