// matmul_vnni.c — the prompt kernels over unpacked weights with VNNI's dpbusd (u8 × s8, four products summed
// into each i32 lane in one instruction), where AVX2 needs maddubs + madd: AVX512-VNNI with AVX512-VL
// (its 256-bit form; Ice Lake, Sapphire Rapids, Zen 4) and AVX-VNNI (Alder Lake and later). The kernels
// are gemm_unpacked_x86.h's, so their outputs are bit-identical to the AVX2 ones.
//
// No CPU here has VNNI: tools/cross_check builds this file with BONSAI_VNNI_EMULATED, which takes dpbusd
// from SIMDe's portable implementation (Debian: libsimde-dev) and lets cpu.c choose these kernels on an
// AVX2 CPU, and requires every matmul output to equal the AVX2 build's bit for bit. Never defined in the
// package build. Generation's dots stay AVX2: they wait on memory, not on multiplies.
#include "bonsai.h"
#include "simd.h"
#include <string.h>

#if defined(__x86_64__)
#ifdef BONSAI_VNNI_EMULATED
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512/dpbusd.h>   // compiled with -mavx2 so that __m256i is SIMDe's vector type
#define dpbusd_evex(acc, u, s) simde_mm256_dpbusd_epi32((acc), (u), (s))
#define dpbusd_vex(acc, u, s) simde_mm256_dpbusd_epi32((acc), (u), (s))
#define VNNI_EVEX __attribute__((target("avx2,fma,f16c")))
#define VNNI_VEX __attribute__((target("avx2,fma,f16c")))
#else
#include <immintrin.h>
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
#include "gemm_unpacked_x86.h"

// AVX-VNNI (VEX-encoded): the same instruction for CPUs without AVX-512
#define KERNEL_ISA VNNI_VEX
#define KERNEL(name) name##_avxvnni
#define PAIRS_ADD(p, u, s) dpbusd_vex((p), (u), (s))
#define PAIRS_WIDEN(acc, p) _mm256_add_epi32((acc), (p))
#define PAIRS_DOT(acc, u, s) dpbusd_vex((acc), (u), (s))
#include "gemm_unpacked_x86.h"

void bonsai_register_vnni_gemm_unpacked(bonsai_gemm_unpacked_fn table[BONSAI_UNPACKED_KINDS], bool evex) {
    table[BONSAI_UNPACKED_U8] = evex ? gemm_u8_avx512vnni : gemm_u8_avxvnni;
    table[BONSAI_UNPACKED_U8_HALVES] = evex ? gemm_u8h_avx512vnni : gemm_u8h_avxvnni;
    table[BONSAI_UNPACKED_S8] = evex ? gemm_s8_avx512vnni : gemm_s8_avxvnni;
}
#endif
