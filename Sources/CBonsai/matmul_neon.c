// matmul_neon.c — int8 dot products of quantized weight rows with quantized activation rows (arm64 NEON).
//
// The same contract as matmul_avx2.c: each kernel computes what bonsai_vec_dot_ref computes, with exact
// integer products summed per block and one float multiply per block scale product. The dots use
// baseline ARMv8 NEON only (vmull_s8 + pairwise adds), so every arm64 CPU runs them; the prompt kernels
// come twice, baseline and with ARMv8.2's SDOT, chosen at run time (BONSAI_NO_SDOT=1 forces baseline).
// Tested against the reference by tools/cross_check (arm64 under qemu-user with and without SDOT, in CI
// through CrossArchTests) — correctness only: no arm64 machine was at hand to time them.
#include "bonsai.h"
#include "simd.h"
#include "kscales.h"
#include "iq4.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/auxv.h>
#include <asm/hwcap.h>
#endif

// acc + Σ a·y over 16 signed bytes each, in 4 i32 lanes: |a·y| ≤ 128·127 fits i16; the pairs widen into i32.
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t y) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(y)));
    return vpadalq_s16(acc, vmull_high_s8(a, y));
}

// Σ a·y over 32 elements: a as two vectors of 16 signed bytes, y 32 activation bytes.
static inline int32x4_t dot32(int8x16_t a0, int8x16_t a1, const int8_t *y) {
    return dot16(dot16(vdupq_n_s32(0), a0, vld1q_s8(y)), a1, vld1q_s8(y + 16));
}

// q8_0 · q8_0
static float dot_q8_0_q8_0_neon(int64_t n, const void *w, const void *a) {
    const block_q8_0 *x = w;
    const block_q8_0 *y = a;
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / BONSAI_QK; i++) {
        const int32x4_t s = dot32(vld1q_s8(x[i].qs), vld1q_s8(x[i].qs + 16), y[i].qs);
        const float d = bonsai_f16_to_f32(x[i].d) * bonsai_f16_to_f32(y[i].d);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(s), d);
    }
    return vaddvq_f32(acc);
}

// q6_K · q8_K: in each 128-element half, element l (< 32) of each quarter k takes 4 low bits from ql
// (bytes l or l+32, low or high nibble) and 2 high bits from qh[l] (bits 2k, 2k+1); q − 32 as signed
// bytes; each 16 elements have their own signed scale.
static float dot_q6_K_q8_K_neon(int64_t n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    const uint8x16_t low4 = vdupq_n_u8(0x0f), three = vdupq_n_u8(3);
    const int8x16_t bias = vdupq_n_s8(32);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        int32_t isum = 0;
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = x[i].ql + 64 * half, *qh = x[i].qh + 32 * half;
            const int8_t *ys = y[i].qs + 128 * half, *sc = x[i].scales + 8 * half;
            for (int c = 0; c < 2; c++) {   // elements l = 16c .. 16c+15 of each quarter
                const uint8x16_t l0 = vld1q_u8(ql + 16 * c), l1 = vld1q_u8(ql + 32 + 16 * c), h = vld1q_u8(qh + 16 * c);
                const uint8x16_t q[4] = {
                    vorrq_u8(vandq_u8(l0, low4), vshlq_n_u8(vandq_u8(h, three), 4)),
                    vorrq_u8(vandq_u8(l1, low4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), three), 4)),
                    vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), three), 4)),
                    vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4)),
                };
                for (int k = 0; k < 4; k++) {
                    const int8x16_t s = vsubq_s8(vreinterpretq_s8_u8(q[k]), bias);
                    isum += sc[2 * k + c] * vaddvq_s32(dot16(vdupq_n_s32(0), s, vld1q_s8(ys + 32 * k + 16 * c)));
                }
            }
        }
        sum += bonsai_f16_to_f32(x[i].d) * y[i].d * (float)isum;
    }
    return sum;
}

// Bit `from` of each byte moved to bit `to`, the rest cleared: ((v >> from) & 1) << to (the high bits of
// q5_K and q3_K, which sit one bit-plane per sub-block).
static inline uint8x16_t move_bit(uint8x16_t v, int from, int to) {
    return vandq_u8(vshlq_u8(v, vdupq_n_s8((int8_t)(to - from))), vdupq_n_u8((uint8_t)(1u << to)));
}

