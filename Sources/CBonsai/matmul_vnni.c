// matmul_vnni.c — int8_x86.h's kernels (q4_0, q8_0 and K-type dots, q8_0's 4 × 4 and the unpacked prompt
// kernels) with VNNI's dpbusd (u8 × s8, four products summed into each i32 lane in one instruction) where
// AVX2 needs maddubs + madd, and dpwssd (i16 × i16 pairs added to i32 lanes) where the K types' dots fold
// their sub-block scales in with madd + add: AVX512-VNNI with AVX512-VL (its 256-bit form; Ice Lake,
// Sapphire Rapids, Zen 4) and AVX-VNNI (Alder Lake and later). Same source, same i32 sums, same float
// operations: outputs bit-identical to the AVX2 kernels'. With AVX512-VNNI the prompt kernels also come
// 512 bits wide, two sets of 8 tokens at a time (below).
//
// So that CI checks them on any x86 CPU, tools/cross_check builds this file with BONSAI_VNNI_EMULATED, which
// takes dpbusd (and dpwssd) from SIMDe's portable implementation (Debian: libsimde-dev) and lets cpu.c choose
// these kernels on an AVX2 CPU, and requires every matmul output to equal the AVX2 build's bit for bit (on a
// CPU with VNNI, its native kernels' too). Never defined in the package build. Measured on Zen 4 (AVX512-VNNI;
// benchmarks/RESULTS.md runs 22-24); AVX-VNNI's speed is not measured.
#if defined(__x86_64__)
#include "x86_common.h"

#ifdef BONSAI_VNNI_EMULATED
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>   // built with -mavx2: SIMDe's 256-bit type is __m256i itself, its 512-bit one a pair
#define dpbusd_evex(acc, u, s) simde_mm256_dpbusd_epi32((acc), (u), (s))
#define dpbusd_vex(acc, u, s) simde_mm256_dpbusd_epi32((acc), (u), (s))
#define dpwssd_evex(acc, p, s) simde_mm256_dpwssd_epi32((acc), (p), (s))
#define dpwssd_vex(acc, p, s) simde_mm256_dpwssd_epi32((acc), (p), (s))
#define VNNI_EVEX AVX2
#define VNNI_VEX AVX2
#else
#define dpbusd_evex(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#define dpbusd_vex(acc, u, s) _mm256_dpbusd_avx_epi32((acc), (u), (s))
#define dpwssd_evex(acc, p, s) _mm256_dpwssd_epi32((acc), (p), (s))
#define dpwssd_vex(acc, p, s) _mm256_dpwssd_avx_epi32((acc), (p), (s))
#define VNNI_EVEX __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define VNNI_VEX __attribute__((target("avx2,fma,f16c,avxvnni")))
#endif

// AVX512-VNNI (EVEX-encoded, 256 bits wide)
#define KERNEL_ISA VNNI_EVEX
#define KERNEL(name) name##_avx512vnni
#define PAIRS_ADD(p, u, s) dpbusd_evex((p), (u), (s))
#define PAIRS_WIDEN(acc, p) _mm256_add_epi32((acc), (p))
#define PAIRS_DOT(acc, u, s) dpbusd_evex((acc), (u), (s))
#define PAIRS_I32
#define PAIRS_SCALED(acc, p, s) dpwssd_evex((acc), (p), (s))
#define KERNEL_REGS32
#include "int8_x86.h"

// AVX-VNNI (VEX-encoded): the same instruction for CPUs without AVX-512
#define KERNEL_ISA VNNI_VEX
#define KERNEL(name) name##_avxvnni
#define PAIRS_ADD(p, u, s) dpbusd_vex((p), (u), (s))
#define PAIRS_WIDEN(acc, p) _mm256_add_epi32((acc), (p))
#define PAIRS_DOT(acc, u, s) dpbusd_vex((acc), (u), (s))
#define PAIRS_I32
#define PAIRS_SCALED(acc, p, s) dpwssd_vex((acc), (p), (s))
#include "int8_x86.h"

