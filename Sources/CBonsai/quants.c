// quants.c — per type: block struct (bonsai.h), dequantize, reference quantizer.
//
// These are the scalar references. Every fast kernel is tested against them, and they are tested
// against values produced by llama.cpp's own code (the fixtures' dequant_samples and hf_dequant refs).
// Floating-point contraction is off in this file: `d * q - m` must round twice, as ggml and gguf-py do,
// or the results would not be bit-identical.
#pragma STDC FP_CONTRACT OFF

#include "bonsai.h"
#include "kscales.h"
#include "iq4.h"
#include "half.h"
#include <math.h>
#include <string.h>

// ----------------------------------------------------------------------------- scalar conversions

float bonsai_f16_to_f32(bonsai_f16 h) { return bonsai_half(h); }

bonsai_f16 bonsai_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000u) {                 // inf or nan
        return (bonsai_f16)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
    }
    if (ax >= 0x477ff000u) return (bonsai_f16)(sign | 0x7c00);   // rounds to >= 65520: inf
    if (ax < 0x38800000u) {                  // result is subnormal or zero: round mant * 2^-24
        float af;
        memcpy(&af, &ax, 4);
        float scaled = af * 16777216.0f;     // exact (power of two)
        uint32_t q = (uint32_t)scaled;
        float rem = scaled - (float)q;
        if (rem > 0.5f || (rem == 0.5f && (q & 1))) q++;
        return (bonsai_f16)(sign | q);
    }
    // normal: rebias exponent, round mantissa to nearest even
    uint32_t mant = ax & 0x7fffff;
    uint32_t exp = (ax >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;   // may carry into the exponent: correct
    return (bonsai_f16)(sign | h);
}

float bonsai_bf16_to_f32(bonsai_bf16 h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

bonsai_bf16 bonsai_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000u) return (bonsai_bf16)((x >> 16) | 64);   // quiet nan
    return (bonsai_bf16)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#define F16(h) bonsai_f16_to_f32(h)

// ----------------------------------------------------------------------------- dequantize
// Each function turns nb blocks into nb * block_size floats, exactly as ggml's dequantize_row_*.

static void dequant_f32(const void *src, float *y, int64_t n) { memcpy(y, src, (size_t)n * 4); }

static void dequant_f16(const void *src, float *y, int64_t n) {
    const bonsai_f16 *x = src;
    for (int64_t i = 0; i < n; i++) y[i] = F16(x[i]);
}

static void dequant_bf16(const void *src, float *y, int64_t n) {
    const bonsai_bf16 *x = src;
    for (int64_t i = 0; i < n; i++) y[i] = bonsai_bf16_to_f32(x[i]);
}

