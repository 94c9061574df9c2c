package dev.isthmus.bench.report;

import dev.isthmus.bench.Impl;
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
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * GOP/s against M for the N = K = 4096 shapes (log-log), a line per implementation, with the measured
 * int8 compute peaks as horizontal ceilings and the int8 weight-streaming bound 2*M*BW as a slanted one.
 */
final class Chart {
    private Chart() {}

    private static final Map<Impl, Color> COLORS = new EnumMap<>(Impl.class);

    static {
        COLORS.put(Impl.ISTHMUS_AVX512, new Color(0x08306b));
        COLORS.put(Impl.ISTHMUS_AVX2, new Color(0x2171b5));
        COLORS.put(Impl.ISTHMUS_REF, new Color(0x9ecae1));
        COLORS.put(Impl.ISTHMUS_AVX512_G32, new Color(0x006d2c));
        COLORS.put(Impl.ISTHMUS_AVX2_G32, new Color(0x41ab5d));
        COLORS.put(Impl.ISTHMUS_FUSED, new Color(0x6a51a3));
        COLORS.put(Impl.JAVA_F32, new Color(0x636363));
        COLORS.put(Impl.VECTOR_INT8, new Color(0xe6550d));
        COLORS.put(Impl.JLAMA_Q8Q4, new Color(0xd62728));
        COLORS.put(Impl.ONEDNN, new Color(0x8c564b));
        COLORS.put(Impl.OPENBLAS_F32, new Color(0xbcbd22));
    }

    /** Writes the PNG; returns false (writing nothing) when no N = K = 4096 shape was measured. */
    static boolean write(Path png, List<Row> rows, Ceilings ceilings, String title) throws IOException {
        List<Row> square = rows.stream().filter(r -> r.ok() && r.shape().n() == 4096 && r.shape().k() == 4096).toList();
        if (square.isEmpty()) return false;
        XYChart chart = new XYChartBuilder().width(1200).height(720).title(title)
                .xAxisTitle("M (rows of x: tokens in the batch)").yAxisTitle("GOP/s (2*M*N*K / time)").build();
        XYStyler st = chart.getStyler();
        chart.getStyler().setXAxisLogarithmic(true);
        chart.getStyler().setYAxisLogarithmic(true);
        st.setLegendPosition(Styler.LegendPosition.OutsideE);
        st.setChartBackgroundColor(Color.WHITE);
        st.setPlotBackgroundColor(Color.WHITE);
        st.setPlotGridLinesColor(new Color(0xdddddd));
        st.setLegendBorderColor(Color.WHITE);
        st.setChartTitleFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
        st.setLegendFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        st.setAxisTickLabelsFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        st.setMarkerSize(7);

        double minM = square.stream().mapToInt(r -> r.shape().m()).min().orElse(1);
        double maxM = square.stream().mapToInt(r -> r.shape().m()).max().orElse(1);
        if (maxM == minM) {
            minM = Math.max(1, minM / 2);
            maxM = maxM * 2;
        }
        st.setXAxisMin(minM / 1.4);
        st.setXAxisMax(maxM * 1.4);
        double maxY = 0;
        for (Impl impl : Impl.values()) {
            List<Row> rs = square.stream().filter(r -> r.impl() == impl).sorted((a, b) -> Integer.compare(a.shape().m(), b.shape().m())).toList();
            if (rs.isEmpty()) continue;
            double[] x = rs.stream().mapToDouble(r -> r.shape().m()).toArray();
            double[] y = rs.stream().mapToDouble(Row::gopsMedian).toArray();
            for (double v : y) maxY = Math.max(maxY, v);
            XYSeries s = chart.addSeries(impl.id, x, y);
            s.setMarker(SeriesMarkers.CIRCLE);
            s.setLineStyle(impl.isIsthmus() ? SeriesLines.SOLID : new BasicStroke(1.8f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_ROUND, 10f, new float[] {6f, 3f}, 0f));
            s.setLineColor(COLORS.get(impl));
            s.setMarkerColor(COLORS.get(impl));
        }
        if (ceilings != null && ceilings.measured()) {
            ceiling(chart, String.format(java.util.Locale.ROOT, "peak AVX2 int8 (%.0f GOP/s)", ceilings.avx2Gops()),
                    minM, maxM, ceilings.avx2Gops(), new Color(0x969696));
            if (ceilings.vnniGops() > 0)
                ceiling(chart, String.format(java.util.Locale.ROOT, "peak AVX-512 VNNI int8 (%.0f GOP/s)", ceilings.vnniGops()),
                        minM, maxM, ceilings.vnniGops(), new Color(0x252525));
            // 2*M*BW, drawn up to where it leaves the picture (1.5x the highest peak)
            double top = 1.5 * Math.max(ceilings.bestInt8Gops(), maxY);
            double mEnd = Math.min(maxM, top / (2 * ceilings.readGbs()));
            if (mEnd > minM) {
                XYSeries bw = chart.addSeries(String.format(java.util.Locale.ROOT, "int8 weight streaming 2*M*BW (BW %.1f GB/s)", ceilings.readGbs()),
                        new double[] {minM, mEnd}, new double[] {2 * minM * ceilings.readGbs(), 2 * mEnd * ceilings.readGbs()});
                bw.setMarker(SeriesMarkers.NONE);
                bw.setLineStyle(SeriesLines.DOT_DOT);
                bw.setLineColor(new Color(0x525252));
            }
        }
        try (OutputStream out = Files.newOutputStream(png)) {
            BitmapEncoder.saveBitmap(chart, out, BitmapEncoder.BitmapFormat.PNG);
        }
        return true;
    }

    private static void ceiling(XYChart chart, String name, double x0, double x1, double y, Color c) {
        XYSeries s = chart.addSeries(name, new double[] {x0, x1}, new double[] {y, y});
        s.setMarker(SeriesMarkers.NONE);
        s.setLineStyle(SeriesLines.DASH_DASH);
        s.setLineColor(c);
    }
}
