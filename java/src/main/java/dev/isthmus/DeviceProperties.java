package dev.isthmus;

/**
 * What a CUDA device is ({@code isthmus_cuda_device_props}), from {@link Device#properties()}.
 *
 * <pre>{@code
 * DeviceProperties p = Device.cuda(0).properties();
 * System.out.println(p.name() + " sm_" + p.major() + p.minor() + ", " + p.totalMemory() / (1L << 30) + " GiB");
 * }</pre>
 *
 * @param name                 e.g. "NVIDIA H200"
 * @param major                compute capability, major (9 for 9.0)
 * @param minor                compute capability, minor
 * @param multiprocessors      streaming multiprocessors
 * @param clockKhz             SM clock in kHz
 * @param totalMemory          device memory in bytes
 * @param l2Bytes              L2 cache in bytes
 * @param sharedPerBlockOptin  shared memory a block may opt in to, bytes
 * @param memoryBusBits        memory bus width in bits
 * @param memoryClockKhz       memory clock in kHz
 * @param pciBus               PCI bus id
 * @param pciDevice            PCI device id
 * @param kernelsAvailable     true when the library holds kernels that run on this device (sm_80 and newer); the
 *                             device's memory, copies and streams work either way
 */
public record DeviceProperties(String name, int major, int minor, int multiprocessors, int clockKhz, long totalMemory,
                               long l2Bytes, long sharedPerBlockOptin, int memoryBusBits, int memoryClockKhz,
                               int pciBus, int pciDevice, boolean kernelsAvailable) {
    /** Compute capability times ten, e.g. 90 for 9.0 (the {@code sm_} number). */
    public int sm() {
        return major * 10 + minor;
    }
}