static void dequant_q4_0(const void *src, float *y, int64_t n) {
    const block_q4_0 *x = src;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, y += BONSAI_QK) {
        const float d = F16(x[i].d);
        for (int j = 0; j < BONSAI_QK / 2; j++) {
            y[j] = ((x[i].qs[j] & 0x0f) - 8) * d;
            y[j + BONSAI_QK / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequant_q4_1(const void *src, float *y, int64_t n) {
    const block_q4_1 *x = src;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, y += BONSAI_QK) {
        const float d = F16(x[i].d), m = F16(x[i].m);
        for (int j = 0; j < BONSAI_QK / 2; j++) {
            y[j] = (x[i].qs[j] & 0x0f) * d + m;
            y[j + BONSAI_QK / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

static void dequant_q5_0(const void *src, float *y, int64_t n) {
    const block_q5_0 *x = src;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, y += BONSAI_QK) {
        const float d = F16(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < BONSAI_QK / 2; j++) {
            const uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
            const uint8_t xh1 = ((qh >> (j + 12))) & 0x10;
            y[j] = (((x[i].qs[j] & 0x0f) | xh0) - 16) * d;
            y[j + BONSAI_QK / 2] = (((x[i].qs[j] >> 4) | xh1) - 16) * d;
        }
    }
}

static void dequant_q5_1(const void *src, float *y, int64_t n) {
    const block_q5_1 *x = src;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, y += BONSAI_QK) {
        const float d = F16(x[i].d), m = F16(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < BONSAI_QK / 2; j++) {
            const uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
            const uint8_t xh1 = ((qh >> (j + 12))) & 0x10;
            y[j] = ((x[i].qs[j] & 0x0f) | xh0) * d + m;
            y[j + BONSAI_QK / 2] = ((x[i].qs[j] >> 4) | xh1) * d + m;
        }
    }
}

static void dequant_q8_0(const void *src, float *y, int64_t n) {
    const block_q8_0 *x = src;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, y += BONSAI_QK) {
        const float d = F16(x[i].d);
        for (int j = 0; j < BONSAI_QK; j++) y[j] = x[i].qs[j] * d;
    }
}

static void dequant_q2_K(const void *src, float *y, int64_t n) {
    const block_q2_K *x = src;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const float d = F16(x[i].d), min = F16(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int k = 0; k < BONSAI_QKK; k += 128) {
            int shift = 0;
            for (int j = 0; j < 4; j++) {
                uint8_t sc = x[i].scales[is++];
                float dl = d * (sc & 0xf), ml = min * (sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * (int8_t)((q[l] >> shift) & 3) - ml;
                sc = x[i].scales[is++];
                dl = d * (sc & 0xf); ml = min * (sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * (int8_t)((q[l + 16] >> shift) & 3) - ml;
                shift += 2;
            }
            q += 32;
        }
    }
}

static void dequant_q3_K(const void *src, float *y, int64_t n) {
    const block_q3_K *x = src;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const float d_all = F16(x[i].d);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int8_t scales[16];
        bonsai_q3_K_scales(x[i].scales, scales);
        int is = 0;
        for (int k = 0; k < BONSAI_QKK; k += 128) {
            int shift = 0;
            for (int j = 0; j < 4; j++) {
                float dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * ((int8_t)((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
                dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
                shift += 2;
                m <<= 1;
            }
            q += 32;
        }
    }
}

static void dequant_q4_K(const void *src, float *y, int64_t n) {
    const block_q4_K *x = src;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const uint8_t *q = x[i].qs;
        const float d = F16(x[i].d), min = F16(x[i].dmin);
        int is = 0;
        uint8_t sc[8], mn[8];
        bonsai_k4_scales(x[i].scales, sc, mn);
        for (int j = 0; j < BONSAI_QKK; j += 64) {
            const float d1 = d * sc[is], m1 = min * mn[is];
            const float d2 = d * sc[is + 1], m2 = min * mn[is + 1];
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xf) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

static void dequant_q5_K(const void *src, float *y, int64_t n) {
    const block_q5_K *x = src;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const float d = F16(x[i].d), min = F16(x[i].dmin);
        int is = 0;
        uint8_t sc[8], mn[8], u1 = 1, u2 = 2;
        bonsai_k4_scales(x[i].scales, sc, mn);
        for (int j = 0; j < BONSAI_QKK; j += 64) {
            const float d1 = d * sc[is], m1 = min * mn[is];
            const float d2 = d * sc[is + 1], m2 = min * mn[is + 1];
            for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

static void dequant_q6_K(const void *src, float *y, int64_t n) {
    const block_q6_K *x = src;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const float d = F16(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int k = 0; k < BONSAI_QKK; k += 128) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

// ----------------------------------------------------------------------------- reference quantizers

// roundf (halves away from zero) for |v| < 2^31, in a form compilers vectorize without SSE4.1: in double,
// v ± 0.5 is exact for every float v, and the conversion truncates. Activations are quantized through it
// once per token and matmul; the call to roundf was 1/3 of that time.
static inline int32_t round_away(float v) { return (int32_t)((double)v + (v < 0 ? -0.5 : 0.5)); }

static void quant_q8_0(const float *x, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, x += BONSAI_QK) {
        float amax = 0.0f;
        for (int j = 0; j < BONSAI_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = bonsai_f32_to_f16(d);
        for (int j = 0; j < BONSAI_QK; j++) y[i].qs[j] = (int8_t)round_away(x[j] * id);
    }
}

// Activations for the int8 dot products. q8_1 also keeps s = d * sum(q), q8_K the sums of each 16.
static void quant_q8_1(const float *x, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, x += BONSAI_QK) {
        float amax = 0.0f;
        for (int j = 0; j < BONSAI_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < BONSAI_QK; j++) {
            y[i].qs[j] = (int8_t)round_away(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].d = bonsai_f32_to_f16(d);
        y[i].s = bonsai_f32_to_f16(d * (float)sum);
    }
}

static void quant_q8_K(const float *x, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++, x += BONSAI_QKK) {
        float amax = 0.0f, max = 0.0f;   // largest magnitude, sign kept
        for (int j = 0; j < BONSAI_QKK; j++) {
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < BONSAI_QKK; j++) {
            int v = (int)lrintf(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int j = 0; j < BONSAI_QKK / 16; j++) {
            int sum = 0;
            for (int k = 0; k < 16; k++) sum += y[i].qs[j * 16 + k];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

static void dequant_q8_1(const void *src, float *y, int64_t n) {
    const block_q8_1 *x = src;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, y += BONSAI_QK) {
        const float d = F16(x[i].d);
        for (int j = 0; j < BONSAI_QK; j++) y[j] = x[i].qs[j] * d;
    }
}

static void dequant_q8_K(const void *src, float *y, int64_t n) {
    const block_q8_K *x = src;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++, y += BONSAI_QKK)
        for (int j = 0; j < BONSAI_QKK; j++) y[j] = x[i].qs[j] * x[i].d;
}

static void quant_q4_0(const float *x, void *dst, int64_t n) {
    block_q4_0 *y = dst;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, x += BONSAI_QK) {
        float amax = 0.0f, max = 0.0f;   // the value of largest magnitude, sign kept
        for (int j = 0; j < BONSAI_QK; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -8.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = bonsai_f32_to_f16(d);
        for (int j = 0; j < BONSAI_QK / 2; j++) {
            const float x0 = x[j] * id, x1 = x[BONSAI_QK / 2 + j] * id;
            int xi0 = (int8_t)(x0 + 8.5f), xi1 = (int8_t)(x1 + 8.5f);
            if (xi0 > 15) xi0 = 15;
            if (xi1 > 15) xi1 = 15;
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void quant_q4_1(const float *x, void *dst, int64_t n) {
    block_q4_1 *y = dst;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, x += BONSAI_QK) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < BONSAI_QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = bonsai_f32_to_f16(d);
        y[i].m = bonsai_f32_to_f16(min);
        for (int j = 0; j < BONSAI_QK / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[BONSAI_QK / 2 + j] - min) * id;
            int xi0 = (int8_t)(x0 + 0.5f), xi1 = (int8_t)(x1 + 0.5f);
            if (xi0 > 15) xi0 = 15;
            if (xi1 > 15) xi1 = 15;
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

// The fifth bit of element j goes to bit j of qh (elements 16..31 to bits 16..31).
static void quant_q5_0(const float *x, void *dst, int64_t n) {
    block_q5_0 *y = dst;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, x += BONSAI_QK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < BONSAI_QK; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -16.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = bonsai_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < BONSAI_QK / 2; j++) {
            const float x0 = x[j] * id, x1 = x[BONSAI_QK / 2 + j] * id;
            int xi0 = (int8_t)(x0 + 16.5f), xi1 = (int8_t)(x1 + 16.5f);
            if (xi0 > 31) xi0 = 31;
            if (xi1 > 31) xi1 = 31;
            y[i].qs[j] = (uint8_t)((xi0 & 0x0f) | ((xi1 & 0x0f) << 4));
            qh |= ((uint32_t)(xi0 & 0x10) >> 4) << (j + 0);
            qh |= ((uint32_t)(xi1 & 0x10) >> 4) << (j + BONSAI_QK / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void quant_q5_1(const float *x, void *dst, int64_t n) {
    block_q5_1 *y = dst;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, x += BONSAI_QK) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < BONSAI_QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = bonsai_f32_to_f16(d);
        y[i].m = bonsai_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < BONSAI_QK / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[BONSAI_QK / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)(x0 + 0.5f), xi1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((xi0 & 0x0f) | ((xi1 & 0x0f) << 4));
            qh |= ((uint32_t)(xi0 & 0x10) >> 4) << (j + 0);
            qh |= ((uint32_t)(xi1 & 0x10) >> 4) << (j + BONSAI_QK / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void quant_f16(const float *x, void *dst, int64_t n) {
    bonsai_f16 *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = bonsai_f32_to_f16(x[i]);
}

static void quant_bf16(const float *x, void *dst, int64_t n) {
    bonsai_bf16 *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = bonsai_f32_to_bf16(x[i]);
}

static void quant_f32(const float *x, void *dst, int64_t n) { memcpy(dst, x, (size_t)n * 4); }

// The K types' quantizers live in quants_k.c.
int bonsai_quantize_k(int type, const float *x, void *dst, int64_t n, bool reference);
static void quant_q2_K(const float *x, void *dst, int64_t n) { bonsai_quantize_k(BONSAI_TYPE_Q2_K, x, dst, n, false); }
static void quant_q3_K(const float *x, void *dst, int64_t n) { bonsai_quantize_k(BONSAI_TYPE_Q3_K, x, dst, n, false); }
static void quant_q4_K(const float *x, void *dst, int64_t n) { bonsai_quantize_k(BONSAI_TYPE_Q4_K, x, dst, n, false); }
static void quant_q5_K(const float *x, void *dst, int64_t n) { bonsai_quantize_k(BONSAI_TYPE_Q5_K, x, dst, n, false); }
static void quant_q6_K(const float *x, void *dst, int64_t n) { bonsai_quantize_k(BONSAI_TYPE_Q6_K, x, dst, n, false); }
static void quant_iq4_nl(const float *x, void *dst, int64_t n) { bonsai_quantize_iq4(BONSAI_TYPE_IQ4_NL, x, dst, n, false); }
static void quant_iq4_xs(const float *x, void *dst, int64_t n) { bonsai_quantize_iq4(BONSAI_TYPE_IQ4_XS, x, dst, n, false); }

// ----------------------------------------------------------------------------- the type table

typedef void (*dequant_fn)(const void *, float *, int64_t);
typedef void (*quant_fn)(const float *, void *, int64_t);

typedef struct {
    bonsai_type_traits traits;
    dequant_fn dequantize;
    quant_fn quantize;
} type_entry;

#define F32 BONSAI_TYPE_F32
#define Q8_0 BONSAI_TYPE_Q8_0
#define Q8_1 BONSAI_TYPE_Q8_1
#define Q8_K BONSAI_TYPE_Q8_K
static const type_entry TYPES[BONSAI_TYPE_COUNT] = {
    //                      name    block       bytes                 run   vec_dot  dequantize     quantize
    [BONSAI_TYPE_F32]  = {{"f32",  1,          4,                    true, -1},   dequant_f32,  quant_f32},
    [BONSAI_TYPE_F16]  = {{"f16",  1,          2,                    true, F32},  dequant_f16,  quant_f16},
    [BONSAI_TYPE_BF16] = {{"bf16", 1,          2,                    true, F32},  dequant_bf16, quant_bf16},
    [BONSAI_TYPE_Q4_0] = {{"q4_0", BONSAI_QK,  sizeof(block_q4_0),   true, Q8_0}, dequant_q4_0, quant_q4_0},
    [BONSAI_TYPE_Q4_1] = {{"q4_1", BONSAI_QK,  sizeof(block_q4_1),   true, Q8_1}, dequant_q4_1, quant_q4_1},
    [BONSAI_TYPE_Q5_0] = {{"q5_0", BONSAI_QK,  sizeof(block_q5_0),   true, Q8_0}, dequant_q5_0, quant_q5_0},
    [BONSAI_TYPE_Q5_1] = {{"q5_1", BONSAI_QK,  sizeof(block_q5_1),   true, Q8_1}, dequant_q5_1, quant_q5_1},
    [BONSAI_TYPE_Q8_0] = {{"q8_0", BONSAI_QK,  sizeof(block_q8_0),   true, Q8_0}, dequant_q8_0, quant_q8_0},
    [BONSAI_TYPE_Q8_1] = {{"q8_1", BONSAI_QK,  sizeof(block_q8_1),   false, -1},  dequant_q8_1, quant_q8_1},
    [BONSAI_TYPE_Q2_K] = {{"q2_K", BONSAI_QKK, sizeof(block_q2_K),   true, Q8_K}, dequant_q2_K, quant_q2_K},
    [BONSAI_TYPE_Q3_K] = {{"q3_K", BONSAI_QKK, sizeof(block_q3_K),   true, Q8_K}, dequant_q3_K, quant_q3_K},
    [BONSAI_TYPE_Q4_K] = {{"q4_K", BONSAI_QKK, sizeof(block_q4_K),   true, Q8_K}, dequant_q4_K, quant_q4_K},
    [BONSAI_TYPE_Q5_K] = {{"q5_K", BONSAI_QKK, sizeof(block_q5_K),   true, Q8_K}, dequant_q5_K, quant_q5_K},
    [BONSAI_TYPE_Q6_K] = {{"q6_K", BONSAI_QKK, sizeof(block_q6_K),   true, Q8_K}, dequant_q6_K, quant_q6_K},
    [BONSAI_TYPE_Q8_K] = {{"q8_K", BONSAI_QKK, sizeof(block_q8_K),   false, -1},  dequant_q8_K, quant_q8_K},
    [BONSAI_TYPE_IQ4_NL] = {{"iq4_nl", BONSAI_QK, sizeof(block_iq4_nl), true, Q8_0}, bonsai_dequant_iq4_nl, quant_iq4_nl},
    [BONSAI_TYPE_IQ4_XS] = {{"iq4_xs", BONSAI_QKK, sizeof(block_iq4_xs), true, Q8_K}, bonsai_dequant_iq4_xs, quant_iq4_xs},
    [BONSAI_TYPE_I8]   = {{"i8",   1,          1,                    false, -1},  NULL,         NULL},
    [BONSAI_TYPE_I16]  = {{"i16",  1,          2,                    false, -1},  NULL,         NULL},
    [BONSAI_TYPE_I32]  = {{"i32",  1,          4,                    false, -1},  NULL,         NULL},
    [BONSAI_TYPE_I64]  = {{"i64",  1,          8,                    false, -1},  NULL,         NULL},
    [BONSAI_TYPE_F64]  = {{"f64",  1,          8,                    false, -1},  NULL,         NULL},
};

_Static_assert(sizeof(block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K block");
_Static_assert(sizeof(block_iq4_nl) == 18, "iq4_nl block");
_Static_assert(sizeof(block_iq4_xs) == 136, "iq4_xs block");

const bonsai_type_traits *bonsai_type_info(int type) {
    if (type < 0 || type >= BONSAI_TYPE_COUNT || TYPES[type].traits.block_size == 0) return NULL;
    return &TYPES[type].traits;
}

size_t bonsai_row_size(int type, int64_t n) {
    const bonsai_type_traits *t = bonsai_type_info(type);
    return t ? (size_t)(n / t->block_size) * (size_t)t->type_size : 0;
}

bool bonsai_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    if (!bonsai_type_info(type) || !TYPES[type].dequantize) return false;   // (q8_1/q8_K: activations, for tests)
    TYPES[type].dequantize(src, dst, n);
    return true;
}

bool bonsai_quantize_row(int type, const float *src, void *dst, int64_t n) {
    if (!bonsai_type_info(type) || !TYPES[type].quantize) return false;
    TYPES[type].quantize(src, dst, n);
    return true;
}

bool bonsai_quantize_row_reference(int type, const float *src, void *dst, int64_t n) {
    if (bonsai_quantize_k(type, src, dst, n, true) || bonsai_quantize_iq4(type, src, dst, n, true)) return true;
    return bonsai_quantize_row(type, src, dst, n);
}

// The reference for every fast dot product: dequantize both rows, multiply, sum in double.
float bonsai_vec_dot_ref(int type, int64_t n, const void *w, const void *a) {
    const bonsai_type_traits *t = bonsai_type_info(type);
    if (!t || t->vec_dot_type < 0) return NAN;
    float wf[BONSAI_QKK], af[BONSAI_QKK];
    const int64_t chunk = BONSAI_QKK;   // a multiple of every block size
    const size_t wb = bonsai_row_size(type, chunk), ab = bonsai_row_size(t->vec_dot_type, chunk);
    double sum = 0;
    for (int64_t i = 0; i < n; i += chunk) {
        const int64_t m = n - i < chunk ? n - i : chunk;
        bonsai_dequantize_row(type, (const char *)w + (size_t)(i / chunk) * wb, wf, m);
        bonsai_dequantize_row(t->vec_dot_type, (const char *)a + (size_t)(i / chunk) * ab, af, m);
        for (int64_t j = 0; j < m; j++) sum += (double)wf[j] * af[j];
    }
    return (float)sum;
}
