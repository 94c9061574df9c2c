package dev.isthmus.speculative;

import dev.isthmus.DType;
import dev.isthmus.Tensor;
import dev.isthmus.attention.Batch;
import dev.isthmus.attention.Sequence;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** What the two decoders share: checks, per-sequence state, prefill, RNG streams. Package-private. */
final class Decoding {
    private Decoding() {}

    /** Most prompts one call takes (the sequence index has 16 bits of a stream). */
    static final int MAX_PROMPTS = 1 << 16;

    /**
     * The Philox stream of one use of randomness: bits 48..63 the sequence (prompt) index, 16..47 the step,
     * 0..15 the slot (0: verification or the target's sample; 1 + j: draft node j's token).
     */
    static long stream(int sequence, int step, int slot) {
        return ((long) sequence << 48) | ((step & 0xFFFF_FFFFL) << 16) | (slot & 0xFFFFL);
    }

    static void checkPrompts(List<int[]> prompts, int vocab, int maxNewTokens) {
        if (prompts == null) throw new IllegalArgumentException("prompts is null");
        if (prompts.isEmpty()) throw new IllegalArgumentException("prompts is empty: give at least one prompt");
        if (prompts.size() > MAX_PROMPTS)
            throw new IllegalArgumentException("prompts has " + prompts.size() + " entries, more than " + MAX_PROMPTS);
        if (maxNewTokens < 0) throw new IllegalArgumentException("maxNewTokens must be >= 0, got " + maxNewTokens);
        for (int i = 0; i < prompts.size(); i++) {
            int[] p = prompts.get(i);
            if (p == null) throw new IllegalArgumentException("prompts[" + i + "] is null");
            if (p.length == 0) throw new IllegalArgumentException("prompts[" + i + "] is empty: a prompt needs >= 1 token");
            for (int j = 0; j < p.length; j++)
                if (p[j] < 0 || p[j] >= vocab)
                    throw new IllegalArgumentException("prompts[" + i + "][" + j + "] = " + p[j]
                            + " is not a token id in [0, " + vocab + ")");
        }
    }

    /** One sequence being decoded. */
    static final class State {
        final int index;
        final int promptLength;
        int[] committed;       // prompt + emitted tokens
        int size;
        Sequence target, draft;
        /** Committed tokens the draft cache does not hold yet (always ends with the last committed token). */
        int[] draftPending;
        boolean done;

        State(int index, int[] prompt) {
            this.index = index;
            this.promptLength = prompt.length;
            this.committed = Arrays.copyOf(prompt, Math.max(16, prompt.length * 2));
            this.size = prompt.length;
            this.draftPending = new int[] {prompt[prompt.length - 1]};
        }

        int generated() {
            return size - promptLength;
        }

        int last() {
            return committed[size - 1];
        }

        void append(int token) {
            if (size == committed.length) committed = Arrays.copyOf(committed, size * 2);
            committed[size++] = token;
        }

        int[] committed() {
            return Arrays.copyOf(committed, size);
        }

        int[] newTokens() {
            return Arrays.copyOfRange(committed, promptLength, size);
        }

        /** The committed tokens followed by {@code extra} (a history for the repetition penalty). */
        int[] historyWith(int[] extra, int extraLength) {
            int[] h = Arrays.copyOf(committed, size + extraLength);
            System.arraycopy(extra, 0, h, size, extraLength);
            return h;
        }
    }

    /**
     * Writes every prompt token but the last into the model's cache, all sequences in one forward pass
     * (the last token is the root of the first step). Returns the nanoseconds spent in forward.
     */
    static long prefill(LanguageModel model, List<State> states, boolean draft, Buffers buffers, int slot) {
        Batch.Builder b = Batch.builder();
        int rows = 0;
        List<int[]> parts = new ArrayList<>();
        for (State s : states) {
            int n = s.promptLength - 1;
            if (n < 1) continue;
            b.add(draft ? s.draft : s.target, n);
            parts.add(Arrays.copyOf(s.committed, n));
            rows += n;
        }
        if (rows == 0) return 0;
        Batch batch = b.build();
        int[] tokens = concat(parts, rows);
        model.cache().extend(batch);
        long[] positions = batch.positions();
        Tensor logits = buffers.matrix(slot, 1, model.vocabSize());
        long t0 = System.nanoTime();
        model.forward(batch, tokens, positions, null, new int[] {rows - 1}, logits);
        return System.nanoTime() - t0;
    }

    static int[] concat(List<int[]> parts, int total) {
        int[] out = new int[total];
        int o = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    /** Closes every sequence that was created, keeping the first failure. */
    /**
     * The end of a generate call, failed or not: closes every sequence ({@link #closeAll}), then the
     * buffers; a failure while closing is added to {@code primary} when there is one.
     */
    static void release(List<State> states, Throwable primary, Buffers buffers) {
        try {
            closeAll(states, primary);
        } finally {
            buffers.close();
        }
    }

    static void closeAll(List<State> states, Throwable primary) {
        RuntimeException first = null;
        for (State s : states) {
            for (Sequence q : new Sequence[] {s.target, s.draft}) {
                if (q == null) continue;
                try {
                    q.close();
                } catch (RuntimeException e) {
                    if (primary != null) primary.addSuppressed(e);
                    else if (first == null) first = e;
                    else first.addSuppressed(e);
                }
            }
        }
        if (first != null) throw first;
    }

    /**
     * Reusable F32 matrices for one generate call, from one shared arena closed at its end: an owned tensor per
     * step costs a shared-arena close (tens of microseconds) each time. Memory is zeroed only when first
     * allocated; callers write what they read. Views are accessible from any thread (models may use pools).
     */
    static final class Buffers implements AutoCloseable {
        private final Arena arena = Arena.ofShared();
        private final MemorySegment[] slots;
        private final dev.isthmus.internal.Resources.Handle handle;

        Buffers(int count) {
            slots = new MemorySegment[count];
            handle = dev.isthmus.internal.Resources.open(this, "DecodingBuffers", 0,
                    () -> count + " slots of one generate call");
        }

        /** A {@code [rows, cols]} F32 view of slot {@code slot}, valid until the next call for that slot. */
        Tensor matrix(int slot, long rows, long cols) {
            long bytes = Math.multiplyExact(Math.multiplyExact(rows, cols), 4L);
            MemorySegment s = slots[slot];
            if (s == null || s.byteSize() < bytes) {
                long size = Math.max(bytes, s == null ? 0 : Math.min(2 * s.byteSize(), Long.MAX_VALUE / 2));
                s = slots[slot] = arena.allocate(size, 64);
                handle.grow(size);
            }
            return Tensor.wrap(s.asSlice(0, bytes), DType.F32, rows, cols);
        }

        /** As {@link #matrix} holding a copy of {@code data} (row-major). */
        Tensor of(int slot, float[] data, long rows, long cols) {
            Tensor t = matrix(slot, rows, cols);
            MemorySegment.copy(data, 0, t.segment(), ValueLayout.JAVA_FLOAT, 0, data.length);
            return t;
        }

        @Override
        public void close() {
            arena.close();
            handle.close();
        }
    }

    /** Called after every decoding step with the sequences still running (tests check the caches). */
    interface StepListener {
        void afterStep(int step, List<State> running);
    }
}