// The fifth bits of q5_0/q5_1: bit l of qh (l < 32) → 16 in byte l of two vectors (elements 0..15, 16..31).
static inline void fifth_bits(const uint8_t qh[4], uint8x16_t out[2]) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t mask = vld1q_u8(bit), sixteen = vdupq_n_u8(16);
    for (int h = 0; h < 2; h++) {
        const uint8x16_t bytes = vcombine_u8(vdup_n_u8(qh[2 * h]), vdup_n_u8(qh[2 * h + 1]));
        out[h] = vandq_u8(vtstq_u8(bytes, mask), sixteen);
    }
}

// A 32-element block's q as unsigned bytes: elements 0..15 (low nibbles of qs) and 16..31 (high), with
// the fifth bits of qh on top where qh is not NULL (q5_0, q5_1).
static inline void block_q_bytes(const uint8_t qs[16], const uint8_t *qh, uint8x16_t out[2]) {
    const uint8x16_t q = vld1q_u8(qs);
    out[0] = vandq_u8(q, vdupq_n_u8(0x0f));
    out[1] = vshrq_n_u8(q, 4);
    if (qh) {
        uint8x16_t h[2];
        fifth_bits(qh, h);
        out[0] = vorrq_u8(out[0], h[0]);
        out[1] = vorrq_u8(out[1], h[1]);
    }
}

// q4_0 / q5_0 · q8_0: w = d·(q − 8) with q a nibble (low nibbles are elements 0..15, high ones 16..31), or
// w = d·(q − 16) with q5_0's fifth bit on top (five = false compiles it away); d sits at offset 0 of both.
static inline __attribute__((always_inline)) float dot_x0_q8_0(int64_t n, const void *w, size_t stride,
                                                               size_t qs_off, bool five, const void *a) {
    const block_q8_0 *y = a;
    const int8x16_t offset = vdupq_n_s8(five ? 16 : 8);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / BONSAI_QK; i++) {
        const char *blk = (const char *)w + (size_t)i * stride;
        uint8x16_t q[2];
        block_q_bytes((const uint8_t *)blk + qs_off, five ? ((const block_q5_0 *)blk)->qh : NULL, q);
        const int8x16_t l = vsubq_s8(vreinterpretq_s8_u8(q[0]), offset), u = vsubq_s8(vreinterpretq_s8_u8(q[1]), offset);
        const float d = bonsai_f16_to_f32(((const block_q4_0 *)blk)->d) * bonsai_f16_to_f32(y[i].d);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(dot32(l, u, y[i].qs)), d);
    }
    return vaddvq_f32(acc);
}

static float dot_q4_0_q8_0_neon(int64_t n, const void *w, const void *a) {
    return dot_x0_q8_0(n, w, sizeof(block_q4_0), offsetof(block_q4_0, qs), false, a);
}

static float dot_q5_0_q8_0_neon(int64_t n, const void *w, const void *a) {
    return dot_x0_q8_0(n, w, sizeof(block_q5_0), offsetof(block_q5_0, qs), true, a);
}

// q4_1 / q5_1 · q8_1: w = d·q + m, so Σ w·a = d·d_a·Σ q·q_a + m·d_a·Σ q_a. Σ q_a is summed from the bytes,
// as the AVX2 kernel does, not taken from q8_1's f16 s (rounded to 11 bits). One body for both: d and m
// sit at the same offsets, q5_1 adds qh (five = false compiles it away).
static inline __attribute__((always_inline)) float dot_x1_q8_1(int64_t n, const void *w, size_t stride,
                                                               size_t qs_off, bool five, const void *a) {
    const block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / BONSAI_QK; i++) {
        const char *blk = (const char *)w + (size_t)i * stride;
        const block_q4_1 *hdr = (const block_q4_1 *)blk;   // d, m
        uint8x16_t q[2];
        block_q_bytes((const uint8_t *)blk + qs_off, five ? ((const block_q5_1 *)blk)->qh : NULL, q);
        const int32x4_t s = dot32(vreinterpretq_s8_u8(q[0]), vreinterpretq_s8_u8(q[1]), y[i].qs);
        const int32_t ysum = vaddlvq_s8(vld1q_s8(y[i].qs)) + vaddlvq_s8(vld1q_s8(y[i].qs + 16));
        const float dy = bonsai_f16_to_f32(y[i].d);
        sum += bonsai_f16_to_f32(hdr->d) * dy * (float)vaddvq_s32(s) + bonsai_f16_to_f32(hdr->m) * dy * (float)ysum;
    }
    return sum;
}

