package dev.isthmus.quant;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Tensor;
import dev.isthmus.bindings.Isthmus;
import dev.isthmus.bindings.isthmus_gemm_pack_args;
import dev.isthmus.internal.Checks;
import dev.isthmus.internal.Leases;
import dev.isthmus.internal.Native;
import dev.isthmus.internal.Resources;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Int8 weights W[N, K] (a row per output channel) with their scales, packed once into the layout of
 * the ISA variant active when packing. Immutable, usable from many threads at once; owns native
 * memory until {@link #close()}.
 *
 * <pre>{@code
 * try (Tensor w = Tensor.of(weights, n, k);
 *      PackedWeights pw = PackedWeights.quantize(w, QuantScheme.int8PerGroup(32));
 *      Tensor x = Tensor.of(activations, m, k);
 *      Tensor y = Ops.matmul(x, pw)) {       // y[m, n] f32
 *     ...
 * }
 * }</pre>
 */
public final class PackedWeights implements AutoCloseable {
    private final Arena arena;
    private final MemorySegment packed;
    private final long n, k;
    private final QuantScheme scheme;
    private final Isa isa;
    /** Native calls reading the buffer now. */
    private final Leases leases = new Leases();
    /** The accounting record ({@link dev.isthmus.Isthmus#memoryStats()}). */
    private final Resources.Handle handle;

    private PackedWeights(Arena arena, MemorySegment packed, long n, long k, QuantScheme scheme, Isa isa) {
        this.arena = arena;
        this.packed = packed;
        this.n = n;
        this.k = k;
        this.scheme = scheme;
        this.isa = isa;
        String what = "[" + n + ", " + k + "] " + scheme + ", " + isa;
        this.handle = Resources.open(this, "PackedWeights", packed.byteSize(), () -> what);
    }

    /**
     * Quantizes an F32 weight matrix [N, K] with a native scheme and packs it.
     *
     * @throws IllegalArgumentException naming w or scheme for a null, a wrong dtype or shape, a heap tensor, a NaN
     *                                  or infinite weight, or a scheme with no native kernel
     * @throws IllegalStateException    for a closed w or one confined to another thread
     */
    public static PackedWeights quantize(Tensor w, QuantScheme scheme) {
        Checks.notNull(scheme, "scheme");
        requireNative(scheme);
        Checks.matrix(w, "w", DType.F32);
        QuantizedTensor q;
        try {
            q = Quant.quantize(w, scheme);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("w: " + e.getMessage(), e); // Quant names it x
        }
        try (q) {
            return pack(q);
        }
    }

    /**
     * Packs quantized weights [N, K] (values in [-127, 127]; -128 is refused) with a native scheme.
     * The quantized tensor may be closed afterwards.
     */
    public static PackedWeights pack(QuantizedTensor w) {
        Checks.notNull(w, "w");
        QuantScheme scheme = w.scheme();
        requireNative(scheme);
        Tensor values = Checks.matrix(w.values(), "w.values", DType.I8);
        Checks.usable(w.scales(), "w.scales");
        Native.ensureLoaded();
        long n = values.dim(0), k = values.dim(1);
        if (k > Isthmus.ISTHMUS_GEMM_MAX_K())
            throw new IllegalArgumentException("w " + Checks.shape(values) + ": K = " + k + " exceeds "
                    + Isthmus.ISTHMUS_GEMM_MAX_K() + " (int32 accumulators would overflow)");
        Arena arena = Arena.ofShared();
        try (Tensor.Lease lv = values.lease(); Tensor.Lease ls = w.scales().lease(); Arena call = Arena.ofConfined()) {
            MemorySegment a = isthmus_gemm_pack_args.allocate(call);
            isthmus_gemm_pack_args.n(a, n);
            isthmus_gemm_pack_args.k(a, k);
            isthmus_gemm_pack_args.w(a, values.segment());
            isthmus_gemm_pack_args.ldw(a, values.stride(0));
            isthmus_gemm_pack_args.w_granularity(a, scheme.nativeGranularity());
            isthmus_gemm_pack_args.group(a, scheme.group());
            isthmus_gemm_pack_args.w_scales(a, w.scales().segment());
            MemorySegment bytes = call.allocate(8);
            Native.check(Isthmus.isthmus_gemm_s8_packed_size(a, bytes), "PackedWeights.pack");
            long size = bytes.get(java.lang.foreign.ValueLayout.JAVA_LONG, 0);
            MemorySegment packed = arena.allocate(size, 64);
            isthmus_gemm_pack_args.packed(a, packed);
            isthmus_gemm_pack_args.packed_size(a, size);
            Native.checkInput(Isthmus.isthmus_gemm_s8_pack(a), "PackedWeights.pack", "w " + Checks.shape(values),
                    "-128", "not finite");
            MemorySegment info = dev.isthmus.bindings.isthmus_packed_info.allocate(call);
            Native.check(Isthmus.isthmus_gemm_s8_packed_info(packed, info), "PackedWeights.pack");
            return new PackedWeights(arena, packed, n, k, scheme, Isa.of(dev.isthmus.bindings.isthmus_packed_info.isa(info)));
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    private static void requireNative(QuantScheme scheme) {
        if (!scheme.isNative())
            throw new IllegalArgumentException("scheme " + scheme + " has no native kernel: weights must be int8 "
                    + "symmetric, round half even, unclipped, per tensor / per row / per group of 32, 64, 128 or 256");
    }

    /** Output channels N. */
    public long n() {
        return n;
    }

    /** Input features K. */
    public long k() {
        return k;
    }

    public QuantScheme scheme() {
        return scheme;
    }

    /** The ISA variant whose layout this buffer has (the kernels that will run on it). */
    public Isa isa() {
        return isa;
    }

    /** Packed bytes. */
    public long byteSize() {
        return packed.byteSize();
    }

    /** The packed buffer (for the ops; do not write to it). */
    public MemorySegment segment() {
        if (!arena.scope().isAlive()) throw new IllegalStateException("PackedWeights [" + n + ", " + k + "] is closed");
        return packed;
    }

    public boolean isAlive() {
        return arena.scope().isAlive();
    }

    /**
     * Takes a lease on the packed buffer for a native call (ops do this): while one is open,
     * {@link #close()} fails instead of freeing memory a kernel is reading.
     */
    public Tensor.Lease lease() {
        Runnable release = leases.acquire(this);
        return release::run;
    }

    /**
     * Frees the packed buffer. Idempotent.
     *
     * @throws IllegalStateException if an op on another thread is reading it right now
     */
    @Override
    public void close() {
        if (leases.markClosed("PackedWeights [" + n + ", " + k + "]")) {
            arena.close();
            handle.close();
        }
    }

    @Override
    public String toString() {
        return "PackedWeights[" + n + "x" + k + ", " + scheme + ", " + isa + (isAlive() ? "" : ", closed") + "]";
    }
}
