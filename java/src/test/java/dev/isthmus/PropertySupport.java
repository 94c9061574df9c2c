package dev.isthmus;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Consumer;
import java.util.regex.Pattern;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;

import org.junit.jupiter.api.function.Executable;

/*
 * Every public entry of module dev.isthmus and the property class covering it (V: valid inputs against the
 * reference, I: invalid inputs -> documented exception naming the argument, L: closed / other thread's / heap
 * tensors and views past their end refused).
 *
 * | entry                                                                 | class                   | V I L |
 * |-----------------------------------------------------------------------|-------------------------|-------|
 * | Tensor.allocate x2, of x3, wrap x2, rows, get/set x6, to*Array x3,    | TensorPropertyTest      | V I L |
 * |   shape/strides/dim/stride/rank/elementCount/isContiguous/isAlive/     |                         |       |
 * |   ownsMemory/close/lease                                              |                         |       |
 * | Ops.matmul(Tensor, PW) x2, matmul(QuantizedTensor, PW) x2,            | OpsPropertyTest         | V I L |
 * |   matmulInt32 x2, rmsNorm, swiglu                                     |                         |       |
 * | Isthmus.setIsaCap/isaCap/isa/supportedIsa/setThreads/threads, Isa.of  | OpsPropertyTest         | V I - |
 * | Quant.quantize/dequantize/error/quantizeReference/dequantizeReference | QuantPropertyTest       | V I L |
 * | QuantScheme (factories, with*, scaleCount, isNative, maxLevel)        | QuantPropertyTest       | V I - |
 * | QuantizedTensor(...) x2, close; PackedWeights.quantize/pack/n/k/      | QuantPropertyTest       | V I L |
 * |   scheme/isa/byteSize/segment/lease/isAlive/close                     |                         |       |
 * | SparseMatrix.fromDense x2, fromDenseInt8 x2, quantizeInt8, csr x2,    | SparsePropertyTest      | V I L |
 * |   bsr x2, twoFour x2, toDense, accessors, close                       |                         |       |
 * | Sparse.matmul x5, matmulInt32 x2                                      | SparsePropertyTest      | V I L |
 * | Pruning.magnitude/nm/block/perRow/global/wanda x2/seed/prune x2,      | SparsePropertyTest      | V I L |
 * |   PruneResult.pruned/report/toSparse                                  |                         |       |
 * | KvConfig.builder (every setter, build), KvCache.create/newSequence/   | AttentionPropertyTest   | V I L |
 * |   fork/extend/write x2/read/attention x2/stats/close, Sequence.extend/ |                         |       |
 * |   truncate/fork/length/close, Batch.of/builder/add/build/positions,   |                         |       |
 * |   Rope.half/interleaved/withRotaryDim/apply, AttentionParams.of/with* |                         |       |
 * | Sampler.sample x2, SamplingParams (record, factories, with*)          | SpeculativePropertyTest | V I L |
 * | Verifier.verify x2, Verifier.Distribution.probs/logits                | SpeculativePropertyTest | V I L |
 * | DraftTree.chain/of/branching/parent/depth/isChain                     | SpeculativePropertyTest | V I - |
 * | SpeculativeDecoder.builder (+ Builder setters, build, generate),      | SpeculativePropertyTest | V I - |
 * |   AutoregressiveDecoder.of/generate                                   |                         |       |
 *
 * Not covered here: Sequence.compact and KvCache.attention with a tree mask on valid inputs (CompactTest,
 * TreeAttentionTest), Sparse/Pruning reports' output errors (PruningTest), DraftLengthRule (DraftLengthRuleTest),
 * records with no behaviour (KernelInfo, QuantError, DecodeStats, Generation, PruneReport, KvCache.Stats), and
 * Isthmus.version/abiVersion/libraryPath/kernels/describe (RuntimeInfoTest).
 */
/**
 * Shared pieces of the {@code *PropertyTest} classes (jqwik): size generators, never-zero random data, the
 * refusal assertion (exact exception type, message naming the argument) and the lifetime substitutes (a tensor
 * whose arena is closed, one confined to another thread, one on the Java heap). Each property counts its cases
 * here; {@link #report} prints the count per class and appends it to {@code target/property-cases.txt}.
 */
public final class PropertySupport {
    private PropertySupport() {}

    // ------------------------------------------------------------------ case counting

    private static final Map<String, LongAdder> CASES = new ConcurrentHashMap<>();

    public static void count(Class<?> c) {
        CASES.computeIfAbsent(c.getSimpleName(), x -> new LongAdder()).increment();
    }

