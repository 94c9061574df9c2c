/* Test-only library: claims an ABI version no loader expects, so the Java loader's check can be
 * exercised (java: NativeLibraryTest). Never shipped. */
#include <stdint.h>
int32_t isthmus_abi_version(void) { return 9999; }
