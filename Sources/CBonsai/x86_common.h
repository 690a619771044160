// x86_common.h — internal: the x86 helpers cpu.c and the int8 kernels of every level share (matmul_avx2.c,
// matmul_vnni.c): AVX/AVX2 helpers, which inline into any wider target, and the parts of the
// generation dots (q4_0/q5_0/q4_1/q5_1, K types) that do no u8 × s8 products.
#ifndef BONSAI_X86_COMMON_H
#define BONSAI_X86_COMMON_H
#include "bonsai.h"
#include "simd.h"
#include "kscales.h"
#include "iq4.h"
#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// How far ahead of the current block the decode kernels prefetch weight rows. Each thread's rows are
// contiguous, so this runs ahead into the next rows too. Generation on the full-size q4_0 file, 1 thread:
// 4.7-4.9 tokens/s at 768 bytes, 6.3-6.6 at 3072, lower again at 6144.
enum { PREFETCH_BYTES = 3072 };

// The cache lines of `bytes` bytes of weights from blk, PREFETCH_BYTES ahead.
AVX2 static inline void prefetch_block(const void *blk, size_t bytes) {
    for (size_t l = 0; l < bytes; l += 64) _mm_prefetch((const char *)blk + PREFETCH_BYTES + l, _MM_HINT_T0);
}

// The sum and the maximum of 8 lanes (halves, then pairs, then the last two). AVX only, so that they
// inline into every AVX2 function whatever else its target has.
__attribute__((target("avx"))) static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx"))) static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

// The sum of 4 or 8 i32 lanes (exact while it fits).
AVX2 static inline int hsum_epi32_128(__m128i s) {
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

AVX2 static inline int hsum_epi32(__m256i v) {
    return hsum_epi32_128(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

// iq4_nl's and iq4_xs's 16 levels in both 128-bit lanes: vpshufb with a vector of nibbles gives the
// signed levels they pick (int8_x86.h).
AVX2 static inline __m256i iq4_table(void) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)bonsai_iq4_levels));
}

// iq4_xs's 8 sub-block scales (−32 … 31) as i16, in both 128-bit lanes. Lane i's 4 low bits are the low
// (i even) or high nibble of scales_l[i / 2], its 2 high bits bits 2i, 2i + 1 of scales_h: AVX2 has no
// per-lane 16-bit shifts, so each lane multiplies by its own power of two and all shift alike.
AVX2 static inline __m256i iq4_xs_scales(const block_iq4_xs *x) {
    uint32_t l;
    memcpy(&l, x->scales_l, 4);
    const __m128i bytes = _mm_shuffle_epi8(_mm_cvtsi32_si128((int)l), _mm_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2, -1, 3, -1, 3, -1));
    const __m128i lo = _mm_and_si128(_mm_srli_epi16(_mm_mullo_epi16(bytes, _mm_setr_epi16(16, 1, 16, 1, 16, 1, 16, 1)), 4), _mm_set1_epi16(0x0f));
    const __m128i hi = _mm_srli_epi16(_mm_mullo_epi16(_mm_set1_epi16((short)x->scales_h),
                                                      _mm_setr_epi16(1 << 14, 1 << 12, 1 << 10, 1 << 8, 1 << 6, 1 << 4, 1 << 2, 1)), 14);
    return _mm256_broadcastsi128_si256(_mm_sub_epi16(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi16(32)));
}

// q5_0's and q5_1's fifth bits (int8_x86.h): bit l of a block's 32-bit qh tops element l. 0x10 in byte k of the
// result where element k + 16·half is set, for the qh words in the low and high 128 bits of `words`.
AVX2 static inline __m256i x5_bits(__m256i words, int half) {
    const __m256i bytes = half ? _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0303030303030303, 0x0202020202020202)
                               : _mm256_set_epi64x(0x0101010101010101, 0x0000000000000000, 0x0101010101010101, 0x0000000000000000);
    const __m256i spread = _mm256_shuffle_epi8(words, bytes);   // byte k: qh byte k / 8 (+ 2 for the high half)
    const __m256i mask = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, mask), mask), _mm256_set1_epi8(0x10));
}