static float dot_q4_1_q8_1_neon(int64_t n, const void *w, const void *a) {
    return dot_x1_q8_1(n, w, sizeof(block_q4_1), offsetof(block_q4_1, qs), false, a);
}

static float dot_q5_1_q8_1_neon(int64_t n, const void *w, const void *a) {
    return dot_x1_q8_1(n, w, sizeof(block_q5_1), offsetof(block_q5_1, qs), true, a);
}

// q4_K / q5_K · q8_K: per 256-block, Σ_s sc_s Σ q·y in i32 (exact), less Σ_s m_s Σ y from the activation's
// 16-element sums; then d·dy and dmin·dy once per block. q5_K adds qh, whose bit j of byte l is element l
// of sub-block j's fifth bit (five = false compiles it away). d, dmin and scales sit at the same offsets.
static inline __attribute__((always_inline)) float dot_k4_q8_K(int64_t n, const void *w, size_t stride,
                                                               size_t qs_off, bool five, const void *a) {
    const block_q8_K *y = a;
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const char *blk = (const char *)w + (size_t)i * stride;
        const block_q4_K *hdr = (const block_q4_K *)blk;   // d, dmin, scales
        const uint8_t *qs = (const uint8_t *)blk + qs_off;
        uint8_t sc[8], m[8];
        bonsai_k4_scales(hdr->scales, sc, m);
        int32_t msum = 0;
        for (int j = 0; j < 8; j++) msum += m[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        uint8x16_t h0 = vdupq_n_u8(0), h1 = vdupq_n_u8(0);
        if (five) { h0 = vld1q_u8(((const block_q5_K *)blk)->qh); h1 = vld1q_u8(((const block_q5_K *)blk)->qh + 16); }
        int32x4_t isum = vdupq_n_s32(0);
        for (int j = 0; j < 4; j++) {   // 64 elements: 32 low nibbles (sub-block 2j), 32 high (2j+1)
            const uint8x16_t q0 = vld1q_u8(qs + 32 * j), q1 = vld1q_u8(qs + 32 * j + 16);
            uint8x16_t l0 = vandq_u8(q0, low4), l1 = vandq_u8(q1, low4), u0 = vshrq_n_u8(q0, 4), u1 = vshrq_n_u8(q1, 4);
            if (five) {   // the fifth bits: bit 2j of qh for the low nibbles, 2j + 1 for the high
                l0 = vorrq_u8(l0, move_bit(h0, 2 * j, 4));
                l1 = vorrq_u8(l1, move_bit(h1, 2 * j, 4));
                u0 = vorrq_u8(u0, move_bit(h0, 2 * j + 1, 4));
                u1 = vorrq_u8(u1, move_bit(h1, 2 * j + 1, 4));
            }
            const int32x4_t lo = dot32(vreinterpretq_s8_u8(l0), vreinterpretq_s8_u8(l1), y[i].qs + 64 * j);
            const int32x4_t hi = dot32(vreinterpretq_s8_u8(u0), vreinterpretq_s8_u8(u1), y[i].qs + 64 * j + 32);
            isum = vmlaq_n_s32(isum, lo, sc[2 * j]);
            isum = vmlaq_n_s32(isum, hi, sc[2 * j + 1]);
        }
        sum += bonsai_f16_to_f32(hdr->d) * y[i].d * (float)vaddvq_s32(isum)
             - bonsai_f16_to_f32(hdr->dmin) * y[i].d * (float)msum;
    }
    return sum;
}

