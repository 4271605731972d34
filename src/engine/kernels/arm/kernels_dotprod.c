/* kernels_dotprod.c: the integer dots of neon_int.h with SDOT (armv8.2
 * dotprod: one instruction per 16 byte pairs into 4 int32 lanes of 4
 * products each -- exactly the lanes ggml's x86 orders use). Compiled with
 * +dotprod (CMakeLists.txt); called only when getauxval reports ASIMDDP.
 * The float kernels are NEON's (kernels_neon.c). aarch64 only.
 */
#if defined(__aarch64__)
#include "../kernels_int.h"

#include <arm_neon.h>
#include <math.h>

#define CST_DOT4(acc, a, b) vdotq_s32(acc, a, b)
#define CST_SFX(name) name##_dotprod
#include "neon_int.h"

void cst_kernels_fill_dotprod(cst_kernel_traits *tab, cst_tile4x4_fn *tiles) {
    cst_kernels_fill_neon(tab, tiles);
    fill_int_dotprod(tab);
}
#endif
