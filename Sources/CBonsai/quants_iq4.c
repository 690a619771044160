// quants_iq4.c — the non-linear 4-bit types: dequantize and llama-quantize's quantizer.
//
// iq4_nl is q4_0's block (f16 d, 32 nibbles) with the nibble picking one of 16 levels spaced closer near
// zero, where most weights are; iq4_xs puts 8 such sub-blocks in a 256-block with 6-bit sub-block scales
// under one f16 d (4.25 bits a weight). The quantizer is ggml's search for files made without an
// importance matrix: weights x², 15 trial scales per 32 values, levels by nearest neighbour. Contraction
// is off for the same reason as in quants_k.c: the bytes must equal llama.cpp's on every CPU.
#pragma STDC FP_CONTRACT OFF

#include "iq4.h"
#include "quant_search.h"
#include "simd.h"
#include <math.h>
#include <string.h>

const int8_t bonsai_iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
#define LEVELS bonsai_iq4_levels

// ----------------------------------------------------------------------------- dequantize
// Within each 32 values: byte j's low nibble is value j, its high nibble value j + 16.

static void dequant_nibbles(const uint8_t *qs, float d, float *y) {
    for (int j = 0; j < 16; j++) {
        y[j] = d * LEVELS[qs[j] & 0xf];
        y[j + 16] = d * LEVELS[qs[j] >> 4];
    }
}

void bonsai_dequant_iq4_nl(const void *src, float *y, int64_t n) {
    const block_iq4_nl *x = src;
    for (int64_t i = 0; i < n / BONSAI_QK; i++, y += BONSAI_QK) dequant_nibbles(x[i].qs, bonsai_f16_to_f32(x[i].d), y);
}

void bonsai_dequant_iq4_xs(const void *src, float *y, int64_t n) {
    const block_iq4_xs *x = src;
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const float d = bonsai_f16_to_f32(x[i].d);
        for (int ib = 0; ib < BONSAI_QKK / 32; ib++, y += 32) dequant_nibbles(x[i].qs + 16 * ib, d * iq4_xs_scale(&x[i], ib), y);
    }
}

// ----------------------------------------------------------------------------- quantize

// The level nearest v (on a tie, the lower one wins only when strictly nearer: ggml's best_index_int8).
static int nearest_level(float v) {
    if (v <= LEVELS[0]) return 0;
    if (v >= LEVELS[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < LEVELS[mid]) hi = mid; else lo = mid;
    }
    return v - LEVELS[lo] < LEVELS[hi] - v ? lo : hi;
}

// Σ w·q·x and Σ w·q² for the levels q nearest x·id (w = x²).
static void fit_sums(const float *x, float id, float *sumqx, float *sumq2) {
    float sqx = 0, sq2 = 0;
    for (int j = 0; j < 32; j++) {
        const float q = LEVELS[nearest_level(id * x[j])], w = x[j] * x[j];
        sqx += w * q * x[j];
        sq2 += w * q * q;
    }
    *sumqx = sqx;
    *sumq2 = sq2;
}

// The scale of 32 values: least squares for the levels chosen at the scale that maps the largest
// magnitude onto the outermost level, then for those chosen at 15 trial scales around it; the best of
// them by weighted error. 0 for an all-zero sub-block.
static float fit_sub_block(const float *x) {
    const float max = largest_magnitude(32, x);
    if (fabsf(max) < 1e-15f) return 0.0f;
    float sumqx, sumq2;
    fit_sums(x, 1 / (-max / LEVELS[0]), &sumqx, &sumq2);
    float d = sumqx / sumq2, best = d * sumqx;
    for (int t = -7; t <= 7; t++) {
        fit_sums(x, (t + LEVELS[0]) / max, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

// The levels of 32 values at scale d (the reference for bonsai_iq4_levels_lanes).
static void levels_at(const float *x, float d, uint8_t idx[32]) {
    const float id = d ? 1 / d : 0.0f;
    for (int j = 0; j < 32; j++) idx[j] = (uint8_t)nearest_level(id * x[j]);
}

// 32 levels into 16 bytes of nibble pairs.
static void pack_nibbles(const uint8_t idx[32], uint8_t qs[16]) {
    for (int j = 0; j < 16; j++) qs[j] = idx[j] | idx[j + 16] << 4;
}

// The searches run on 8 sub-blocks at a time in SIMD lanes (quants_k_lanes.h, with the same bytes:
// QuantTests holds them to this file's one-at-a-time reference); iq4_nl's blocks past the last 8 go
// one by one.
static void quant_iq4_nl(const float *x, block_iq4_nl *y, int64_t nb, bool reference) {
    int64_t i = 0;
    uint8_t L[BONSAI_QKK];
    if (!reference) {
        for (; i + 8 <= nb; i += 8, x += 8 * BONSAI_QK) {
            float d[8];
            bonsai_fit_iq4_lanes_kernel(x, d);
            bonsai_iq4_levels_lanes_kernel(x, d, L);   // at the f32 scale, as ggml (not the f16 one stored)
            for (int j = 0; j < 8; j++) {
                y[i + j].d = bonsai_f32_to_f16(d[j]);
                pack_nibbles(L + 32 * j, y[i + j].qs);
            }
        }
    }
    for (; i < nb; i++, x += BONSAI_QK) {
        const float d = fit_sub_block(x);
        y[i].d = bonsai_f32_to_f16(d);
        levels_at(x, d, L);
        pack_nibbles(L, y[i].qs);
    }
}

// Each sub-block's scale is rounded to a multiple of d = −(largest-magnitude scale)/32 in −32 … 31, and its
// levels chosen again at the rounded scale.
static void quant_iq4_xs(const float *x, block_iq4_xs *y, int64_t nb, bool reference) {
    for (int64_t i = 0; i < nb; i++, x += BONSAI_QKK) {
        float scales[8];
        if (reference) for (int ib = 0; ib < 8; ib++) scales[ib] = fit_sub_block(x + 32 * ib);
        else bonsai_fit_iq4_lanes_kernel(x, scales);
        const float d = -largest_magnitude(8, scales) / 32, id = d ? 1 / d : 0.0f;
        y[i].d = bonsai_f32_to_f16(d);
        y[i].scales_h = 0;
        float dl[8];
        for (int ib = 0; ib < 8; ib++) {
            int l = clampi(round_nearest(id * scales[ib]), -32, 31);
            dl[ib] = d * l;
            l += 32;
            if (ib % 2 == 0) y[i].scales_l[ib / 2] = (uint8_t)(l & 0xf);
            else y[i].scales_l[ib / 2] |= (uint8_t)((l & 0xf) << 4);
            y[i].scales_h |= (uint16_t)((l >> 4) << 2 * ib);
        }
        uint8_t L[BONSAI_QKK];
        if (reference) for (int ib = 0; ib < 8; ib++) levels_at(x + 32 * ib, dl[ib], L + 32 * ib);
        else bonsai_iq4_levels_lanes_kernel(x, dl, L);
        for (int ib = 0; ib < 8; ib++) pack_nibbles(L + 32 * ib, y[i].qs + 16 * ib);
    }
}

int bonsai_quantize_iq4(int type, const float *x, void *dst, int64_t n, bool reference) {
    bonsai_simd_init();
    switch (type) {
    case BONSAI_TYPE_IQ4_NL: quant_iq4_nl(x, dst, n / BONSAI_QK, reference); return 1;
    case BONSAI_TYPE_IQ4_XS: quant_iq4_xs(x, dst, n / BONSAI_QKK, reference); return 1;
    default: return 0;
    }
}
