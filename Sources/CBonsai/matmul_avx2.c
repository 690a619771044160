// matmul_avx2.c — int8 dot products of quantized weight rows with quantized activation rows (AVX2).
//
// Each kernel computes what bonsai_vec_dot_ref computes (dequantize both, multiply, sum) with integer
// products: maddubs (u8 × s8 → pairs in i16), madd (i16 → i32, folding in a sub-block scale where the
// type has one), and one float multiply per block by the two block scales. Tested against the reference.
// q4_0's and q8_0's dots and the prompt kernels are int8_x86.h's, compiled here at the AVX2 level.
#include "bonsai.h"
#include "simd.h"
#include "kscales.h"
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__)
#include "x86_common.h"

AVX2 static inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

// 16 bytes of packed nibbles → 32 bytes: the low nibbles (elements 0..15), then the high ones (16..31).
AVX2 static inline __m256i nibbles32(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
}

// ------------------------------------------------------------------------------- q4_K · q8_K
// A 256-block is 8 sub-blocks of 32 with 6-bit scale sc and min m:
//   sum = d·dy · Σ_s sc_s Σ q·y  −  dmin·dy · Σ_s m_s Σ y
// madd by the broadcast scale folds sc_s in, so the block accumulates exactly in i32.

// The 12 bytes of a q4_K/q5_K block's 6-bit scales and mins → sc[0..7] in i16 lanes 0..7 and m[0..7] in
// lanes 8..15 (decoded by words, not per sub-block: scalar decoding was half of the kernel's operations).
AVX2 static inline __m256i k4_scales_mins(const uint8_t scales[12]) {
    uint32_t w[4];
    bonsai_k4_scale_words(scales, w);
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)w));
}

// One 256-block of q4_K or q5_K against q8_K: isum = Σ_s sc_s Σ q y (i32 lanes) and msum = Σ_s m_s Σ y
// (i32 lanes). q5_K's fifth bit comes from qh: bit 2j of qh[l] tops element l of sub-block 2j (the low
// nibbles), bit 2j+1 that of sub-block 2j+1; qh NULL (q4_K) compiles the bit away. q ≤ 31: |pair| ≤ 2·31·127
// fits i16. Each sub-block's scale is spread over the i16 lanes by a byte shuffle of the decoded scales.
AVX2 static inline void k4_block(const uint8_t scales[12], const uint8_t *q, const uint8_t *qh, const block_q8_K *y,
                                 __m256i *isum_out, __m128i *msum_out) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    const __m256i sm = k4_scales_mins(scales);
    const __m256i sc = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));   // sc[0..7] in both halves
    const __m256i hbits = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    __m256i isum = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {   // 64 elements: 32 low nibbles (sub-block 2j), 32 high (2j+1)
        const __m256i qb = _mm256_loadu_si256((const __m256i *)(q + 32 * j));
        __m256i lo = _mm256_and_si256(qb, low4), hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), low4);
        if (qh) {
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one), 4));
        }
        const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(y->qs + 64 * j)));
        const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y->qs + 64 * j + 32)));
        const __m256i slo = _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)(0x0101 * (4 * j) + 0x0100)));
        const __m256i shi = _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)(0x0101 * (4 * j + 2) + 0x0100)));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(plo, slo));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(phi, shi));
    }
    // Σ_s m_s (bsums[2s] + bsums[2s+1]): the 16 sums added pairwise (|pair| ≤ 32·128), times m
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    *isum_out = isum;
    *msum_out = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), pairs);
}

// q4_K and q5_K rows: d, dmin and scales sit at the same offsets; qh_off < 0 (q4_K) has no fifth bit.
// A row's running sums; one block's step; the result. The one-row and four-row dots share them, so a row
// gets the same result from either.
typedef struct { __m256 acc; __m128 mins; } k4_sums;

AVX2 static inline void k4_step(k4_sums *s, const char *blk, size_t block_bytes, size_t qs_off, long qh_off,
                             const block_q8_K *y) {
    for (size_t l = 0; l < block_bytes; l += 64) _mm_prefetch(blk + PREFETCH_BYTES + l, _MM_HINT_T0);
    const block_q4_K *hdr = (const block_q4_K *)blk;
    __m256i isum;
    __m128i msum;
    k4_block(hdr->scales, (const uint8_t *)blk + qs_off, qh_off >= 0 ? (const uint8_t *)blk + qh_off : NULL, y, &isum, &msum);
    s->acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(hdr->d) * y->d), _mm256_cvtepi32_ps(isum), s->acc);
    s->mins = _mm_fmadd_ps(_mm_set1_ps(h2f(hdr->dmin) * y->d), _mm_cvtepi32_ps(msum), s->mins);
}

AVX2 static inline float k4_result(k4_sums s) {
    const __m128 m = _mm_add_ps(s.mins, _mm_movehl_ps(s.mins, s.mins));
    return hsum_ps(s.acc) - _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)));
}

