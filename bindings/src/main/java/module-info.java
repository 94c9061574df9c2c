/**
 * The jextract bindings of {@code isthmus.h} ({@code dev.isthmus.bindings}) and of {@code isthmus_cuda.h}
 * ({@code dev.isthmus.bindings.cuda}), generated, never edited, and the loaders of the native libraries
 * ({@code dev.isthmus.loader}: {@code NativeLibrary}, and {@code CudaLibrary} for the optional CUDA library). Application code uses the
 * {@code dev.isthmus} module instead.
 */
module dev.isthmus.bindings {
    requires dev.isthmus.nativelib;
    exports dev.isthmus.bindings;
    exports dev.isthmus.bindings.cuda;
    exports dev.isthmus.loader;
}