static float dot_q4_K_q8_K_neon(int64_t n, const void *w, const void *a) {
    return dot_k4_q8_K(n, w, sizeof(block_q4_K), offsetof(block_q4_K, qs), false, a);
}

static float dot_q5_K_q8_K_neon(int64_t n, const void *w, const void *a) {
    return dot_k4_q8_K(n, w, sizeof(block_q5_K), offsetof(block_q5_K, qs), true, a);
}

// q2_K · q8_K: in each 128-element half, quarter k (32 elements) is bits 2k..2k+1 of qs[0..31]; each 16
// elements have a 4-bit scale (low) and a 4-bit min (high): w = d·sc·q − dmin·m.
static float dot_q2_K_q8_K_neon(int64_t n, const void *w, const void *a) {
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    const uint8x16_t three = vdupq_n_u8(3);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 16; j++) msum += (x[i].scales[j] >> 4) * y[i].bsums[j];
        for (int half = 0; half < 2; half++) {
            const uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * half), q1 = vld1q_u8(x[i].qs + 32 * half + 16);
            for (int k = 0; k < 4; k++) {
                const int8x16_t shift = vdupq_n_s8((int8_t)(-2 * k));
                const int8x16_t v0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, shift), three));
                const int8x16_t v1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, shift), three));
                const int8_t *ys = y[i].qs + 128 * half + 32 * k;
                const uint8_t *sc = x[i].scales + 8 * half + 2 * k;
                isum += (sc[0] & 15) * vaddvq_s32(dot16(vdupq_n_s32(0), v0, vld1q_s8(ys)));
                isum += (sc[1] & 15) * vaddvq_s32(dot16(vdupq_n_s32(0), v1, vld1q_s8(ys + 16)));
            }
        }
        sum += bonsai_f16_to_f32(x[i].d) * y[i].d * (float)isum - bonsai_f16_to_f32(x[i].dmin) * y[i].d * (float)msum;
    }
    return sum;
}

// q3_K · q8_K: q2_K's 2 low bits plus a high bit from hmask (bit 4·half + k of byte l); w = d·(sc − 32)·(q − 4).
static float dot_q3_K_q8_K_neon(int64_t n, const void *w, const void *a) {
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    const uint8x16_t three = vdupq_n_u8(3);
    const int8x16_t four = vdupq_n_s8(4);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        int8_t sc[16];
        bonsai_q3_K_scales(x[i].scales, sc);
        const uint8x16_t m0 = vld1q_u8(x[i].hmask), m1 = vld1q_u8(x[i].hmask + 16);
        int32_t isum = 0;
        for (int half = 0; half < 2; half++) {
            const uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * half), q1 = vld1q_u8(x[i].qs + 32 * half + 16);
            for (int k = 0; k < 4; k++) {
                const int8x16_t shift = vdupq_n_s8((int8_t)(-2 * k));
                const uint8x16_t h0 = move_bit(m0, 4 * half + k, 2), h1 = move_bit(m1, 4 * half + k, 2);
                const int8x16_t v0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(vshlq_u8(q0, shift), three), h0)), four);
                const int8x16_t v1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(vshlq_u8(q1, shift), three), h1)), four);
                const int8_t *ys = y[i].qs + 128 * half + 32 * k;
                const int j = 8 * half + 2 * k;
                isum += (sc[j] - 32) * vaddvq_s32(dot16(vdupq_n_s32(0), v0, vld1q_s8(ys)));
                isum += (sc[j + 1] - 32) * vaddvq_s32(dot16(vdupq_n_s32(0), v1, vld1q_s8(ys + 16)));
            }
        }
        sum += bonsai_f16_to_f32(x[i].d) * y[i].d * (float)isum;
    }
    return sum;
}

// iq4_nl / iq4_xs: 32 elements from 16 bytes of nibbles, the levels they pick (a table lookup): elements
// 0..15 from the low nibbles, 16..31 from the high ones.
static inline void iq4_levels(const uint8_t qs[16], int8x16_t out[2]) {
    const int8x16_t levels = vld1q_s8(bonsai_iq4_levels);
    const uint8x16_t q = vld1q_u8(qs);
    out[0] = vqtbl1q_s8(levels, vandq_u8(q, vdupq_n_u8(0x0f)));
    out[1] = vqtbl1q_s8(levels, vshrq_n_u8(q, 4));
}