AVX2 static inline float dot_k4_q8_K(int64_t n, const void *w, size_t block_bytes, size_t qs_off, long qh_off, const void *a) {
    const block_q8_K *y = a;
    k4_sums s = {_mm256_setzero_ps(), _mm_setzero_ps()};
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) k4_step(&s, (const char *)w + i * block_bytes, block_bytes, qs_off, qh_off, &y[i]);
    return k4_result(s);
}

AVX2 static inline void dot4_k4_q8_K(int64_t n, const void *w, size_t w_stride, size_t block_bytes, size_t qs_off, long qh_off,
                                     const void *a, float out[4]) {
    const block_q8_K *y = a;
    k4_sums s[4];
    for (int r = 0; r < 4; r++) s[r] = (k4_sums){_mm256_setzero_ps(), _mm_setzero_ps()};
    for (int64_t i = 0; i < n / BONSAI_QKK; i++)
        for (int r = 0; r < 4; r++)
            k4_step(&s[r], (const char *)w + (size_t)r * w_stride + i * block_bytes, block_bytes, qs_off, qh_off, &y[i]);
    for (int r = 0; r < 4; r++) out[r] = k4_result(s[r]);
}

AVX2 static float dot_q4_K_q8_K(int64_t n, const void *w, const void *a) {
    return dot_k4_q8_K(n, w, sizeof(block_q4_K), offsetof(block_q4_K, qs), -1, a);
}

AVX2 static float dot_q5_K_q8_K(int64_t n, const void *w, const void *a) {
    return dot_k4_q8_K(n, w, sizeof(block_q5_K), offsetof(block_q5_K, qs), (long)offsetof(block_q5_K, qh), a);
}

AVX2 static void dot4_q4_K_q8_K(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {
    dot4_k4_q8_K(n, w, w_stride, sizeof(block_q4_K), offsetof(block_q4_K, qs), -1, a, out);
}

AVX2 static void dot4_q5_K_q8_K(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {
    dot4_k4_q8_K(n, w, w_stride, sizeof(block_q5_K), offsetof(block_q5_K, qs), (long)offsetof(block_q5_K, qh), a, out);
}

// ------------------------------------------------------------------------- q4_1, q5_0, q5_1
// 32 bits of qh → 32 bytes, 0x10 where element i's bit is set.
AVX2 static inline __m256i high_bits32(const uint8_t qh[4]) {
    uint32_t bits;
    memcpy(&bits, qh, 4);
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i mask = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, mask), mask), _mm256_set1_epi8(0x10));
}

// Σ q y over one block as i32 lanes, q unsigned (u8) and y the activation bytes.
AVX2 static inline __m256 block_sum(__m256i q, const int8_t *ys) {
    const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)ys));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

// q5_0: (q − 16) with q = nibble | high bit · 16; Σ (q − 16) y = Σ q y − 16 Σ y.
AVX2 static float dot_q5_0_q8_0(int64_t n, const void *w, const void *a) {
    const block_q5_0 *x = w;
    const block_q8_0 *y = a;
    const __m256i sixteen = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / BONSAI_QK; i++) {
        _mm_prefetch((const char *)(x + i) + PREFETCH_BYTES, _MM_HINT_T0);
        const __m256i q = _mm256_or_si256(nibbles32(x[i].qs), high_bits32(x[i].qh));
        const __m256 s = _mm256_sub_ps(block_sum(q, y[i].qs), block_sum(sixteen, y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), s, acc);
    }
    return hsum_ps(acc);
}

// q4_1 / q5_1: d q + m;  Σ (d q + m)(dy y) = d dy Σ q y + m dy Σ y. Σ y is summed from the bytes rather than
// taken from q8_1's f16 s (llama.cpp's shortcut), which would round it to 11 bits. One body for both: q5_1's
// fifth bit comes from qh (qh_off < 0 for q4_1 compiles it away); d and m sit at the same offsets.
AVX2 static inline float dot_x1_q8_1(int64_t n, const void *w, size_t block_bytes, size_t qs_off, long qh_off, const void *a) {
    const block_q8_1 *y = a;
    const __m256i ones = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / BONSAI_QK; i++) {
        const char *blk = (const char *)w + i * block_bytes;
        const block_q4_1 *hdr = (const block_q4_1 *)blk;
        _mm_prefetch(blk + PREFETCH_BYTES, _MM_HINT_T0);
        const float dy = h2f(y[i].d);
        __m256i q = nibbles32((const uint8_t *)blk + qs_off);
        if (qh_off >= 0) q = _mm256_or_si256(q, high_bits32((const uint8_t *)blk + qh_off));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(hdr->d) * dy), block_sum(q, y[i].qs), acc);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(hdr->m) * dy), block_sum(ones, y[i].qs), acc);
    }
    return hsum_ps(acc);
}

AVX2 static float dot_q4_1_q8_1(int64_t n, const void *w, const void *a) {
    return dot_x1_q8_1(n, w, sizeof(block_q4_1), offsetof(block_q4_1, qs), -1, a);
}

AVX2 static float dot_q5_1_q8_1(int64_t n, const void *w, const void *a) {
    return dot_x1_q8_1(n, w, sizeof(block_q5_1), offsetof(block_q5_1, qs), (long)offsetof(block_q5_1, qh), a);
}

