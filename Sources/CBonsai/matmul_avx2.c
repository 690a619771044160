// matmul_avx2.c — the AVX2 level: int8_x86.h's kernels compiled for AVX2 (every quantized type's dot
// products, and the prompt kernels), the activation packing for the prompt kernels, and the row
// dequantization for the backward pass.
#include "bonsai.h"
#include "simd.h"
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__)
#include "x86_common.h"

// ------------------------------------------------------------------------------- int8_x86.h at AVX2
#include "int8_avx2_level.h"
#define KERNEL(name) name##_avx2
#include "int8_x86.h"

// bonsai_pack_act8x32 in AVX2, bit-identical to the portable loop (same products, amax, 1/d, and
// round-to-nearest-even conversion): each token's 32 bytes in element order, then an 8 × 8 transpose of
// dwords puts token c's bytes 4j..4j+3 in lane c of qs[j].
AVX2 void bonsai_pack_act8x32_avx2(const float *x, int64_t xs, int64_t n, bonsai_act8x32_block *dst) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < n / BONSAI_QK; b++) {
        __m256i tok[8];
        for (int c = 0; c < 8; c++) {
            const float *p = x + c * xs + b * BONSAI_QK;
            __m256 v[4];
            for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(p + 8 * i);
            __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                     _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_movehdup_ps(h));
            const float d = _mm_cvtss_f32(h) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            const __m256 vid = _mm256_set1_ps(id);
            __m256i q[4];
            for (int i = 0; i < 4; i++) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], vid));
            const int sum_lo = hsum_epi32(_mm256_add_epi32(q[0], q[1]));
            const int sum = sum_lo + hsum_epi32(_mm256_add_epi32(q[2], q[3]));
            const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            tok[c] = _mm256_permutevar8x32_epi32(bytes, order);
            dst[b].d[c] = d;
            dst[b].s[c] = d * (float)sum;
            dst[b].s_lo[c] = d * (float)sum_lo;
        }
        __m256i t[8], u[8];
        for (int i = 0; i < 4; i++) {
            t[2 * i] = _mm256_unpacklo_epi32(tok[2 * i], tok[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_epi32(tok[2 * i], tok[2 * i + 1]);
        }
        for (int i = 0; i < 2; i++) {   // i = 0: tokens 0..3, i = 1: tokens 4..7
            u[4 * i + 0] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
        }
        for (int j = 0; j < 4; j++) {
            _mm256_storeu_si256((__m256i *)dst[b].qs[j], _mm256_permute2x128_si256(u[j], u[4 + j], 0x20));
            _mm256_storeu_si256((__m256i *)dst[b].qs[j + 4], _mm256_permute2x128_si256(u[j], u[4 + j], 0x31));
        }
    }
}

void bonsai_register_avx2_kernels(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT],
                                  bonsai_act_layout acts[BONSAI_TYPE_COUNT], bonsai_gemm4x4_fn gemm4x4[BONSAI_TYPE_COUNT],
                                  bonsai_gemm_unpacked_fn gemm[BONSAI_UNPACKED_KINDS]) {
    register_int8_avx2(dot, dot4, gemm4x4, gemm);
    acts[BONSAI_TYPE_Q4_0] = (bonsai_act_layout){bonsai_q4_0_act_size, bonsai_q4_0_act_make};
    acts[BONSAI_TYPE_Q5_0] = acts[BONSAI_TYPE_Q4_0];   // the same elements in the same order: int8_x86.h
    acts[BONSAI_TYPE_Q4_1] = (bonsai_act_layout){bonsai_q4_0_act_size, bonsai_q4_1_act_make};
    acts[BONSAI_TYPE_Q5_1] = acts[BONSAI_TYPE_Q4_1];
    acts[BONSAI_TYPE_IQ4_NL] = acts[BONSAI_TYPE_Q4_0];   // q4_0's block layout, nibbles picking levels
}

// ---------------------------------------------------------------------------- dequantization
// For the backward pass's weight tiles. The same float operations as quants.c's reference (one int→float
// conversion and one multiply per element; no FMA), so the results are bit-identical to it.
#define AVX2_NOFMA __attribute__((target("avx2,f16c")))

AVX2_NOFMA static void dequant_q4_0_avx2(const void *src, float *y, int64_t n) {
    const block_q4_0 *x = src;
    const __m256i eight = _mm256_set1_epi32(8);
    for (int64_t i = 0; i < n / BONSAI_QK; i++, y += BONSAI_QK) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d));
        const __m128i qs = _mm_loadu_si128((const __m128i *)x[i].qs);
        const __m128i lo = _mm_and_si128(qs, _mm_set1_epi8(0x0f)), hi = _mm_and_si128(_mm_srli_epi16(qs, 4), _mm_set1_epi8(0x0f));
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int p = 0; p < 4; p++) {
            const __m256i q = _mm256_sub_epi32(_mm256_cvtepu8_epi32(parts[p]), eight);
            _mm256_storeu_ps(y + 8 * p, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

AVX2_NOFMA static void dequant_q8_0_avx2(const void *src, float *y, int64_t n) {
    const block_q8_0 *x = src;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, y += BONSAI_QK) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d));
        for (int p = 0; p < 4; p++) {
            const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 8 * p)));
            _mm256_storeu_ps(y + 8 * p, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

void bonsai_register_avx2_dequant(bonsai_dequant_fn table[BONSAI_TYPE_COUNT]) {
    table[BONSAI_TYPE_Q4_0] = dequant_q4_0_avx2;
    table[BONSAI_TYPE_Q8_0] = dequant_q8_0_avx2;
}
#endif   // __x86_64__