// iq4_nl · q8_0: w = d·level.
static float dot_iq4_nl_q8_0_neon(int64_t n, const void *w, const void *a) {
    const block_iq4_nl *x = w;
    const block_q8_0 *y = a;
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / BONSAI_QK; i++) {
        int8x16_t l[2];
        iq4_levels(x[i].qs, l);
        const float d = bonsai_f16_to_f32(x[i].d) * bonsai_f16_to_f32(y[i].d);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(dot32(l[0], l[1], y[i].qs)), d);
    }
    return vaddvq_f32(acc);
}

// iq4_xs · q8_K: w = d·sc·level, a scale −32 … 31 per 32 elements; Σ_s sc_s Σ level·y exact in i32.
static float dot_iq4_xs_q8_K_neon(int64_t n, const void *w, const void *a) {
    const block_iq4_xs *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        int32_t isum = 0;
        for (int j = 0; j < 8; j++) {
            int8x16_t l[2];
            iq4_levels(x[i].qs + 16 * j, l);
            isum += iq4_xs_scale(&x[i], j) * vaddvq_s32(dot32(l[0], l[1], y[i].qs + 32 * j));
        }
        sum += bonsai_f16_to_f32(x[i].d) * y[i].d * (float)isum;
    }
    return sum;
}

// ------------------------------------------------------------------ prompts: 4 unpacked rows × 8 tokens
// The operands of unpacked.c: qs[j] holds elements 4j..4j+3 of tokens 0..7, 4 bytes each; a weight row's
// 4 bytes repeated across 16 bytes meet tokens 0..3 (the first 16 bytes of qs[j]) and 4..7 (the rest).
// Every kind's bytes are signed 8-bit values as NEON multiplies them: q < 64 for U8 and U8_HALVES, q8_0's
// own for S8 (no sign trick: NEON multiplies signed by signed).

// isum[r][h] += Σ_{j0 ≤ j < j1} row r's q · x over elements 4j..4j+3, for tokens 4h..4h+3 (one per lane).
typedef void (*sums_fn)(const uint8_t q[4][32], const int8_t qs[8][32], int j0, int j1, int32x4_t isum[4][2]);

// Baseline: byte products widened to i16 (|q·x| ≤ 128·127), pairs added into i32: lanes (t, e0+e1),
// (t, e2+e3), (t+1, …); one pairwise add per 4 tokens at the end gives one lane per token.
static inline void sums_mull(const uint8_t q[4][32], const int8_t qs[8][32], int j0, int j1, int32x4_t isum[4][2]) {
    int32x4_t p[4][4];
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 4; k++) p[r][k] = vdupq_n_s32(0);
    for (int j = j0; j < j1; j++) {
        const int8x16_t x0 = vld1q_s8(qs[j]), x1 = vld1q_s8(qs[j] + 16);
        for (int r = 0; r < 4; r++) {
            uint32_t q4;
            memcpy(&q4, q[r] + 4 * j, 4);
            const int8x16_t w = vreinterpretq_s8_u32(vdupq_n_u32(q4));
            p[r][0] = vpadalq_s16(p[r][0], vmull_s8(vget_low_s8(x0), vget_low_s8(w)));
            p[r][1] = vpadalq_s16(p[r][1], vmull_high_s8(x0, w));
            p[r][2] = vpadalq_s16(p[r][2], vmull_s8(vget_low_s8(x1), vget_low_s8(w)));
            p[r][3] = vpadalq_s16(p[r][3], vmull_high_s8(x1, w));
        }
    }
    for (int r = 0; r < 4; r++) {
        isum[r][0] = vaddq_s32(isum[r][0], vpaddq_s32(p[r][0], p[r][1]));
        isum[r][1] = vaddq_s32(isum[r][1], vpaddq_s32(p[r][2], p[r][3]));
    }
}

