// unpacked.c — the prompt kernel's operands: weights unpacked to bytes, activations of 8 tokens interleaved.
//
// Every 32-granular weight type (q4_0, q4_1, q5_0, q5_1, and q4_K/q5_K, whose sub-blocks are 32 wide)
// is w = d·q + m per 32 elements, with q an unsigned integer of 4 or 5 bits; the other K types (q2_K,
// q3_K, q6_K) are the same per 16 elements with q of 2, 3 or 6 bits. Unpacked to one byte per element,
// with d and m as floats, each family shares one kernel; the unpacking (nibbles, high bits, 6-bit
// K scales, f16 → f32) is done once per 4 rows for a whole group of tokens instead of once per
// (row, token) pair, which is what made the per-type kernels slow (pp512 on q4_0: 19 → 32 tokens/s).
// q8_0 is w = d·q with q signed and 8 bits wide: its bytes are kept as they are, for a kernel of its own,
// with what that kernel needs beside them (bonsai_s8x4_block); iq4_nl and iq4_xs unpack to the same kind,
// their nibbles replaced by the signed levels they pick.
// Tested through bonsai_matmul against the same computation in double (UnpackedMatmulTests).
#include "simd.h"
#include "kscales.h"
#include "iq4.h"
#include "half.h"
#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define F16(x) bonsai_half(x)

// ------------------------------------------------------------------ weights: row r of 4 → u8x4 blocks
// The loops work on local copies: source and destination are both bytes, so the compiler could not
// vectorize them in place (they might alias).

// 16 bytes of nibbles → elements 0..15 (low nibbles), 16..31 (high).
static inline void nibbles(const uint8_t src[16], uint8_t out[32]) {
    uint8_t in[16], q[32];
    memcpy(in, src, 16);
    for (int j = 0; j < 16; j++) { q[j] = in[j] & 0x0f; q[j + 16] = in[j] >> 4; }
    memcpy(out, q, 32);
}

static void unpack_q4_0(const void *row, int64_t n, void *out, int r) {
    bonsai_u8x4_block *dst = out;
    const block_q4_0 *x = row;
    for (int64_t b = 0; b < n / BONSAI_QK; b++) {
        nibbles(x[b].qs, dst[b].q[r]);
        dst[b].d[r] = F16(x[b].d);
        dst[b].m[r] = -8.0f * dst[b].d[r];
    }
}

static void unpack_q4_1(const void *row, int64_t n, void *out, int r) {
    bonsai_u8x4_block *dst = out;
    const block_q4_1 *x = row;
    for (int64_t b = 0; b < n / BONSAI_QK; b++) {
        nibbles(x[b].qs, dst[b].q[r]);
        dst[b].d[r] = F16(x[b].d);
        dst[b].m[r] = F16(x[b].m);
    }
}

// q5_0/q5_1: bit j of qh is element j's fifth bit (j < 32).
static inline void five_bits(const uint8_t qs[16], const uint8_t qh[4], uint8_t out[32]) {
    uint32_t h;
    memcpy(&h, qh, 4);
    uint8_t q[32];
    nibbles(qs, q);
    for (int j = 0; j < 32; j++) q[j] |= (uint8_t)(((h >> j) & 1) << 4);
    memcpy(out, q, 32);
}

static void unpack_q5_0(const void *row, int64_t n, void *out, int r) {
    bonsai_u8x4_block *dst = out;
    const block_q5_0 *x = row;
    for (int64_t b = 0; b < n / BONSAI_QK; b++) {
        five_bits(x[b].qs, x[b].qh, dst[b].q[r]);
        dst[b].d[r] = F16(x[b].d);
        dst[b].m[r] = -16.0f * dst[b].d[r];
    }
}

static void unpack_q5_1(const void *row, int64_t n, void *out, int r) {
    bonsai_u8x4_block *dst = out;
    const block_q5_1 *x = row;
    for (int64_t b = 0; b < n / BONSAI_QK; b++) {
        five_bits(x[b].qs, x[b].qh, dst[b].q[r]);
        dst[b].d[r] = F16(x[b].d);
        dst[b].m[r] = F16(x[b].m);
    }
}

// q4_K/q5_K: sub-block j (32 elements) is d·sc_j·q − dmin·m_j. qh (q5_K) holds sub-block j's fifth bits
// in bit j of each of its 32 bytes.
static void unpack_k4(const uint8_t *scales, float d, float dmin, const uint8_t *qs, const uint8_t *qh,
                      bonsai_u8x4_block *dst, int r) {
    uint8_t sc[8], mn[8];
    bonsai_k4_scales(scales, sc, mn);
    for (int j = 0; j < 8; j++) {
        uint8_t q[32], h[32] = {0};
        memcpy(q, qs + 32 * (j / 2), 32);
        if (qh) memcpy(h, qh, 32);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)(((q[l] >> shift) & 0x0f) | (((h[l] >> j) & 1) << 4));
        memcpy(dst[j].q[r], q, 32);
        dst[j].d[r] = d * (float)sc[j];
        dst[j].m[r] = -(dmin * (float)mn[j]);
    }
}

