package dev.isthmus.bench;

import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * One JMH run of one benchmark method with fixed parameters, in its own fork, as the suites do it: JMH's
 * output is appended to a log under a "######## title" line, the setup's one-line description comes back
 * through {@link GemmBenchmark#DESCRIBE_PROPERTY}, and a failure comes back as text instead of an exception.
 */
public final class JmhRun {
    /** Warmup and measurement of every run of a suite. */
    public record Settings(int warmupIterations, TimeValue warmupTime, int measurementIterations, TimeValue measurementTime,
                           List<String> forkArgs) {
        public static Settings of(boolean quick, List<String> forkArgs) {
            return quick ? new Settings(1, TimeValue.milliseconds(500), 3, TimeValue.milliseconds(500), forkArgs)
                    : new Settings(2, TimeValue.seconds(1), 5, TimeValue.seconds(1), forkArgs);
        }

        public String describe() {
            return "forks 1, warmup " + warmupIterations + " × " + warmupTime + ", measurement " + measurementIterations + " × "
                    + measurementTime + ", mode average time, JMH " + BenchSuite.jmhVersion() + "; forked JVM args: "
                    + String.join(" ", forkArgs);
        }
    }

    /** Microseconds per iteration (one score per measurement iteration), JMH's score and error, or the failure. */
    public record Result(double[] iterationsUs, double scoreUs, double errorUs, String describe, String failure, RunResult raw) {
        public boolean ok() {
            return failure == null;
        }

        public double medianUs() {
            double[] s = iterationsUs.clone();
            java.util.Arrays.sort(s);
            int n = s.length;
            return n == 0 ? Double.NaN : n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
        }

        public double minUs() {
            return java.util.Arrays.stream(iterationsUs).min().orElse(Double.NaN);
        }

        public double maxUs() {
            return java.util.Arrays.stream(iterationsUs).max().orElse(Double.NaN);
        }
    }

    private JmhRun() {}

    /** Runs {@code benchmark.method} with {@code params}; appends JMH's output to {@code log} under {@code title}. */
    public static Result run(Class<?> benchmark, String method, Map<String, String> params, Settings s, Path log, String title)
            throws IOException {
        Path runLog = Files.createTempFile("isthmus-bench-", ".log");
        Path describe = Files.createTempFile("isthmus-bench-", ".txt");
        ChainedOptionsBuilder o = new OptionsBuilder()
                .include("^" + Pattern.quote(benchmark.getName()) + "\\." + method + "$")
                .forks(1)
                .warmupIterations(s.warmupIterations()).warmupTime(s.warmupTime())
                .measurementIterations(s.measurementIterations()).measurementTime(s.measurementTime())
                .timeUnit(TimeUnit.MICROSECONDS)
                .jvmArgs(s.forkArgs().toArray(String[]::new))
                .jvmArgsAppend("-D" + GemmBenchmark.DESCRIBE_PROPERTY + "=" + describe)
                .shouldFailOnError(true)
                .verbosity(VerboseMode.NORMAL)
                .output(runLog.toString());
        params.forEach(o::param);
        Result r;
        try {
            Collection<RunResult> res = new Runner(o.build()).run();
            if (res.isEmpty()) {
                r = new Result(new double[0], Double.NaN, Double.NaN, null, "JMH returned no result", null);
            } else {
                RunResult rr = res.iterator().next();
                List<Double> its = new ArrayList<>();
                for (BenchmarkResult br : rr.getBenchmarkResults())
                    for (IterationResult ir : br.getIterationResults()) its.add(ir.getPrimaryResult().getScore());
                String d = Files.exists(describe) ? Files.readString(describe).strip() : "";
                r = new Result(its.stream().mapToDouble(Double::doubleValue).toArray(), rr.getPrimaryResult().getScore(),
                        rr.getPrimaryResult().getScoreError(), d.isEmpty() ? null : d, null, rr);
            }
        } catch (RunnerException | RuntimeException e) {
            r = new Result(new double[0], Double.NaN, Double.NaN, null, BenchSuite.failure(e, runLog), null);
        }
        String text = Files.exists(runLog) ? Files.readString(runLog) : "";
        Files.writeString(log, "\n######## " + title + "\n" + text, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND);
        Files.deleteIfExists(runLog);
        Files.deleteIfExists(describe);
        return r;
    }
}
