// matmul_neon.c — int8 dot products of quantized weight rows with quantized activation rows (arm64 NEON).
//
// The same contract as matmul_avx2.c: each kernel computes what bonsai_vec_dot_ref computes, with exact
// integer products summed per block and one float multiply per block scale product. Baseline ARMv8 NEON
// only (vmull_s8 + pairwise adds; no SDOT), so every arm64 CPU runs them without a feature check. Tested
// against the reference by tools/cross_check (arm64 under qemu-user, in CI through CrossArchTests) —
// correctness only: no arm64 machine was at hand to time them.
#include "bonsai.h"
#include "simd.h"
#include "kscales.h"

#if defined(__aarch64__)
#include <arm_neon.h>

// acc + Σ a·y over 16 signed bytes each, in 4 i32 lanes: |a·y| ≤ 128·127 fits i16; the pairs widen into i32.
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t y) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(y)));
    return vpadalq_s16(acc, vmull_high_s8(a, y));
}

// Σ a·y over 32 elements: a as two vectors of 16 signed bytes, y 32 activation bytes.
static inline int32x4_t dot32(int8x16_t a0, int8x16_t a1, const int8_t *y) {
    return dot16(dot16(vdupq_n_s32(0), a0, vld1q_s8(y)), a1, vld1q_s8(y + 16));
}

// q4_0 · q8_0: nibbles − 8 as signed bytes (low nibbles are elements 0..15, high ones 16..31).
static float dot_q4_0_q8_0_neon(int64_t n, const void *w, const void *a) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    const int8x16_t eight = vdupq_n_s8(8);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / BONSAI_QK; i++) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, low4)), eight);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
        const float d = bonsai_f16_to_f32(x[i].d) * bonsai_f16_to_f32(y[i].d);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(dot32(lo, hi, y[i].qs)), d);
    }
    return vaddvq_f32(acc);
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

// q4_K · q8_K: per 256-block, Σ_s sc_s Σ q·y in i32 (exact), less Σ_s m_s Σ y from the activation's
// 16-element sums; then d·dy and dmin·dy once per block.
static float dot_q4_K_q8_K_neon(int64_t n, const void *w, const void *a) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        uint8_t sc[8], m[8];
        bonsai_k4_scales(x[i].scales, sc, m);
        int32_t msum = 0;
        for (int j = 0; j < 8; j++) msum += m[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        int32x4_t isum = vdupq_n_s32(0);
        for (int j = 0; j < 4; j++) {   // 64 elements: 32 low nibbles (sub-block 2j), 32 high (2j+1)
            const uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * j), q1 = vld1q_u8(x[i].qs + 32 * j + 16);
            const int32x4_t lo = dot32(vreinterpretq_s8_u8(vandq_u8(q0, low4)), vreinterpretq_s8_u8(vandq_u8(q1, low4)),
                                       y[i].qs + 64 * j);
            const int32x4_t hi = dot32(vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)),
                                       y[i].qs + 64 * j + 32);
            isum = vmlaq_n_s32(isum, lo, sc[2 * j]);
            isum = vmlaq_n_s32(isum, hi, sc[2 * j + 1]);
        }
        sum += bonsai_f16_to_f32(x[i].d) * y[i].d * (float)vaddvq_s32(isum)
             - bonsai_f16_to_f32(x[i].dmin) * y[i].d * (float)msum;
    }
    return sum;
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

void bonsai_register_neon_kernels(bonsai_vec_dot_fn table[BONSAI_TYPE_COUNT]) {
    table[BONSAI_TYPE_Q4_0] = dot_q4_0_q8_0_neon;
    table[BONSAI_TYPE_Q8_0] = dot_q8_0_q8_0_neon;
    table[BONSAI_TYPE_Q4_K] = dot_q4_K_q8_K_neon;
    table[BONSAI_TYPE_Q6_K] = dot_q6_K_q8_K_neon;
}
#endif   // __aarch64__
