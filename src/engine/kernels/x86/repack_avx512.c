/* repack_avx512.c: the packed Q8_0, Q4_0 and Q4_K kernels of repack_avx2.c with
 * AVX512-VNNI (on 256-bit vectors): vpdpbusd does a step's maddubs + madd
 * (+ add) in one instruction, the same exact int32 sums, so the same bits. */
#define REPACK_VNNI 1
#define KNAME(name) name##_avx512
#include "repack_avx2.c"
