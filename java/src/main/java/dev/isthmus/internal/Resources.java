package dev.isthmus.internal;

import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;

/**
 * The accounting of native memory that isthmus objects own (owned tensors, packed weights, KV caches, sparse
 * matrices, decoding buffers): bytes and open objects, always counted (two atomic adds at open and at close).
 *
 * <p>In debug mode ({@code -Disthmus.debug=true} or {@code ISTHMUS_DEBUG=1}, read once at class load) each open
 * object also records its creation site (a Throwable) and its description, {@link #open()} lists them, and a
 * {@link Cleaner} reports an object that became unreachable without {@code close()} through
 * {@code System.getLogger("dev.isthmus")} at WARNING. The cleaning action holds the {@link Handle} (kind,
 * description, site), never the object, so registering does not keep the object alive.
 */
public final class Resources {
    private Resources() {}

    /** System property that turns debug mode on. */
    public static final String DEBUG_PROPERTY = "isthmus.debug";
    /** Environment variable that turns debug mode on ({@code 1} or {@code true}). */
    public static final String DEBUG_ENV = "ISTHMUS_DEBUG";

    private static final boolean DEBUG = debugFromSettings();
    private static final LongAdder BYTES = new LongAdder();
    private static final LongAdder OBJECTS = new LongAdder();
    private static final AtomicLong SERIAL = new AtomicLong();
    /** Device bytes held by open isthmus objects, by CUDA device index. */
    private static final ConcurrentHashMap<Integer, LongAdder> DEVICE_BYTES = new ConcurrentHashMap<>();
    /** Open handles in debug mode (empty otherwise). */
    private static final Set<Handle> OPEN = ConcurrentHashMap.newKeySet();
    private static final Cleaner CLEANER = DEBUG ? Cleaner.create() : null;
    private static final System.Logger LOG = System.getLogger("dev.isthmus");

    private static boolean debugFromSettings() {
        String p = System.getProperty(DEBUG_PROPERTY);
        if (p != null) return Boolean.parseBoolean(p.trim());
        String e = System.getenv(DEBUG_ENV);
        return e != null && (e.trim().equals("1") || e.trim().equalsIgnoreCase("true"));
    }

    /** True when creation sites are recorded (see the class comment). */
    public static boolean debug() {
        return DEBUG;
    }

    /** Native bytes held by open isthmus objects. */
    public static long bytes() {
        return BYTES.sum();
    }

    /** Bytes of CUDA device {@code device} held by open isthmus objects. */
    public static long deviceBytes(int device) {
        LongAdder a = DEVICE_BYTES.get(device);
        return a == null ? 0 : a.sum();
    }

    /**
     * Counts a new object owning {@code bytes} of CUDA device {@code device}'s memory (or a CUDA stream or event,
     * with 0 bytes): an open object like {@link #open}, its bytes counted per device, not in {@link #bytes()}.
     */
    public static Handle openDevice(Object owner, String kind, int device, long bytes, Supplier<String> description) {
        LongAdder counter = DEVICE_BYTES.computeIfAbsent(device, d -> new LongAdder());
        Handle h = new Handle(kind, bytes, DEBUG ? description.get() : null,
                DEBUG ? new Throwable("created here") : null, counter);
        counter.add(bytes);
        OBJECTS.increment();
        if (DEBUG) {
            OPEN.add(h);
            h.cleanable = CLEANER.register(owner, h::unreachable);
        }
        return h;
    }

    /** isthmus objects that own native memory and are not closed. */
    public static long objects() {
        return OBJECTS.sum();
    }

    /**
     * Counts a new owning object of {@code bytes} native bytes. {@code owner} is registered with the cleaner in
     * debug mode only; {@code description} is evaluated in debug mode only (and must not capture {@code owner}).
     * The caller calls {@link Handle#close()} when it frees the memory.
     */
    public static Handle open(Object owner, String kind, long bytes, Supplier<String> description) {
        Handle h = new Handle(kind, bytes, DEBUG ? description.get() : null,
                DEBUG ? new Throwable("created here") : null, BYTES);
        BYTES.add(bytes);
        OBJECTS.increment();
        if (DEBUG) {
            OPEN.add(h);
            h.cleanable = CLEANER.register(owner, h::unreachable);
        }
        return h;
    }

    /** The open objects recorded in debug mode, oldest first (empty when debug mode is off). */
    public static List<Handle> open() {
        List<Handle> out = new ArrayList<>(OPEN);
        out.sort(Comparator.comparingLong(h -> h.serial));
        return out;
    }

    /** One owning object's record. Only the owner closes it (idempotent). */
    public static final class Handle {
        private final long serial = SERIAL.incrementAndGet();
        private final String kind;
        private final String description;
        private final Throwable site;
        private final AtomicLong bytes;
        private final AtomicBoolean closed = new AtomicBoolean();
        private volatile boolean unreachable;
        private Cleaner.Cleanable cleanable;
        /** Where the bytes are counted: host bytes, or one device's. */
        private final LongAdder counter;

        private Handle(String kind, long bytes, String description, Throwable site, LongAdder counter) {
            this.counter = counter;
            this.kind = kind;
            this.bytes = new AtomicLong(bytes);
            this.description = description;
            this.site = site;
        }

        /** Counts memory the owner allocated after opening (a growing buffer). */
        public void grow(long more) {
            if (closed.get()) return;
            bytes.addAndGet(more);
            counter.add(more);
        }

        /** The owner freed its memory: uncount it (once). */
        public void close() {
            if (!closed.compareAndSet(false, true)) return;
            counter.add(-bytes.get());
            OBJECTS.decrement();
            if (cleanable != null) {
                OPEN.remove(this);
                cleanable.clean(); // deregisters; unreachable() sees closed and does nothing
            }
        }

        private void unreachable() {
            if (closed.get()) return;
            unreachable = true; // the memory is lost: it stays counted and listed
            LOG.log(System.Logger.Level.WARNING, () -> "isthmus: " + kind + " " + description + " ("
                    + String.format(Locale.ROOT, "%,d", bytes.get()) + " bytes) became unreachable without close(): "
                    + "its native memory is leaked. Created at:" + stack(site), (Throwable) null);
        }

        public String kind() {
            return kind;
        }

        public String description() {
            return description;
        }

        public long bytes() {
            return bytes.get();
        }

        /** Where the object was created (debug mode). */
        public StackTraceElement[] creationStack() {
            return site == null ? new StackTraceElement[0] : site.getStackTrace();
        }

        /** True once the cleaner found the object unreachable while still open (a leak). */
        public boolean isUnreachable() {
            return unreachable;
        }

        private static String stack(Throwable t) {
            StringBuilder sb = new StringBuilder();
            if (t != null) for (StackTraceElement e : t.getStackTrace()) sb.append("\n\tat ").append(e);
            return sb.toString();
        }
    }
}
