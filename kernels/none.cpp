/* none.cpp -- built instead of the kernels when the substitution is off
 * (-Dsimd_kernels=disabled, or the configure check failed): faiss's own
 * distances_simd.cpp.o is linked and this only answers the query. */
#include <faissx/faissx.h>

extern "C" {
extern const int fx_kernels_linked;
const int fx_kernels_linked = 0;

const char* faissx_simd_level(void) {
    return "faiss";
}
}