static void unpack_q4_K(const void *row, int64_t n, void *out, int r) {
    bonsai_u8x4_block *dst = out;
    const block_q4_K *x = row;
    for (int64_t b = 0; b < n / BONSAI_QKK; b++)
        unpack_k4(x[b].scales, F16(x[b].d), F16(x[b].dmin), x[b].qs, NULL, dst + 8 * b, r);
}

static void unpack_q5_K(const void *row, int64_t n, void *out, int r) {
    bonsai_u8x4_block *dst = out;
    const block_q5_K *x = row;
    for (int64_t b = 0; b < n / BONSAI_QKK; b++)
        unpack_k4(x[b].scales, F16(x[b].d), F16(x[b].dmin), x[b].qs, x[b].qh, dst + 8 * b, r);
}

// The 16-granular K types: sub-block pairs (16 elements each) fill one 32-element block's two halves.

// q6_K: in each 128-element half of a super-block, 32-element block p takes its low 4 bits from ql
// (bytes 0..31 or 32..63, low or high nibble) and its top 2 bits from qh (bits 2p, 2p+1);
// w = d·sc·(q − 32), q < 64.
static void unpack_q6_K(const void *row, int64_t n, void *out, int r) {
    const block_q6_K *x = row;
    bonsai_u8x4h_block *dst = out;
    for (int64_t b = 0; b < n / BONSAI_QKK; b++) {
        const float d = F16(x[b].d);
        for (int j = 0; j < 8; j++, dst++) {
            const int half = j / 4, p = j % 4;
            uint8_t lo[32], hi[32], q[32];
            memcpy(lo, x[b].ql + 64 * half + 32 * (p % 2), 32);
            memcpy(hi, x[b].qh + 32 * half, 32);
            const int nib = 4 * (p / 2), hs = 2 * p;
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(((lo[l] >> nib) & 0x0f) | (((hi[l] >> hs) & 3) << 4));
            memcpy(dst->q[r], q, 32);
            for (int h = 0; h < 2; h++) {
                dst->d[h][r] = d * (float)x[b].scales[8 * half + 2 * p + h];
                dst->m[h][r] = -32.0f * dst->d[h][r];
            }
        }
    }
}

// q3_K: in each 128-element half, block j (0..3) is bits 2j..2j+1 of qs[0..31] with the high bit from
// hmask bit 4·half + j; w = d·(sc − 32)·(q − 4), q < 8, with sixteen 6-bit scales packed in 12 bytes.
static void unpack_q3_K(const void *row, int64_t n, void *out, int r) {
    const block_q3_K *x = row;
    bonsai_u8x4h_block *dst = out;
    for (int64_t b = 0; b < n / BONSAI_QKK; b++) {
        const float d = F16(x[b].d);
        int8_t sc[16];
        bonsai_q3_K_scales(x[b].scales, sc);
        uint8_t hm[32];
        memcpy(hm, x[b].hmask, 32);
        for (int j = 0; j < 8; j++, dst++) {
            const int half = j / 4, shift = 2 * (j % 4), hbit = j;
            uint8_t lo[32], q[32];
            memcpy(lo, x[b].qs + 32 * half, 32);
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(((lo[l] >> shift) & 3) | (((hm[l] >> hbit) & 1) << 2));
            memcpy(dst->q[r], q, 32);
            for (int h = 0; h < 2; h++) {
                dst->d[h][r] = d * (float)(sc[2 * j + h] - 32);
                dst->m[h][r] = -4.0f * dst->d[h][r];
            }
        }
    }
}

// q2_K: as q3_K without the high bit; each 16-element sub-block has a 4-bit scale and a 4-bit min:
// w = d·(sc & 15)·q − dmin·(sc >> 4), q < 4.
static void unpack_q2_K(const void *row, int64_t n, void *out, int r) {
    const block_q2_K *x = row;
    bonsai_u8x4h_block *dst = out;
    for (int64_t b = 0; b < n / BONSAI_QKK; b++) {
        const float d = F16(x[b].d), dmin = F16(x[b].dmin);
        for (int j = 0; j < 8; j++, dst++) {
            const int half = j / 4, shift = 2 * (j % 4);
            uint8_t lo[32], q[32];
            memcpy(lo, x[b].qs + 32 * half, 32);
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)((lo[l] >> shift) & 3);
            memcpy(dst->q[r], q, 32);
            for (int h = 0; h < 2; h++) {
                const uint8_t sc = x[b].scales[2 * j + h];
                dst->d[h][r] = d * (float)(sc & 0xf);
                dst->m[h][r] = -(dmin * (float)(sc >> 4));
            }
        }
    }
}