// ------------------------------------------------------------------------------- q6_K · q8_K
// 256-block = 16 sub-blocks of 16 with int8 scales; q in 0..63 stands for q − 32:
//   sum = d·dy · (Σ_s sc_s Σ q·y − 32 Σ_s sc_s Σ y)
// One block: Σ_s sc_s Σ q·y − 32 Σ_s sc_s Σ y as i32 lanes.
AVX2 static inline __m256i q6_block(const block_q6_K *x, const block_q8_K *y) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
    const uint8_t *ql = x->ql, *qh = x->qh;
    const int8_t *sc = x->scales, *q8 = y->qs;
    // The 16 scales as i16 (sc[0..7] | sc[8..15]); each chunk's 8 in both halves, spread per group by a
    // byte shuffle (building each group's pair from scalars cost 7 operations per 32 elements).
    const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
    const __m256i chunk_sc[2] = {_mm256_permute2x128_si256(s16, s16, 0x00), _mm256_permute2x128_si256(s16, s16, 0x11)};
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 2; c++) {   // two chunks of 128: four groups of 32 elements each
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)(ql + 64 * c));
        const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 64 * c + 32));
        const __m256i h = _mm256_loadu_si256((const __m256i *)(qh + 32 * c));
        __m256i g[4];
        // the two high bits of element group k sit at bits 2k, 2k+1 of h's bytes: shifted to bits 4, 5
        // (16-bit shifts: whatever crosses between bytes is masked off)
        g[0] = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), bits45));
        g[1] = _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(h, 2), bits45));
        g[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(h, bits45));
        g[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4), _mm256_and_si256(_mm256_srli_epi16(h, 2), bits45));
        for (int k = 0; k < 4; k++) {
            const int G = 4 * c + k;   // elements 32G .. 32G+31, scales sc[2G] (first 16), sc[2G+1]
            const __m256i p = _mm256_maddubs_epi16(g[k], _mm256_loadu_si256((const __m256i *)(q8 + 32 * G)));
            const __m256i s = _mm256_shuffle_epi8(chunk_sc[c], _mm256_set_m128i(_mm_set1_epi16((short)(0x0202 * (2 * k + 1) + 0x0100)),
                                                                               _mm_set1_epi16((short)(0x0202 * (2 * k) + 0x0100))));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, s));
        }
    }
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, s16), 5);   // 32 Σ sc·Σy
    return _mm256_sub_epi32(isum, corr);
}

AVX2 static inline __m256 q6_step(__m256 acc, const block_q6_K *x, const block_q8_K *y) {
    for (int l = 0; l < (int)sizeof(block_q6_K); l += 64) _mm_prefetch((const char *)x + PREFETCH_BYTES + l, _MM_HINT_T0);
    return _mm256_fmadd_ps(_mm256_set1_ps(h2f(x->d) * y->d), _mm256_cvtepi32_ps(q6_block(x, y)), acc);
}

AVX2 static float dot_q6_K_q8_K(int64_t n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) acc = q6_step(acc, &x[i], &y[i]);
    return hsum_ps(acc);
}

AVX2 static void dot4_q6_K_q8_K(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {
    const block_q8_K *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / BONSAI_QKK; i++)
        for (int r = 0; r < 4; r++) acc[r] = q6_step(acc[r], (const block_q6_K *)((const char *)w + (size_t)r * w_stride) + i, &y[i]);
    for (int r = 0; r < 4; r++) out[r] = hsum_ps(acc[r]);
}

// ------------------------------------------------------------------------------- int8_x86.h at AVX2
// AVX2 sums u8 × s8 products by pairs in i16 (maddubs), which stays exact within each kernel's bound, and
// widens them to i32 (madd with ones); VNNI does both in one instruction (matmul_vnni.c).
#define KERNEL_ISA AVX2
#define KERNEL(name) name##_avx2
#define PAIRS_ADD(p, u, s) _mm256_add_epi16((p), _mm256_maddubs_epi16((u), (s)))
#define PAIRS_WIDEN(acc, p) _mm256_add_epi32((acc), _mm256_madd_epi16((p), _mm256_set1_epi16(1)))
#define PAIRS_DOT(acc, u, s) PAIRS_WIDEN((acc), _mm256_maddubs_epi16((u), (s)))
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
    dot4[BONSAI_TYPE_Q4_K] = dot4_q4_K_q8_K;
    dot4[BONSAI_TYPE_Q5_K] = dot4_q5_K_q8_K;
    dot4[BONSAI_TYPE_Q6_K] = dot4_q6_K_q8_K;
    dot[BONSAI_TYPE_Q4_K] = dot_q4_K_q8_K;
    dot[BONSAI_TYPE_Q6_K] = dot_q6_K_q8_K;
    dot[BONSAI_TYPE_Q5_K] = dot_q5_K_q8_K;
    dot[BONSAI_TYPE_Q5_0] = dot_q5_0_q8_0;
    dot[BONSAI_TYPE_Q4_1] = dot_q4_1_q8_1;
    dot[BONSAI_TYPE_Q5_1] = dot_q5_1_q8_1;
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
