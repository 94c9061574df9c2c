package dev.isthmus.bench;

import java.util.Arrays;
import java.util.stream.Collectors;

/** The implementations {@link AttentionBenchmark} measures, by their JMH parameter name. */
public enum AttentionImpl {
    ISTHMUS_AVX512("isthmus-avx512",
            "isthmus KvCache.attention on its AVX-512 variant, K/V read from the paged cache in its stored type"),
    ISTHMUS_AVX2("isthmus-avx2",
            "isthmus KvCache.attention on its AVX2 variant, K/V read from the paged cache in its stored type"),
    VECTOR_F32("vector-f32",
            "pure Java attention on the Vector API (jdk.incubator.vector), f32 q/K/V arrays, causal GQA, online softmax, "
                    + "K transposed per KV head inside the call, 4 query rows x 64-key tiles, parallel over KV heads");

    public final String id;
    public final String description;

    AttentionImpl(String id, String description) {
        this.id = id;
        this.description = description;
    }

    public static AttentionImpl of(String id) {
        for (AttentionImpl i : values()) if (i.id.equals(id)) return i;
        throw new IllegalArgumentException("unknown attention impl '" + id + "'; known: "
                + Arrays.stream(values()).map(i -> i.id).collect(Collectors.joining(", ")));
    }

    public boolean isIsthmus() {
        return id.startsWith("isthmus-");
    }

    @Override
    public String toString() {
        return id;
    }
}