// Σ of 32 signed bytes. Written as a loop, the compiler made it 32 scalar sign extensions through the
// stack, and unpacking became 43% of a 13-token q8_0 prompt (this file builds for the baseline ISA, not
// per level); SSE2's sum of absolute differences does it on (q + 128) as unsigned bytes.
static inline int32_t byte_sum(const int8_t q[BONSAI_QK]) {
#if defined(__SSE2__)
    const __m128i bias = _mm_set1_epi8((char)0x80), zero = _mm_setzero_si128();
    const __m128i s = _mm_add_epi64(_mm_sad_epu8(_mm_xor_si128(_mm_loadu_si128((const __m128i *)q), bias), zero),
                                    _mm_sad_epu8(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(q + 16)), bias), zero));
    return _mm_cvtsi128_si32(_mm_add_epi64(s, _mm_unpackhi_epi64(s, s))) - 128 * BONSAI_QK;
#else
    int32_t sum = 0;
    for (int k = 0; k < BONSAI_QK; k++) sum += q[k];
    return sum;
#endif
}

// The signed types (S8): q8_0's bytes as they are, and iq4_nl's and iq4_xs's levels (the values their
// nibbles pick, −127 … 113), with what this CPU's kernel reads beside them: their magnitudes (-128 → 128)
// or their sum. Unpacking is the first read of each weight row in a prompt, so it waits on memory;
// filling both for every level cost the time of the one not read.
bonsai_s8_extras bonsai_s8_unpack_extras;

static inline __attribute__((always_inline)) void put_s8(bonsai_s8x4_block *dst, int r, const int8_t q[BONSAI_QK], float d,
                                                         bonsai_s8_extras extras) {
    memcpy(dst->q[r], q, BONSAI_QK);
    dst->d[r] = d;
    if (extras == BONSAI_S8_MAGNITUDES) {
        uint8_t a[BONSAI_QK];
        for (int k = 0; k < BONSAI_QK; k++) a[k] = (uint8_t)(q[k] < 0 ? -q[k] : q[k]);
        memcpy(dst->absq[r], a, BONSAI_QK);
    } else if (extras == BONSAI_S8_SUMS) {
        dst->qsum[r] = byte_sum(q);
    }
}

static inline __attribute__((always_inline)) void unpack_q8_0_with(const void *row, int64_t n, void *out, int r,
                                                                     bonsai_s8_extras extras) {
    bonsai_s8x4_block *dst = out;
    const block_q8_0 *x = row;
    for (int64_t b = 0; b < n / BONSAI_QK; b++) {
        int8_t q[BONSAI_QK];
        memcpy(q, x[b].qs, BONSAI_QK);
        put_s8(dst + b, r, q, F16(x[b].d), extras);
    }
}

// 16 bytes of nibbles → the levels of elements 0..15 (low nibbles) and 16..31 (high).
static inline void iq4_block_levels(const uint8_t qs[16], int8_t q[BONSAI_QK]) {
    for (int j = 0; j < 16; j++) {
        q[j] = bonsai_iq4_levels[qs[j] & 0x0f];
        q[j + 16] = bonsai_iq4_levels[qs[j] >> 4];
    }
}

static inline __attribute__((always_inline)) void unpack_iq4_nl_with(const void *row, int64_t n, void *out, int r,
                                                                       bonsai_s8_extras extras) {
    bonsai_s8x4_block *dst = out;
    const block_iq4_nl *x = row;
    for (int64_t b = 0; b < n / BONSAI_QK; b++) {
        int8_t q[BONSAI_QK];
        iq4_block_levels(x[b].qs, q);
        put_s8(dst + b, r, q, F16(x[b].d), extras);
    }
}

// iq4_xs: sub-block j's scale is d·sc_j.
static inline __attribute__((always_inline)) void unpack_iq4_xs_with(const void *row, int64_t n, void *out, int r,
                                                                       bonsai_s8_extras extras) {
    bonsai_s8x4_block *dst = out;
    const block_iq4_xs *x = row;
    for (int64_t b = 0; b < n / BONSAI_QKK; b++) {
        const float d = F16(x[b].d);
        for (int j = 0; j < 8; j++) {
            int8_t q[BONSAI_QK];
            iq4_block_levels(x[b].qs + 16 * j, q);
            put_s8(dst + 8 * b + j, r, q, d * (float)iq4_xs_scale(&x[b], j), extras);
        }
    }
}