// ARMv8.2 dot product (SDOT): each i32 lane takes its own 4-byte dot, which is what the layout is made for.
__attribute__((target("dotprod")))
static inline void sums_sdot(const uint8_t q[4][32], const int8_t qs[8][32], int j0, int j1, int32x4_t isum[4][2]) {
    for (int j = j0; j < j1; j++) {
        const int8x16_t x0 = vld1q_s8(qs[j]), x1 = vld1q_s8(qs[j] + 16);
        for (int r = 0; r < 4; r++) {
            uint32_t q4;
            memcpy(&q4, q[r] + 4 * j, 4);
            const int8x16_t w = vreinterpretq_s8_u32(vdupq_n_u32(q4));
            isum[r][0] = vdotq_s32(isum[r][0], x0, w);
            isum[r][1] = vdotq_s32(isum[r][1], x1, w);
        }
    }
}

static inline void zero_sums(int32x4_t isum[4][2]) {
    for (int r = 0; r < 4; r++) isum[r][0] = isum[r][1] = vdupq_n_s32(0);
}

// acc[r][h] += d[r]·d_a·isum + m[r]·s_a for tokens 4h..4h+3 (m NULL: no offset).
static inline void scale_sums(float32x4_t acc[4][2], int32x4_t isum[4][2], const float d[4], const float *m,
                              const float da[8], const float *sa) {
    for (int r = 0; r < 4; r++)
        for (int h = 0; h < 2; h++) {
            const float32x4_t dd = vmulq_n_f32(vld1q_f32(da + 4 * h), d[r]);
            acc[r][h] = vfmaq_f32(acc[r][h], dd, vcvtq_f32_s32(isum[r][h]));
            if (m) acc[r][h] = vfmaq_n_f32(acc[r][h], vld1q_f32(sa + 4 * h), m[r]);
        }
}

static inline void store_out(float32x4_t acc[4][2], float out[4][8]) {
    for (int r = 0; r < 4; r++) { vst1q_f32(out[r], acc[r][0]); vst1q_f32(out[r] + 4, acc[r][1]); }
}

#define ZERO_ACC {{vdupq_n_f32(0), vdupq_n_f32(0)}, {vdupq_n_f32(0), vdupq_n_f32(0)}, \
                  {vdupq_n_f32(0), vdupq_n_f32(0)}, {vdupq_n_f32(0), vdupq_n_f32(0)}}

// One scale (and, where m_off ≥ 0, one offset) per row and 32 elements, fields at the given offsets of
// blocks `stride` bytes apart: U8's bonsai_u8x4_block, and S8's bonsai_s8x4_block, whose magnitudes NEON
// does not need (it multiplies signed by signed).
static inline __attribute__((always_inline)) void gemm_32_body(int64_t nb, const void *wp, size_t stride, size_t q_off,
                                                               size_t d_off, long m_off, const bonsai_act8x32_block *a,
                                                               float out[4][8], sums_fn sums) {
    float32x4_t acc[4][2] = ZERO_ACC;
    for (int64_t b = 0; b < nb; b++) {
        const char *blk = (const char *)wp + (size_t)b * stride;
        int32x4_t isum[4][2];
        zero_sums(isum);
        sums((const uint8_t (*)[32])(blk + q_off), a[b].qs, 0, 8, isum);
        scale_sums(acc, isum, (const float *)(blk + d_off), m_off >= 0 ? (const float *)(blk + m_off) : NULL, a[b].d, a[b].s);
    }
    store_out(acc, out);
}

static inline __attribute__((always_inline)) void gemm_u8_body(int64_t nb, const void *w, const bonsai_act8x32_block *a,
                                                               float out[4][8], sums_fn sums) {
    gemm_32_body(nb, w, sizeof(bonsai_u8x4_block), offsetof(bonsai_u8x4_block, q), offsetof(bonsai_u8x4_block, d),
                 (long)offsetof(bonsai_u8x4_block, m), a, out, sums);
}

static inline __attribute__((always_inline)) void gemm_s8_body(int64_t nb, const void *w, const bonsai_act8x32_block *a,
                                                               float out[4][8], sums_fn sums) {
    gemm_32_body(nb, w, sizeof(bonsai_s8x4_block), offsetof(bonsai_s8x4_block, q), offsetof(bonsai_s8x4_block, d), -1,
                 a, out, sums);
}

