package dev.isthmus;

import java.util.List;

/**
 * An isthmus object that owns native memory and has not been closed, as recorded in debug mode
 * ({@link Isthmus#openResources()}).
 *
 * @param kind          the class: Tensor, PackedWeights, KvCache, SparseMatrix, DecodingBuffers
 * @param description   shape and dtype (or configuration) of the object
 * @param bytes         native bytes it holds
 * @param creationStack where it was created, innermost frame first (isthmus' own frames included)
 * @param unreachable   true when the garbage collector found it unreachable: its memory is leaked
 */
public record OpenResource(String kind, String description, long bytes, List<StackTraceElement> creationStack,
                           boolean unreachable) {

    public OpenResource {
        creationStack = List.copyOf(creationStack);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(kind).append(' ').append(description).append(" (").append(bytes)
                .append(" bytes").append(unreachable ? ", unreachable: leaked" : "").append("), created at");
        for (StackTraceElement e : creationStack) sb.append("\n\tat ").append(e);
        return sb.toString();
    }
}