    /** Prints "PROPERTY-CASES Class n" and appends it to target/property-cases.txt (call from @AfterContainer). */
    public static void report(Class<?> c) {
        LongAdder a = CASES.get(c.getSimpleName());
        String line = "PROPERTY-CASES " + c.getSimpleName() + " " + (a == null ? 0 : a.sum());
        System.out.println(line);
        try {
            Path p = Path.of("target", "property-cases.txt");
            Files.createDirectories(p.getParent());
            Files.writeString(p, line + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            System.out.println("could not append to target/property-cases.txt: " + e);
        }
    }

    // ------------------------------------------------------------------ generators

    /** Edge sizes: 1, odd, primes, just off the multiples of 8 / 16 / 64 the kernels unroll by. */
    static final int[] EDGE = {1, 2, 3, 5, 7, 8, 9, 11, 13, 15, 16, 17, 23, 31, 32, 33, 47, 63, 64, 65, 97, 127, 129};

    /** A dimension in [1, max]: mostly edge sizes, some uniform, a few near max (the large cases). */
    public static Arbitrary<Integer> dim(int max) {
        Arbitrary<Integer> edge = Arbitraries.of(java.util.Arrays.stream(EDGE).filter(d -> d <= max).boxed().toList());
        return Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(6, edge),
                net.jqwik.api.Tuple.of(3, Arbitraries.integers().between(1, max)),
                net.jqwik.api.Tuple.of(1, Arbitraries.integers().between(Math.max(1, max - max / 8), max)));
    }

