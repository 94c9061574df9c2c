/**
 * The jextract bindings of {@code isthmus.h} ({@code dev.isthmus.bindings}, generated, never edited)
 * and the loader of the native library ({@code dev.isthmus.loader}). Application code uses the
 * {@code dev.isthmus} module instead.
 */
module dev.isthmus.bindings {
    requires dev.isthmus.nativelib;
    exports dev.isthmus.bindings;
    exports dev.isthmus.loader;
}