// q4_0, q5_0, q4_1, q5_1 (int8_x86.h): a row's result from its running sum over groups of 8 blocks (acc)
// and the last partial group x, a of `tail` blocks (block_bytes each; nibbles at qs_off, fifth bits at
// qh_off, min at m_off; -1: none), taken one at a time.
AVX2 static inline float x0_result(__m256 acc, const char *x, size_t block_bytes, size_t qs_off, long qh_off, long m_off,
                                   bool nl, const bonsai_q4_0_act8 *a, int64_t tail) {
    float sum = hsum_ps(acc);
    for (int64_t i = 0; i < tail; i++) {
        const char *blk = x + i * block_bytes;
        const int j = (int)i / 2, h = (int)i % 2, lane = BONSAI_Q4_0_LANE((int)i);
        const __m128i t = _mm_loadu_si128((const __m128i *)(blk + qs_off)), m = _mm_set1_epi8(0x0f);
        __m128i lo = _mm_and_si128(t, m), hi = _mm_and_si128(_mm_srli_epi16(t, 4), m);
        int32_t offset = a->c[lane];   // 8Σy
        if (qh_off >= 0) {
            uint32_t bits;
            memcpy(&bits, blk + qh_off, 4);
            const __m256i words = _mm256_castsi128_si256(_mm_cvtsi32_si128((int)bits));
            lo = _mm_or_si128(lo, _mm256_castsi256_si128(x5_bits(words, 0)));
            hi = _mm_or_si128(hi, _mm256_castsi256_si128(x5_bits(words, 1)));
            offset *= 2;   // 16Σy
        }
        const __m128i yl = _mm_loadu_si128((const __m128i *)(a->lo[j] + 16 * h)), yh = _mm_loadu_si128((const __m128i *)(a->hi[j] + 16 * h));
        int q;
        if (nl) {   // iq4_nl: signed levels, |w| × (y with w's sign), each half widened alone
            const __m128i table = _mm_loadu_si128((const __m128i *)bonsai_iq4_levels);
            const __m128i wl = _mm_shuffle_epi8(table, lo), wh = _mm_shuffle_epi8(table, hi), one = _mm_set1_epi16(1);
            q = hsum_epi32_128(_mm_add_epi32(_mm_madd_epi16(_mm_maddubs_epi16(_mm_sign_epi8(wl, wl), _mm_sign_epi8(yl, wl)), one),
                                             _mm_madd_epi16(_mm_maddubs_epi16(_mm_sign_epi8(wh, wh), _mm_sign_epi8(yh, wh)), one)));
            offset = 0;
        } else {
            q = hsum_epi32_128(_mm_madd_epi16(_mm_add_epi16(_mm_maddubs_epi16(lo, yl), _mm_maddubs_epi16(hi, yh)), _mm_set1_epi16(1)));
        }
        uint16_t d, mn;
        memcpy(&d, blk, 2);
        if (m_off < 0) {
            sum += h2f(d) * a->d[lane] * (float)(q - offset);
        } else {
            memcpy(&mn, blk + m_off, 2);
            sum += h2f(d) * a->d[lane] * (float)q + h2f(mn) * (a->d[lane] * (float)(a->c[lane] / 8));
        }
    }
    return sum;
}

// [p0, p1, p2, p3] (8 × i32 each) → (Σp0, Σp1, Σp2, Σp3)
AVX2 static inline __m128i reduce4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// ------------------------------------------------------------------------------- K types (int8_x86.h)
// The 12 bytes of a q4_K/q5_K block's 6-bit scales and mins → sc[0..7] in i16 lanes 0..7 and m[0..7] in
// lanes 8..15 (decoded by words, not per sub-block: scalar decoding was half of the kernel's operations).
AVX2 static inline __m256i k4_scales_mins(const uint8_t scales[12]) {
    uint32_t w[4];
    bonsai_k4_scale_words(scales, w);
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)w));
}

// The K types with mins, per block: a row's exact sums (Σ sc·Σu·y, Σ m·Σy) times d·dy and dmin·dy (dm: the
// block's f16 d and dmin), added to its running sums; the dot is acc − accm. The four-row form does the
// same per lane, so a row gets the same result from the one-row and the four-row dots.
AVX2 static inline void kmin_accumulate(uint32_t dm, float dy, int sum, int msum, __m128 *acc, __m128 *accm) {
    const __m128 f = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dm)), _mm_set1_ps(dy));   // d·dy, dmin·dy
    *acc = _mm_fmadd_ss(_mm_cvtsi32_ss(_mm_setzero_ps(), sum), f, *acc);
    *accm = _mm_fmadd_ss(_mm_cvtsi32_ss(_mm_setzero_ps(), msum), _mm_movehdup_ps(f), *accm);
}

// isum: row r's scaled sums in i32 lanes 2r, 2r + 1 (as the four-row dots' madds leave them); msums: the
// four rows' min sums.
AVX2 static inline void kmin_accumulate4(const uint32_t dm[4], float dy, __m256i isum, __m128i msums, __m128 *acc,
                                         __m128 *accm) {
    const __m256i h = _mm256_hadd_epi32(isum, isum);   // (r0 r1 r0 r1 | r2 r3 r2 r3)
    const __m128i sums = _mm_unpacklo_epi64(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    // (d0 dmin0 d1 dmin1 | d2 dmin2 d3 dmin3) · dy, then d·dy and dmin·dy of the four rows
    const __m256 f = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dm)), _mm256_set1_ps(dy));
    const __m128 f0 = _mm256_castps256_ps128(f), f1 = _mm256_extractf128_ps(f, 1);
    *acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), _mm_shuffle_ps(f0, f1, _MM_SHUFFLE(2, 0, 2, 0)), *acc);
    *accm = _mm_fmadd_ps(_mm_cvtepi32_ps(msums), _mm_shuffle_ps(f0, f1, _MM_SHUFFLE(3, 1, 3, 1)), *accm);
}

#endif
