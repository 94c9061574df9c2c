package dev.isthmus.bench.demo;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The demo end to end on the tiny preset for a few tokens: both modes run, greedy outputs are equal. */
class DemoEndToEndTest {
    @Test
    void tinyDemoRuns() {
        Demo.Options o = Demo.parse(new String[] {"--tokens", "12", "--prompt", "8", "--batch", "2", "--runs", "1",
                "--draft", "skip:2", "--k", "3"});
        List<String> lines = new ArrayList<>();
        List<Demo.ModeResult> r = Demo.run(o, lines::add);
        lines.forEach(System.out::println);
        assertEquals(2, r.size());
        assertTrue(r.get(0).equal(), "greedy speculative output differs from the target's");
        for (Demo.ModeResult m : r) {
            assertEquals(2 * 12, m.speculative().median().tokensEmitted());
            assertEquals(2 * 12, m.target().median().tokensEmitted());
            assertTrue(m.speculative().median().tokensPerTargetStep() >= 1);
        }
        assertTrue(lines.stream().anyMatch(l -> l.contains("speedup")));
    }

    @Test
    void prunedDraftAndTreeRun() {
        Demo.Options o = Demo.parse(new String[] {"--tokens", "8", "--prompt", "8", "--runs", "1", "--greedy-only",
                "--draft", "pruned:2:0.7", "--tree", "2,1"});
        List<Demo.ModeResult> r = Demo.run(o, s -> {});
        assertTrue(r.get(0).equal(), "greedy tree speculative output differs from the target's");
    }

    @Test
    void helpListsTheOptions() {
        String u = Demo.usage();
        for (String opt : new String[] {"--preset", "--draft", "--k", "--adaptive", "--tree", "--temperature", "--tokens",
                "--batch", "--seed"})
            assertTrue(u.contains(opt), opt);
    }
}
