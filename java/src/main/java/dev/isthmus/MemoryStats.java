package dev.isthmus;

/**
 * A snapshot of the memory isthmus accounts for ({@link Isthmus#memoryStats()}): the native library's own
 * allocations, and the native memory held by isthmus Java objects that own it.
 *
 * <p>The library's own memory is its thread pool, per-call scratch (freed before each call returns) and
 * one scratch buffer per calling thread (kept for reuse up to the largest call the thread made, freed when
 * the thread exits or by {@link Isthmus#releaseThreadScratch()}). The Java side counts owned tensors
 * ({@link Tensor#allocate(DType, long...)}, {@code Tensor.of}, op outputs, the tensors of a
 * {@code QuantizedTensor} that {@code Quant.quantize} made), {@code PackedWeights}, {@code KvCache} (state and
 * pool), {@code SparseMatrix} (arrays and packed form) and the buffers of a running speculative decoding call.
 * Memory in arenas you control is yours and not counted. Counters are updated atomically; a snapshot taken
 * while other threads allocate or free is approximate.
 *
 * @param nativeLiveBytes        bytes the native library has allocated now (including scratch)
 * @param nativeLiveAllocations  native allocations not yet freed
 * @param nativePeakBytes        highest {@code nativeLiveBytes} since the library loaded
 * @param nativeTotalAllocations native allocations since load
 * @param nativeTotalFrees       native frees since load
 * @param nativeFailedAllocations native allocations refused (out of memory)
 * @param nativeScratchBytes     the part of {@code nativeLiveBytes} held by per-thread scratch buffers
 * @param poolThreads            worker threads of the native thread pool alive now
 * @param ownedBytes             native bytes held by open isthmus objects (Java side)
 * @param openObjects            isthmus objects that own native memory and are not closed
 */
public record MemoryStats(long nativeLiveBytes, long nativeLiveAllocations, long nativePeakBytes,
                          long nativeTotalAllocations, long nativeTotalFrees, long nativeFailedAllocations,
                          long nativeScratchBytes, long poolThreads, long ownedBytes, long openObjects) {

    /** Native bytes outside the per-thread scratch buffers (what must return to its baseline after any op). */
    public long nativeNonScratchBytes() {
        return nativeLiveBytes - nativeScratchBytes;
    }
}
