// float_dots.c — generation's products on unquantized weights: f16 and bf16 rows · f32 activations.
//
// Each weight converts exactly to f32 (f16 by F16C or NEON's conversion, bf16 as the top half of an f32)
// and is multiplied and summed in f32: the math of the f32 path (dequantize the row, then dot) without
// writing the converted row out and reading it back, and inside bonsai_matmul_batch, whose 4-row dots
// stream four rows a quarter of the matrix apart. One body serves the one-row and four-row dots: per row
// two 8-lane sums, added in the same order, so a row gets the same result from either. On x86 also the
// rows' conversion for the prompt and training tiles (bit-identical to quants.c's: the conversion is exact).
// Tested against bonsai_vec_dot_ref (KernelTests) and through MatmulBatchTests.
#include "bonsai.h"
#include "simd.h"

// f16's and bf16's dot and four-row dot over this architecture's dot_rows, for target attribute isa.
#define FLOAT_DOTS(isa, arch)                                                                                   \
    isa static float dot_f16_##arch(int64_t n, const void *w, const void *a) {                                  \
        float out;                                                                                              \
        dot_rows(1, n, w, 0, a, false, &out);                                                                   \
        return out;                                                                                             \
    }                                                                                                           \
    isa static void dot4_f16_##arch(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {   \
        dot_rows(4, n, w, w_stride / sizeof(uint16_t), a, false, out);                                          \
    }                                                                                                           \
    isa static float dot_bf16_##arch(int64_t n, const void *w, const void *a) {                                 \
        float out;                                                                                              \
        dot_rows(1, n, w, 0, a, true, &out);                                                                    \
        return out;                                                                                             \
    }                                                                                                           \
    isa static void dot4_bf16_##arch(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {  \
        dot_rows(4, n, w, w_stride / sizeof(uint16_t), a, true, out);                                           \
    }                                                                                                           \
    static void register_float_dots(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT]) { \
        dot[BONSAI_TYPE_F16] = dot_f16_##arch;                                                                  \
        dot4[BONSAI_TYPE_F16] = dot4_f16_##arch;                                                                \
        dot[BONSAI_TYPE_BF16] = dot_bf16_##arch;                                                                \
        dot4[BONSAI_TYPE_BF16] = dot4_bf16_##arch;                                                              \
    }

#if defined(__x86_64__)
#include "x86_common.h"

// 8 weights → f32
AVX2 static inline __m256 load8(const uint16_t *w, bool bf16) {
    const __m128i h = _mm_loadu_si128((const __m128i *)w);
    return bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
}

// nr (1 or 4) rows of n weights, `stride` elements apart, · x.
AVX2 static inline __attribute__((always_inline)) void dot_rows(int nr, int64_t n, const uint16_t *w, size_t stride,
                                                                const float *x, bool bf16, float *out) {
    __m256 a0[4], a1[4];
    for (int r = 0; r < nr; r++) a0[r] = a1[r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {   // a cache line of each row
        __m256 xv[4];
        for (int k = 0; k < 4; k++) xv[k] = _mm256_loadu_ps(x + i + 8 * k);
        for (int r = 0; r < nr; r++) {
            const uint16_t *p = w + (size_t)r * stride + i;
            _mm_prefetch((const char *)p + PREFETCH_BYTES, _MM_HINT_T0);
            a0[r] = _mm256_fmadd_ps(load8(p, bf16), xv[0], a0[r]);
            a1[r] = _mm256_fmadd_ps(load8(p + 8, bf16), xv[1], a1[r]);
            a0[r] = _mm256_fmadd_ps(load8(p + 16, bf16), xv[2], a0[r]);
            a1[r] = _mm256_fmadd_ps(load8(p + 24, bf16), xv[3], a1[r]);
        }
    }
    for (; i + 8 <= n; i += 8)
        for (int r = 0; r < nr; r++) a0[r] = _mm256_fmadd_ps(load8(w + (size_t)r * stride + i, bf16), _mm256_loadu_ps(x + i), a0[r]);
    for (int r = 0; r < nr; r++) {
        float s = hsum_ps(_mm256_add_ps(a0[r], a1[r]));
        for (int64_t j = i; j < n; j++) {
            const uint16_t v = w[(size_t)r * stride + j];
            s += (bf16 ? bonsai_bf16_to_f32(v) : bonsai_f16_to_f32(v)) * x[j];
        }
        out[r] = s;
    }
}

FLOAT_DOTS(AVX2, avx2)

AVX2 static inline __attribute__((always_inline)) void convert_row(const void *src, float *y, int64_t n, bool bf16) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load8(x + i, bf16));
    for (; i < n; i++) y[i] = bf16 ? bonsai_bf16_to_f32(x[i]) : bonsai_f16_to_f32(x[i]);
}

AVX2 static void dequant_f16_avx2(const void *src, float *y, int64_t n) { convert_row(src, y, n, false); }
AVX2 static void dequant_bf16_avx2(const void *src, float *y, int64_t n) { convert_row(src, y, n, true); }

void bonsai_register_float_dots_avx2(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT],
                                     bonsai_dequant_fn dequant[BONSAI_TYPE_COUNT]) {
    register_float_dots(dot, dot4);
    dequant[BONSAI_TYPE_F16] = dequant_f16_avx2;
    dequant[BONSAI_TYPE_BF16] = dequant_bf16_avx2;
}

#elif defined(__aarch64__)
#include <arm_neon.h>

// 4 weights → f32
static inline float32x4_t load4(const uint16_t *w, bool bf16) {
    const uint16x4_t h = vld1_u16(w);
    return bf16 ? vreinterpretq_f32_u32(vshll_n_u16(h, 16)) : vcvt_f32_f16(vreinterpret_f16_u16(h));
}

// As the x86 body, 4 lanes wide: per row two pairs of 4-lane sums.
static inline __attribute__((always_inline)) void dot_rows(int nr, int64_t n, const uint16_t *w, size_t stride,
                                                           const float *x, bool bf16, float *out) {
    float32x4_t a0[4], a1[4];
    for (int r = 0; r < nr; r++) a0[r] = a1[r] = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float32x4_t xv[4];
        for (int k = 0; k < 4; k++) xv[k] = vld1q_f32(x + i + 4 * k);
        for (int r = 0; r < nr; r++) {
            const uint16_t *p = w + (size_t)r * stride + i;
            a0[r] = vfmaq_f32(a0[r], load4(p, bf16), xv[0]);
            a1[r] = vfmaq_f32(a1[r], load4(p + 4, bf16), xv[1]);
            a0[r] = vfmaq_f32(a0[r], load4(p + 8, bf16), xv[2]);
            a1[r] = vfmaq_f32(a1[r], load4(p + 12, bf16), xv[3]);
        }
    }
    for (; i + 4 <= n; i += 4)
        for (int r = 0; r < nr; r++) a0[r] = vfmaq_f32(a0[r], load4(w + (size_t)r * stride + i, bf16), vld1q_f32(x + i));
    for (int r = 0; r < nr; r++) {
        float s = vaddvq_f32(vaddq_f32(a0[r], a1[r]));
        for (int64_t j = i; j < n; j++) {
            const uint16_t v = w[(size_t)r * stride + j];
            s += (bf16 ? bonsai_bf16_to_f32(v) : bonsai_f16_to_f32(v)) * x[j];
        }
        out[r] = s;
    }
}

FLOAT_DOTS(, neon)

void bonsai_register_float_dots_neon(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT]) {
    register_float_dots(dot, dot4);
}
#endif
