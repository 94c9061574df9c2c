package dev.isthmus.bench;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;

/**
 * The options every suite takes, parsed once: {@code --quick}, {@code --list}, {@code --help}, the suite's
 * workload list ({@code --shapes} for GEMM, {@code --cases} for the others), {@code --impls}, {@code --out DIR},
 * {@code --threads N}; values as {@code --opt v} or {@code --opt=v}. Lists stay null when not given, so each suite
 * chooses its defaults.
 */
record SuiteArgs(boolean quick, boolean list, List<String> cases, List<String> impls, Path out, int threads) {

    /** Parses argv; {@code --help} prints {@code usage} and exits; anything unknown is an IllegalArgumentException. */
    static SuiteArgs parse(String[] argv, String casesOption, Supplier<String> usage) {
        boolean quick = false, list = false;
        List<String> cases = null, impls = null;
        Path out = Path.of("bench/results");
        int threads = Runtime.getRuntime().availableProcessors();
        for (int i = 0; i < argv.length; i++) {
            String arg = argv[i], val = null;
            int eq = arg.indexOf('=');
            if (arg.startsWith("--") && eq > 0) {
                val = arg.substring(eq + 1);
                arg = arg.substring(0, eq);
            }
            if (arg.equals("--quick")) {
                quick = true;
            } else if (arg.equals("--list")) {
                list = true;
            } else if (arg.equals("--help") || arg.equals("-h")) {
                System.out.println(usage.get());
                System.exit(0);
            } else if (arg.equals(casesOption) || arg.equals("--impls") || arg.equals("--out") || arg.equals("--threads")) {
                if (val == null) {
                    if (i + 1 >= argv.length) throw new IllegalArgumentException(arg + " needs a value");
                    val = argv[++i];
                }
                if (arg.equals(casesOption)) cases = split(val);
                else if (arg.equals("--impls")) impls = split(val);
                else if (arg.equals("--out")) out = Path.of(val);
                else {
                    try {
                        threads = Integer.parseInt(val);
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("--threads " + val + " is not a number");
                    }
                    if (threads < 1) throw new IllegalArgumentException("--threads must be >= 1");
                }
            } else {
                throw new IllegalArgumentException("unknown argument " + argv[i]);
            }
        }
        return new SuiteArgs(quick, list, cases, impls, out, threads);
    }

    /** "a, b,,c" -> [a, b, c]. */
    static List<String> split(String s) {
        return Arrays.stream(s.split(",")).map(String::trim).filter(x -> !x.isEmpty()).toList();
    }
}