// One loop per case of extras.
#define S8_UNPACKER(type)                                                                                            \
    static void unpack_##type(const void *row, int64_t n, void *out, int r) {                                       \
        switch (bonsai_s8_unpack_extras) {                                                                          \
        case BONSAI_S8_MAGNITUDES: unpack_##type##_with(row, n, out, r, BONSAI_S8_MAGNITUDES); break;              \
        case BONSAI_S8_SUMS: unpack_##type##_with(row, n, out, r, BONSAI_S8_SUMS); break;                          \
        case BONSAI_S8_PLAIN: unpack_##type##_with(row, n, out, r, BONSAI_S8_PLAIN); break;                        \
        }                                                                                                           \
    }
S8_UNPACKER(q8_0)
S8_UNPACKER(iq4_nl)
S8_UNPACKER(iq4_xs)

const bonsai_unpacker bonsai_unpack[BONSAI_TYPE_COUNT] = {
    [BONSAI_TYPE_Q4_0] = {unpack_q4_0, BONSAI_UNPACKED_U8}, [BONSAI_TYPE_Q4_1] = {unpack_q4_1, BONSAI_UNPACKED_U8},
    [BONSAI_TYPE_Q5_0] = {unpack_q5_0, BONSAI_UNPACKED_U8}, [BONSAI_TYPE_Q5_1] = {unpack_q5_1, BONSAI_UNPACKED_U8},
    [BONSAI_TYPE_Q4_K] = {unpack_q4_K, BONSAI_UNPACKED_U8}, [BONSAI_TYPE_Q5_K] = {unpack_q5_K, BONSAI_UNPACKED_U8},
    [BONSAI_TYPE_Q2_K] = {unpack_q2_K, BONSAI_UNPACKED_U8_HALVES},
    [BONSAI_TYPE_Q3_K] = {unpack_q3_K, BONSAI_UNPACKED_U8_HALVES},
    [BONSAI_TYPE_Q6_K] = {unpack_q6_K, BONSAI_UNPACKED_U8_HALVES},
    [BONSAI_TYPE_Q8_0] = {unpack_q8_0, BONSAI_UNPACKED_S8},
    [BONSAI_TYPE_IQ4_NL] = {unpack_iq4_nl, BONSAI_UNPACKED_S8}, [BONSAI_TYPE_IQ4_XS] = {unpack_iq4_xs, BONSAI_UNPACKED_S8},
};

const size_t bonsai_unpacked_block_size[BONSAI_UNPACKED_KINDS] = {
    [BONSAI_UNPACKED_U8] = sizeof(bonsai_u8x4_block),
    [BONSAI_UNPACKED_U8_HALVES] = sizeof(bonsai_u8x4h_block),
    [BONSAI_UNPACKED_S8] = sizeof(bonsai_s8x4_block),
};

// ------------------------------------------------------------------ activations: 8 tokens → act8x32 blocks
// Per token and 32 elements: d = amax / 127, q = x / d rounded to nearest (ties to even, which vectorizes;
// ggml's q8_0 rounds ties away from zero), d kept in f32.
bonsai_pack_act8x32_fn bonsai_pack_act8x32_kernel;

void bonsai_pack_act8x32(const float *x, int64_t xs, int64_t n, bonsai_act8x32_block *dst) {
    if (bonsai_pack_act8x32_kernel) { bonsai_pack_act8x32_kernel(x, xs, n, dst); return; }
    for (int64_t b = 0; b < n / BONSAI_QK; b++) {
        for (int c = 0; c < 8; c++) {
            float v[BONSAI_QK];
            memcpy(v, x + c * xs + b * BONSAI_QK, sizeof v);
            float amax = 0.0f;
            for (int k = 0; k < BONSAI_QK; k++) amax = amax > fabsf(v[k]) ? amax : fabsf(v[k]);
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            int32_t q[BONSAI_QK];
            int sum = 0, sum_lo = 0;
            for (int k = 0; k < BONSAI_QK; k++) { q[k] = (int32_t)nearbyintf(v[k] * id); sum += q[k]; }
            for (int k = 0; k < BONSAI_QK / 2; k++) sum_lo += q[k];
            for (int k = 0; k < BONSAI_QK; k++) dst[b].qs[k / 4][4 * c + k % 4] = (int8_t)q[k];
            dst[b].d[c] = d;
            dst[b].s[c] = d * (float)sum;
            dst[b].s_lo[c] = d * (float)sum_lo;
        }
    }
}

bonsai_gemm_unpacked_fn bonsai_gemm_unpacked[BONSAI_UNPACKED_KINDS];   // set by cpu.c (matmul_avx2.c, matmul_neon.c)
bonsai_gemm_unpacked16_fn bonsai_gemm_unpacked16[BONSAI_UNPACKED_KINDS];   // set by cpu.c (matmul_vnni.c)
