package dev.isthmus.internal;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * The lease count of owned native memory: native calls using it now, or -1 once it is closed.
 * {@link #acquire} fails on closed memory; {@link #markClosed} succeeds only when no call holds a lease.
 */
public final class Leases {
    private final AtomicInteger count = new AtomicInteger();

    /** Takes a lease; returns the action that releases it. */
    public Runnable acquire(Object what) {
        for (;;) {
            int n = count.get();
            if (n < 0) throw new IllegalStateException(what + " is closed");
            if (count.compareAndSet(n, n + 1)) return count::decrementAndGet;
        }
    }

    /** True once {@link #markClosed} succeeded. */
    public boolean isClosed() {
        return count.get() < 0;
    }

    /**
     * Marks the memory closed. Returns false if it already was (nothing to free).
     *
     * @throws IllegalStateException while native calls hold leases
     */
    public boolean markClosed(Object what) {
        if (count.compareAndSet(0, -1)) return true;
        int n = count.get();
        if (n < 0) return false;
        throw new IllegalStateException(what + " is in use by " + n
                + " native call(s) on other threads: close it after they return");
    }
}