// ------------------------------------------------------------------------------- 512 bits: 4 rows × 16 tokens
// Prompts are bound by the products, so on AVX-512 the unpacked kernels take two sets of 8 tokens per
// instruction: a zmm holds qs[j] of both sets, against the same broadcast of 4 weight bytes. Per lane the
// same i32 sums (exact, in any order) and the same float operations as int8_x86.h's 4 × 8 kernels, so the
// outputs equal two calls of those bit for bit (tools/cross_check, through SIMDe). Zen 4, pp512, 2 threads,
// alternating against the 256-bit kernels alone: q4_K_M 94-97 vs 80-82 tokens/s, q8_0 105 vs 83-86.
VNNI_EVEX static inline __m512i join_i(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
VNNI_EVEX static inline __m512 join_ps(__m256 lo, __m256 hi) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}
VNNI_EVEX static inline __m512 join_f(const float *lo, const float *hi) {   // 8 floats each
    return join_ps(_mm256_loadu_ps(lo), _mm256_loadu_ps(hi));
}
// i32 → f32 per lane (SIMDe has no 512-bit form: the emulated build converts the halves, the same per lane).
VNNI_EVEX static inline __m512 cvt16(__m512i v) {
#ifdef BONSAI_VNNI_EMULATED
    return join_ps(_mm256_cvtepi32_ps(_mm512_castsi512_si256(v)), _mm256_cvtepi32_ps(_mm512_extracti64x4_epi64(v, 1)));
#else
    return _mm512_cvtepi32_ps(v);
#endif
}
// qs[j] of both sets: tokens 0..7, then 8..15.
VNNI_EVEX static inline __m512i acts16(const bonsai_act8x32_block *a0, const bonsai_act8x32_block *a1, int j) {
    return join_i(_mm256_loadu_si256((const __m256i *)a0->qs[j]), _mm256_loadu_si256((const __m256i *)a1->qs[j]));
}
VNNI_EVEX static inline uint32_t bytes4(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

// gemm_u8 (q < 32, w = d·q + m)
VNNI_EVEX static void gemm16_u8_avx512vnni(int64_t nb, const void *wp, const bonsai_act8x32_block *a0,
                                                const bonsai_act8x32_block *a1, float out[4][16]) {
    const bonsai_u8x4_block *w = wp;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        __m512i s[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        for (int j = 0; j < 8; j++) {
            const __m512i x = acts16(&a0[b], &a1[b], j);
            for (int r = 0; r < 4; r++) s[r] = _mm512_dpbusd_epi32(s[r], _mm512_set1_epi32((int)bytes4(w[b].q[r] + 4 * j)), x);
        }
        const __m512 da = join_f(a0[b].d, a1[b].d), sa = join_f(a0[b].s, a1[b].s);
        for (int r = 0; r < 4; r++) {
            const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(w[b].d[r]), da);
            acc[r] = _mm512_fmadd_ps(scale, cvt16(s[r]), acc[r]);
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(w[b].m[r]), sa, acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) _mm512_storeu_ps(out[r], acc[r]);
}

// gemm_u8h (q < 64, a scale and an offset per 16 elements)
VNNI_EVEX static void gemm16_u8h_avx512vnni(int64_t nb, const void *wp, const bonsai_act8x32_block *a0,
                                                 const bonsai_act8x32_block *a1, float out[4][16]) {
    const bonsai_u8x4h_block *w = wp;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        const __m512 da = join_f(a0[b].d, a1[b].d), s_lo = join_f(a0[b].s_lo, a1[b].s_lo);
        const __m512 s_half[2] = {s_lo, _mm512_sub_ps(join_f(a0[b].s, a1[b].s), s_lo)};
        for (int half = 0; half < 2; half++) {
            __m512i s[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
            for (int j = 4 * half; j < 4 * half + 4; j++) {
                const __m512i x = acts16(&a0[b], &a1[b], j);
                for (int r = 0; r < 4; r++) s[r] = _mm512_dpbusd_epi32(s[r], _mm512_set1_epi32((int)bytes4(w[b].q[r] + 4 * j)), x);
            }
            for (int r = 0; r < 4; r++) {
                const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(w[b].d[half][r]), da);
                acc[r] = _mm512_fmadd_ps(scale, cvt16(s[r]), acc[r]);
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(w[b].m[half][r]), s_half[half], acc[r]);
            }
        }
    }
    for (int r = 0; r < 4; r++) _mm512_storeu_ps(out[r], acc[r]);
}

// gemm_s8 (q8_0), as int8_x86.h's VNNI levels do it (there is no 512-bit sign_epi8 anyway): the
// activations offset by 128 (a xor of the top bit) times q as it is, less 128·Σq.
VNNI_EVEX static void gemm16_s8_avx512vnni(int64_t nb, const void *wp, const bonsai_act8x32_block *a0,
                                                const bonsai_act8x32_block *a1, float out[4][16]) {
    const bonsai_s8x4_block *w = wp;
    const __m512i top = _mm512_set1_epi8((char)0x80);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        __m512i s[4];
        for (int r = 0; r < 4; r++) s[r] = _mm512_set1_epi32(-128 * w[b].qsum[r]);
        for (int j = 0; j < 8; j++) {
            const __m512i x = _mm512_xor_si512(acts16(&a0[b], &a1[b], j), top);
            for (int r = 0; r < 4; r++)
                s[r] = _mm512_dpbusd_epi32(s[r], x, _mm512_set1_epi32((int)bytes4((const uint8_t *)w[b].q[r] + 4 * j)));
        }
        const __m512 da = join_f(a0[b].d, a1[b].d);
        for (int r = 0; r < 4; r++)
            acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(w[b].d[r]), da), cvt16(s[r]), acc[r]);
    }
    for (int r = 0; r < 4; r++) _mm512_storeu_ps(out[r], acc[r]);
}

void bonsai_register_vnni_kernels(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT],
                                  bonsai_gemm4x4_fn gemm4x4[BONSAI_TYPE_COUNT],
                                  bonsai_gemm_unpacked_fn gemm[BONSAI_UNPACKED_KINDS],
                                  bonsai_gemm_unpacked16_fn gemm16[BONSAI_UNPACKED_KINDS], bool evex) {
    if (evex) {
        register_int8_avx512vnni(dot, dot4, gemm4x4, gemm);
        gemm16[BONSAI_UNPACKED_U8] = gemm16_u8_avx512vnni;
        gemm16[BONSAI_UNPACKED_U8_HALVES] = gemm16_u8h_avx512vnni;
        gemm16[BONSAI_UNPACKED_S8] = gemm16_s8_avx512vnni;
    } else {
        register_int8_avxvnni(dot, dot4, gemm4x4, gemm);
    }
}
#endif
