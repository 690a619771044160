// matmul_vnni.c — int8_x86.h's kernels (q4_0 and q8_0 dots, q8_0's 4 × 4 and the unpacked prompt kernels)
// with VNNI's dpbusd (u8 × s8, four products summed into each i32 lane in one instruction) where AVX2 needs
// maddubs + madd: AVX512-VNNI with AVX512-VL (its 256-bit form; Ice Lake, Sapphire Rapids, Zen 4) and
// AVX-VNNI (Alder Lake and later). Same source, same i32 sums, same float operations: outputs bit-identical
// to the AVX2 kernels'. The K types' dots stay AVX2 (their madd folds in sub-block scales).
//
// No CPU here has VNNI: tools/cross_check builds this file with BONSAI_VNNI_EMULATED, which takes dpbusd
// from SIMDe's portable implementation (Debian: libsimde-dev) and lets cpu.c choose these kernels on an
// AVX2 CPU, and requires every matmul output to equal the AVX2 build's bit for bit. Never defined in the
// package build.
#if defined(__x86_64__)
#include "x86_common.h"

#ifdef BONSAI_VNNI_EMULATED
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512/dpbusd.h>   // built with -mavx2, so SIMDe's 256-bit type is __m256i itself
#define dpbusd_evex(acc, u, s) simde_mm256_dpbusd_epi32((acc), (u), (s))
#define dpbusd_vex(acc, u, s) simde_mm256_dpbusd_epi32((acc), (u), (s))
#define VNNI_EVEX AVX2
#define VNNI_VEX AVX2
#else
#define dpbusd_evex(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#define dpbusd_vex(acc, u, s) _mm256_dpbusd_avx_epi32((acc), (u), (s))
#define VNNI_EVEX __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define VNNI_VEX __attribute__((target("avx2,fma,f16c,avxvnni")))
#endif

// AVX512-VNNI (EVEX-encoded, 256 bits wide)
#define KERNEL_ISA VNNI_EVEX
#define KERNEL(name) name##_avx512vnni
#define PAIRS_ADD(p, u, s) dpbusd_evex((p), (u), (s))
#define PAIRS_WIDEN(acc, p) _mm256_add_epi32((acc), (p))
#define PAIRS_DOT(acc, u, s) dpbusd_evex((acc), (u), (s))
#include "int8_x86.h"

// AVX-VNNI (VEX-encoded): the same instruction for CPUs without AVX-512
#define KERNEL_ISA VNNI_VEX
#define KERNEL(name) name##_avxvnni
#define PAIRS_ADD(p, u, s) dpbusd_vex((p), (u), (s))
#define PAIRS_WIDEN(acc, p) _mm256_add_epi32((acc), (p))
#define PAIRS_DOT(acc, u, s) dpbusd_vex((acc), (u), (s))
#include "int8_x86.h"

void bonsai_register_vnni_kernels(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT],
                                  bonsai_gemm4x4_fn gemm4x4[BONSAI_TYPE_COUNT],
                                  bonsai_gemm_unpacked_fn gemm[BONSAI_UNPACKED_KINDS], bool evex) {
    if (evex) register_int8_avx512vnni(dot, dot4, gemm4x4, gemm);
    else register_int8_avxvnni(dot, dot4, gemm4x4, gemm);
}
#endif
