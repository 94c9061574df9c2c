package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

/** -Disthmus.isa caps the ISA at load time; a bad value is a clear error. Each case is a fresh JVM. */
class IsaPropertyTest {
    private static String run(String isa) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(List.of(java, "--enable-native-access=ALL-UNNAMED",
                "-Disthmus.isa=" + isa, "-cp", System.getProperty("java.class.path"), IsaPropertyMain.class.getName()))
                .redirectErrorStream(true).start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "child JVM timed out");
        return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    }

    @Test
    void capsTheIsaAtLoad() throws Exception {
        String out = run("ref");
        assertTrue(out.contains("ISA=REF"), out);
        out = run("avx2");
        assertTrue(out.contains("ISA=" + (Isthmus.supportedIsa() == Isa.REF ? "REF" : "AVX2")), out);
    }

    @Test
    void badValueIsAClearError() throws Exception {
        String out = run("sse9");
        assertTrue(out.contains("ERROR=") && out.contains("isthmus.isa") && out.contains("sse9"), out);
    }
}
