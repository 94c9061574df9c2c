package dev.isthmus.internal;

/** Cleanup on an error path that never hides the error being reported. */
public final class Cleanup {
    private Cleanup() {}

    /**
     * Closes {@code resource} (null: nothing) after {@code primary} was thrown; a failure of the close is added to
     * {@code primary} as a suppressed exception instead of replacing it. Returns {@code primary} (callers rethrow
     * it).
     */
    public static <T extends Throwable> T closeQuietly(AutoCloseable resource, T primary) {
        if (resource == null) return primary;
        try {
            resource.close();
        } catch (Throwable t) {
            if (t != primary) primary.addSuppressed(t);
        }
        return primary;
    }
}