static inline __attribute__((always_inline)) void gemm_u8h_body(int64_t nb, const void *wp, const bonsai_act8x32_block *a,
                                                                float out[4][8], sums_fn sums) {
    const bonsai_u8x4h_block *w = wp;
    float32x4_t acc[4][2] = ZERO_ACC;
    for (int64_t b = 0; b < nb; b++) {
        float s_half[2][8];
        for (int c = 0; c < 8; c++) { s_half[0][c] = a[b].s_lo[c]; s_half[1][c] = a[b].s[c] - a[b].s_lo[c]; }
        for (int half = 0; half < 2; half++) {
            int32x4_t isum[4][2];
            zero_sums(isum);
            sums(w[b].q, a[b].qs, 4 * half, 4 * half + 4, isum);
            scale_sums(acc, isum, w[b].d[half], w[b].m[half], a[b].d, s_half[half]);
        }
    }
    store_out(acc, out);
}

// Each kind's kernel twice: baseline, and with SDOT for the CPUs that have it.
#define GEMM_KERNELS(kind)                                                                                    \
    static void gemm_##kind##_mull(int64_t nb, const void *w, const bonsai_act8x32_block *a, float out[4][8]) { \
        gemm_##kind##_body(nb, w, a, out, sums_mull);                                                         \
    }                                                                                                         \
    __attribute__((target("dotprod")))                                                                        \
    static void gemm_##kind##_sdot(int64_t nb, const void *w, const bonsai_act8x32_block *a, float out[4][8]) { \
        gemm_##kind##_body(nb, w, a, out, sums_sdot);                                                         \
    }
GEMM_KERNELS(u8)
GEMM_KERNELS(u8h)
GEMM_KERNELS(s8)

static bool has_sdot(void) {
#if defined(__APPLE__)
    return true;   // every Apple arm64 CPU has it
#elif defined(__linux__)
    return getauxval(AT_HWCAP) & HWCAP_ASIMDDP;
#else
    return false;
#endif
}

void bonsai_register_neon_kernels(bonsai_vec_dot_fn table[BONSAI_TYPE_COUNT],
                                  bonsai_gemm_unpacked_fn gemm[BONSAI_UNPACKED_KINDS], bool *sdot) {
    table[BONSAI_TYPE_Q4_0] = dot_q4_0_q8_0_neon;
    table[BONSAI_TYPE_Q4_1] = dot_q4_1_q8_1_neon;
    table[BONSAI_TYPE_Q5_0] = dot_q5_0_q8_0_neon;
    table[BONSAI_TYPE_Q5_1] = dot_q5_1_q8_1_neon;
    table[BONSAI_TYPE_Q8_0] = dot_q8_0_q8_0_neon;
    table[BONSAI_TYPE_Q2_K] = dot_q2_K_q8_K_neon;
    table[BONSAI_TYPE_Q3_K] = dot_q3_K_q8_K_neon;
    table[BONSAI_TYPE_Q4_K] = dot_q4_K_q8_K_neon;
    table[BONSAI_TYPE_Q5_K] = dot_q5_K_q8_K_neon;
    table[BONSAI_TYPE_Q6_K] = dot_q6_K_q8_K_neon;
    table[BONSAI_TYPE_IQ4_NL] = dot_iq4_nl_q8_0_neon;
    table[BONSAI_TYPE_IQ4_XS] = dot_iq4_xs_q8_K_neon;
    *sdot = has_sdot() && !getenv("BONSAI_NO_SDOT");
    gemm[BONSAI_UNPACKED_U8] = *sdot ? gemm_u8_sdot : gemm_u8_mull;
    gemm[BONSAI_UNPACKED_U8_HALVES] = *sdot ? gemm_u8h_sdot : gemm_u8h_mull;
    gemm[BONSAI_UNPACKED_S8] = *sdot ? gemm_s8_sdot : gemm_s8_mull;
    bonsai_s8_unpack_extras = BONSAI_S8_PLAIN;
}
#endif   // __aarch64__
