package dev.isthmus.speculative;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.Test;

/** The example of the package documentation (and the README), as written there, on the test models. */
class SpeculativeReadmeExampleTest {

    @Test
    void packageExampleRuns() {
        try (SpecTestModel targetModel = SpecTestModel.of(64, 3);
             SpecTestModel draftModel = SpecTestModel.perturbed(64, 3, 0.1, 4)) {
            int[] prompt = {1, 2, 3, 4, 5};
            // --- example begins (package-info.java)
            LanguageModel target = targetModel, draft = draftModel;   // same vocabulary, each with its own KvCache
            SpeculativeDecoder decoder = SpeculativeDecoder.builder(target, draft)
                    .adaptiveDraftLength(1, 8)                  // or .draftLength(4), .tree(DraftTree.branching(2, 2, 1))
                    .sampling(SamplingParams.temperature(0.7f).withTopP(0.9f))
                    .seed(42)
                    .build();
            Generation g = decoder.generate(List.of(prompt), 256);
            int[] text = g.tokens().get(0);
            DecodeStats s = g.stats();                          // acceptance rate, tokens per target pass, tokens/s
            Generation base = AutoregressiveDecoder.of(target, SamplingParams.temperature(0.7f).withTopP(0.9f), 42)
                    .generate(List.of(prompt), 256);            // the baseline, same stats shape
            // --- example ends
            assertEquals(256, text.length);
            assertEquals(256, base.tokens().get(0).length);
            assertEquals(256, s.tokensEmitted());
            assertTrue(s.acceptanceRate() > 0 && s.acceptanceRate() <= 1, "acceptance " + s.acceptanceRate());
            assertTrue(s.tokensPerTargetStep() > 1, "tokens per target step " + s.tokensPerTargetStep());
            assertTrue(s.tokensPerSecond() > 0 && s.totalNanos() >= s.targetNanos() + s.draftNanos());
            assertEquals(1.0, base.stats().tokensPerTargetStep());
            System.out.printf("example: acceptance %.2f, %.2f tokens per target step (baseline %d target steps)%n",
                    s.acceptanceRate(), s.tokensPerTargetStep(), base.stats().targetSteps());
        }
    }
}
