package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

/** -Disthmus.debug / ISTHMUS_DEBUG: unclosed objects listed with their creation site, leaks reported. Fresh JVMs. */
class DebugModeTest {
    private static String run(List<String> props, Map<String, String> env, String waitSeconds)
            throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED"));
        cmd.addAll(props);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), DebugModeMain.class.getName(), waitSeconds));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().remove("ISTHMUS_DEBUG");
        pb.environment().putAll(env);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "child JVM timed out");
        assertTrue(out.contains("END"), out);
        return out;
    }

    private static void checkDebugOutput(String out) {
        assertTrue(out.contains("DEBUG=true"), out);
        assertTrue(out.contains("OPEN_OBJECTS_ADDED=2"), out);
        assertTrue(out.contains("LISTED=2"), "the unclosed tensor and cache, not the closed tensor:\n" + out);
        assertTrue(out.contains("RESOURCE kind=Tensor description=I8[3, 5] bytes=15 siteTensor=true"),
                "the tensor with its shape and the test method's frame:\n" + out);
        assertTrue(out.lines().anyMatch(l -> l.startsWith("RESOURCE kind=KvCache") && l.contains("siteCache=true")),
                "the cache with its creation site:\n" + out);
        assertFalse(out.contains("F32[7, 11]"), "a closed tensor is not listed:\n" + out);
        int warning = out.indexOf("isthmus: Tensor I32[13, 17] (884 bytes) became unreachable without close()");
        assertTrue(warning >= 0 && out.indexOf("at " + DebugModeMain.class.getName() + ".dropTensor", warning) > warning,
                "the unreachable tensor is reported through the logger with its creation site:\n" + out);
        assertTrue(out.contains("UNREACHABLE_LISTED=1"), out);
        assertTrue(out.contains("AFTER_CLOSE_LISTED=1"), "closing removes the kept ones; the leaked one stays:\n" + out);
    }

    @Test
    void propertyListsUnclosedObjectsAndReportsLeaks() throws Exception {
        checkDebugOutput(run(List.of("-Disthmus.debug=true"), Map.of(), "30"));
    }

    @Test
    void environmentVariableTurnsItOnToo() throws Exception {
        checkDebugOutput(run(List.of(), Map.of("ISTHMUS_DEBUG", "1"), "30"));
    }

    @Test
    void offCapturesNothing() throws Exception {
        String out = run(List.of(), Map.of(), "2");
        assertTrue(out.contains("DEBUG=false"), out);
        assertTrue(out.contains("OPEN_OBJECTS_ADDED=2"), "counting is always on:\n" + out);
        assertTrue(out.contains("LISTED=0"), out);
        assertFalse(out.contains("became unreachable"), out);
        assertTrue(out.contains("UNREACHABLE_LISTED=0"), out);
        assertEquals(-1, out.indexOf("RESOURCE "), out);
    }
}
