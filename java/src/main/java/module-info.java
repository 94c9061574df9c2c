/**
 * isthmus: native inference kernels for Java.
 *
 * <p>{@link dev.isthmus.Tensor} holds data in native memory, {@link dev.isthmus.quant} quantizes it,
 * {@link dev.isthmus.Ops} multiplies it on the CPU kernels of {@code libisthmus.so},
 * {@link dev.isthmus.attention} runs attention over a paged KV cache, {@link dev.isthmus.sparse}
 * prunes weights and multiplies by sparse matrices, and
 * {@link dev.isthmus.Isthmus} tells which kernels run. Run with
 * {@code --enable-native-access=dev.isthmus.bindings,dev.isthmus} (or {@code ALL-UNNAMED} on the class path).
 */
module dev.isthmus {
    requires dev.isthmus.bindings;
    exports dev.isthmus;
    exports dev.isthmus.quant;
    exports dev.isthmus.attention;
    exports dev.isthmus.sparse;
    exports dev.isthmus.speculative;
}