    /** Gaussian values of the given scale, never zero (|v| >= scale / 64). */
    public static float[] nonZero(Random r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            double v = r.nextGaussian() * scale;
            if (Math.abs(v) < scale / 64) v = Math.copySign(scale / 64 + Math.abs(v), v == 0 ? 1 : v);
            a[i] = (float) v;
        }
        return a;
    }

    /** int8 values in [-127, 127], never zero. */
    public static byte[] nonZeroInt8(Random r, int n) {
        byte[] a = new byte[n];
        for (int i = 0; i < n; i++) {
            int v = r.nextInt(254) - 127;
            a[i] = (byte) (v >= 0 ? v + 1 : v);
        }
        return a;
    }

    /** An F32 matrix copy of {@code data} [rows, cols] whose rows are {@code ld >= cols} apart (a view). */
    public static Tensor strided(Arena arena, float[] data, int rows, int cols, int ld) {
        MemorySegment seg = arena.allocate((long) ((rows - 1) * (long) ld + cols) * 4, 64);
        for (int r = 0; r < rows; r++)
            MemorySegment.copy(data, r * cols, seg, java.lang.foreign.ValueLayout.JAVA_FLOAT, (long) r * ld * 4, cols);
        return Tensor.wrap(seg, DType.F32, new long[] {rows, cols}, new long[] {ld, 1});
    }

    // ------------------------------------------------------------------ refusals

    /**
     * {@code call} must throw an instance of {@code type} (never an {@link IsthmusException}: Java should have
     * caught it) whose message names {@code argument} as a word ("x" matches "x F32[2, 3]" but not "max").
     */
    public static <T extends Throwable> T refused(Class<T> type, String argument, Executable call) {
        Throwable e = null;
        try {
            call.execute();
        } catch (Throwable t) {
            e = t;
        }
        if (e == null) fail("expected " + type.getSimpleName() + " naming '" + argument + "', but the call succeeded");
        if (!type.isInstance(e) || e instanceof IsthmusException) {
            AssertionErrorWithCause err = new AssertionErrorWithCause("expected " + type.getSimpleName() + " naming '"
                    + argument + "', got " + e, e);
            throw err;
        }
        Throwable thrown = e;
        assertTrue(names(e.getMessage(), argument),
                () -> type.getSimpleName() + " should name '" + argument + "': " + thrown.getMessage());
        return type.cast(e);
    }

    private static final class AssertionErrorWithCause extends AssertionError {
        AssertionErrorWithCause(String msg, Throwable cause) {
            super(msg, cause);
        }
    }

    /**
     * A shape mismatch is relational (x [4, 33] against weight [32]: which one is wrong?): an
     * {@link IllegalArgumentException} naming any of the op's arguments.
     */
    public static void refusedNamingAny(String[] names, Executable call) {
        IllegalArgumentException e = refused(IllegalArgumentException.class, "", call);
        for (String n : names) if (names(e.getMessage(), n)) return;
        fail("IllegalArgumentException should name one of " + java.util.Arrays.toString(names) + ": " + e.getMessage());
    }

    /** True when {@code message} contains {@code name} not glued to other identifier characters. */
    public static boolean names(String message, String name) {
        if (message == null) return false;
        if (name.isEmpty()) return true;
        return Pattern.compile("(?<![A-Za-z0-9_])" + Pattern.quote(name) + "(?![A-Za-z0-9_])").matcher(message).find();
    }

    // ------------------------------------------------------------------ lifetime substitutes

    /** A thread that owns confined arenas, so that tensors from "another thread's confined arena" exist. */
    private static final ExecutorService OTHER = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "property-other-thread");
        t.setDaemon(true);
        return t;
    });

    /** A tensor of like's dtype and shape whose arena is already closed. */
    public static Tensor closed(Tensor like) {
        Arena a = Arena.ofConfined();
        Tensor t = Tensor.allocate(a, like.dtype(), like.shape());
        a.close();
        return t;
    }

    /** Runs {@code use} with a tensor of like's dtype and shape in a confined arena of another thread. */
    public static void withForeign(Tensor like, Consumer<Tensor> use) {
        Arena[] arena = new Arena[1];
        Tensor t;
        try {
            t = OTHER.submit(() -> {
                arena[0] = Arena.ofConfined();
                return Tensor.allocate(arena[0], like.dtype(), like.shape());
            }).get();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
        try {
            use.accept(t);
        } finally {
            try {
                OTHER.submit(() -> arena[0].close()).get();
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        }
    }

    /** A tensor of like's dtype and shape backed by a Java heap array. */
    public static Tensor onHeap(Tensor like) {
        int n = Math.toIntExact(like.elementCount());
        MemorySegment seg = switch (like.dtype()) {
            case F32 -> MemorySegment.ofArray(new float[n]);
            case I8 -> MemorySegment.ofArray(new byte[n]);
            case I32 -> MemorySegment.ofArray(new int[n]);
            case BF16 -> MemorySegment.ofArray(new short[n]);
        };
        return Tensor.wrap(seg, like.dtype(), like.shape());
    }

    /** A tensor of like's shape with another dtype (owned; closed by the caller). */
    public static Tensor otherDtype(Tensor like, int pick) {
        DType[] others = java.util.Arrays.stream(DType.values()).filter(d -> d != like.dtype()).toArray(DType[]::new);
        return Tensor.allocate(others[Math.floorMod(pick, others.length)], like.shape());
    }

    /** A tensor of like's dtype with dimension {@code d} one larger (owned; closed by the caller). */
    public static Tensor otherShape(Tensor like, int d) {
        long[] s = like.shape();
        s[d] += 1;
        return Tensor.allocate(like.dtype(), s);
    }

    /**
     * For each tensor argument {@code i} of an op whose valid arguments are {@code args}: a closed tensor and one
     * confined to another thread are refused with {@link IllegalStateException}, one on the Java heap, one of
     * another dtype and (unless {@code nullable[i]}) null with {@link IllegalArgumentException}, every message
     * naming {@code names[i]}; with {@code shapes}, also a tensor with each dimension one larger. Returns the
     * number of refusals checked.
     */
    public static int refusesBadTensors(String[] names, Tensor[] args, boolean[] nullable, boolean shapes, int pick,
                                        Consumer<Tensor[]> op) {
        int checked = 0;
        for (int i = 0; i < args.length; i++) {
            if (args[i] == null) continue;
            final int at = i;
            Tensor[] a = args.clone();
            a[i] = closed(args[i]);
            refused(IllegalStateException.class, names[i], () -> op.accept(a));
            withForeign(args[i], f -> {
                Tensor[] b = args.clone();
                b[at] = f;
                refused(IllegalStateException.class, names[at], () -> op.accept(b));
            });
            a[i] = onHeap(args[i]);
            refused(IllegalArgumentException.class, names[i], () -> op.accept(a));
            try (Tensor o = otherDtype(args[i], pick)) {
                a[i] = o;
                refused(IllegalArgumentException.class, names[i], () -> op.accept(a));
            }
            if (!nullable[i]) {
                a[i] = null;
                refused(IllegalArgumentException.class, names[i], () -> op.accept(a));
                checked++;
            }
            checked += 4;
            if (shapes) {
                for (int d = 0; d < args[i].rank(); d++) {
                    try (Tensor o = otherShape(args[i], d)) {
                        a[i] = o;
                        refusedNamingAny(names, () -> op.accept(a));
                    }
                    checked++;
                }
            }
        }
        return checked;
    }
}
