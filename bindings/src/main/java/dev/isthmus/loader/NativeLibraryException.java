package dev.isthmus.loader;

/**
 * The native library could not be found, extracted, loaded, or does not match these bindings. The
 * message says which, and what to do (e.g. {@code -Disthmus.library.path=/path/to/libisthmus.so}).
 */
public final class NativeLibraryException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public NativeLibraryException(String message) {
        super(message);
    }

    public NativeLibraryException(String message, Throwable cause) {
        super(message, cause);
    }
}
