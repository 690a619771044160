// quants_k.c — quantizers of the K types (q2_K … q6_K), reproducing llama-quantize.
//
// Each 256-block is cut into sub-blocks; each sub-block gets the scale (and for q4_K/q5_K the min)
// that minimises a weighted squared error over a small search of candidate scales; the sub-block
// scales are then themselves quantized against one f16 block scale. Same searches, same order of
// float operations as ggml's reference code, so the bytes come out identical — on every CPU: without the
// pragma, clang fuses a·b + c into one FMA where the baseline ISA has it (arm64), and the q4_K/q6_K
// bytes came out different there (tools/cross_check found it). The searches are written twice: for one
// sub-block (fit_symmetric, fit_affine: the reference, ggml's loops) and for 8 sub-blocks in SIMD lanes
// (quants_k_lanes.h), which quantizing uses; QuantTests holds the second to the first's bytes. q3_K's
// search (a few passes, no candidate scales) has the one-sub-block form only.
#pragma STDC FP_CONTRACT OFF

#include "bonsai.h"
#include "kscales.h"
#include "quant_search.h"
#include "simd.h"
#include <math.h>
#include <string.h>

int bonsai_quantize_k(int type, const float *x, void *dst, int64_t n, bool reference);

// Symmetric fit of n values to integers in [-nmax, nmax-1] (stored + nmax), weights x², trying the
// scales nmax + 0.1·k for k in -9..9 (ggml's make_qx_quants with rmse_type 1). Returns the scale.
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L) {
    const float max = largest_magnitude(n, x);
    if (fabsf(max) < 1e-15f) {   // nothing to scale: levels 0, scale 0
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(round_nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        iscale = -(nmax + 0.1f * k) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(round_nearest(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(round_nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Affine fit x ≈ scale·L − m with L in [0, nmax], m ≥ 0, weighted least squares over the candidate
// inverse scales (nmax + rmin + rdelta·k) / (max − min), k = 0..nstep (ggml's make_qkx2_quants).
// Returns the scale; *the_min receives m.
// use_mad: the error is Σ w·|diff| instead of Σ w·diff² (q2_K).
static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                        float rmin, float rdelta, int nstep, bool use_mad) {
    uint8_t Laux[32];
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(round_nearest(iscale * (x[i] - min)), 0, nmax);
        const float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (use_mad ? fabsf(diff) : diff * diff);
    }
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * k + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(round_nearest(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                const float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * (use_mad ? fabsf(diff) : diff * diff);
            }
            if (err < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

#define LANES_NAME(name) name
#include "quants_k_lanes.h"
bonsai_fit_affine_lanes_fn bonsai_fit_affine_lanes_kernel = bonsai_fit_affine_lanes;   // cpu.c may choose AVX2's
bonsai_fit_symmetric_lanes_fn bonsai_fit_symmetric_lanes_kernel = bonsai_fit_symmetric_lanes;
bonsai_fit_affine16_lanes_fn bonsai_fit_affine16_lanes_kernel = bonsai_fit_affine16_lanes;
bonsai_fit_iq4_lanes_fn bonsai_fit_iq4_lanes_kernel = bonsai_fit_iq4_lanes;
bonsai_iq4_levels_lanes_fn bonsai_iq4_levels_lanes_kernel = bonsai_iq4_levels_lanes;

// Each sub-block's fit with weights rms(x) + |x|: the reference, one sub-block after another.
static void fit_affine_ref(const float *x, int nmax, float rmin, float rdelta, int nstep,
                           float scales[8], float mins[8], uint8_t L[BONSAI_QKK]) {
    float weights[32];
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_affine(32, nmax, xs, weights, L + 32 * j, &mins[j], rmin, rdelta, nstep, false);
    }
}

static void quant_affine_k(const float *x, int nmax, float rmin, float rdelta, int nstep,
                           bonsai_f16 *d_out, bonsai_f16 *dmin_out, uint8_t packed[12], uint8_t L[BONSAI_QKK], bool reference) {
    float mins[8], scales[8];
    (reference ? fit_affine_ref : bonsai_fit_affine_lanes_kernel)(x, nmax, rmin, rdelta, nstep, scales, mins, L);
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(packed, 0, 12);
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)round_nearest(inv_scale * scales[j]);
        lm[j] = (uint8_t)round_nearest(inv_min * mins[j]);
        if (ls[j] > 63) ls[j] = 63;
        if (lm[j] > 63) lm[j] = 63;
        if (j < 4) {
            packed[j] = ls[j];
            packed[j + 4] = lm[j];
        } else {
            packed[j + 4] = (uint8_t)((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
            packed[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            packed[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    *d_out = bonsai_f32_to_f16(max_scale / 63.f);
    *dmin_out = bonsai_f32_to_f16(max_min / 63.f);
    // re-fit the levels to the scales as stored
    for (int j = 0; j < 8; j++) {
        const float d = bonsai_f16_to_f32(*d_out) * ls[j];
        if (!d) continue;
        const float dm = bonsai_f16_to_f32(*dmin_out) * lm[j];
        for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)clampi(round_nearest((x[32 * j + i] + dm) / d), 0, nmax);
    }
}

static void quant_q4_K(const float *x, block_q4_K *y, int64_t nb, bool reference) {
    uint8_t L[BONSAI_QKK];
    for (int64_t i = 0; i < nb; i++, x += BONSAI_QKK) {
        quant_affine_k(x, 15, -1.0f, 0.1f, 20, &y[i].d, &y[i].dmin, y[i].scales, L, reference);
        for (int j = 0; j < BONSAI_QKK / 64; j++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * j + l] = (uint8_t)(L[64 * j + l] | (L[64 * j + l + 32] << 4));
    }
}

static void quant_q5_K(const float *x, block_q5_K *y, int64_t nb, bool reference) {
    uint8_t L[BONSAI_QKK];
    for (int64_t i = 0; i < nb; i++, x += BONSAI_QKK) {
        quant_affine_k(x, 31, -0.5f, 0.1f, 15, &y[i].d, &y[i].dmin, y[i].scales, L, reference);
        memset(y[i].qh, 0, sizeof y[i].qh);
        uint8_t m1 = 1, m2 = 2;
        for (int j = 0; j < BONSAI_QKK / 64; j++) {
            for (int l = 0; l < 32; l++) {
                int l1 = L[64 * j + l], l2 = L[64 * j + l + 32];
                if (l1 > 15) { l1 -= 16; y[i].qh[l] |= m1; }
                if (l2 > 15) { l2 -= 16; y[i].qh[l] |= m2; }
                y[i].qs[32 * j + l] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }
}

// q6_K: 16 sub-blocks of 16, symmetric 6-bit levels, int8 sub-block scales against one f16 scale.
static void quant_q6_K(const float *x, block_q6_K *y, int64_t nb, bool reference) {
    int8_t L[BONSAI_QKK];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += BONSAI_QKK) {
        if (reference)
            for (int s = 0; s < 16; s++) scales[s] = fit_symmetric(16, 32, x + 16 * s, L + 16 * s);
        else
            for (int g = 0; g < 2; g++) bonsai_fit_symmetric_lanes_kernel(x + 128 * g, 32, scales + 8 * g, L + 128 * g);
        const float max_scale = largest_magnitude(16, scales);
        if (fabsf(max_scale) < 1e-15f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = bonsai_f32_to_f16(1 / iscale);
        for (int s = 0; s < 16; s++) {
            const int v = round_nearest(iscale * scales[s]);
            y[i].scales[s] = (int8_t)(v < 127 ? v : 127);
        }
        for (int s = 0; s < 16; s++) {
            const float d = bonsai_f16_to_f32(y[i].d) * y[i].scales[s];
            if (!d) continue;
            for (int k = 0; k < 16; k++) L[16 * s + k] = (int8_t)(clampi(round_nearest(x[16 * s + k] / d), -32, 31) + 32);
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int c = 0; c < BONSAI_QKK; c += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const uint8_t *Lc = (const uint8_t *)L + c;
                ql[l] = (uint8_t)((Lc[l] & 0xf) | ((Lc[l + 64] & 0xf) << 4));
                ql[l + 32] = (uint8_t)((Lc[l + 32] & 0xf) | ((Lc[l + 96] & 0xf) << 4));
                qh[l] = (uint8_t)((Lc[l] >> 4) | ((Lc[l + 32] >> 4) << 2) | ((Lc[l + 64] >> 4) << 4) | ((Lc[l + 96] >> 4) << 6));
            }
        }
    }
}

// Symmetric fit of n values to integers in [-nmax, nmax-1] (stored + nmax) for q3_K: start from the
// scale that maps the largest magnitude to -nmax, then up to 5 passes that move single levels while
// that raises (Σ w·x·l)² / Σ w·l², weights x² (ggml's make_q3_quants with do_rmse). Returns the scale.
static float fit_symmetric_refine(int n, int nmax, const float *x, int8_t *L) {
    const float max = largest_magnitude(n, x);
    if (fabsf(max) < 1e-15f) {   // nothing to scale: levels 0, scale 0
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (int8_t)clampi(round_nearest(iscale * x[i]), -nmax, nmax - 1);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * L[i];
        suml2 += w * L[i] * L[i];
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int l = clampi(round_nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (l != L[i]) {
                    slx += w * x[i] * l;
                    sl2 += w * l * l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

// The 2-bit levels of 256 elements into q2_K/q3_K's qs: byte l of each 32-byte half holds elements
// l, l + 32, l + 64, l + 96 of its 128 in bits 0-1, 2-3, 4-5, 6-7.
static void pack_2bit(const uint8_t L[BONSAI_QKK], uint8_t qs[64]) {
    for (int c = 0; c < BONSAI_QKK; c += 128)
        for (int l = 0; l < 32; l++)
            qs[c / 4 + l] = (uint8_t)(L[c + l] | (L[c + l + 32] << 2) | (L[c + l + 64] << 4) | (L[c + l + 96] << 6));
}

// q2_K: 16 sub-blocks of 16, 2-bit levels with a scale and a min each (4 bits apiece, in one byte),
// both against f16 block values; the fit weights are |x|, its error absolute.
static void quant_q2_K(const float *x, block_q2_K *y, int64_t nb, bool reference) {
    uint8_t L[BONSAI_QKK];
    float scales[16], mins[16], weights[16];
    for (int64_t i = 0; i < nb; i++, x += BONSAI_QKK) {
        if (reference)
            for (int j = 0; j < 16; j++) {
                for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
                scales[j] = fit_affine(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
            }
        else   // the same search in lanes, 8 sub-blocks at a time
            for (int g = 0; g < 2; g++) bonsai_fit_affine16_lanes_kernel(x + 128 * g, scales + 8 * g, mins + 8 * g, L + 128 * g);
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = 15.f / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)round_nearest(iscale * scales[j]);
            y[i].d = bonsai_f32_to_f16(max_scale / 15.f);
        } else {
            memset(y[i].scales, 0, sizeof y[i].scales);
            y[i].d = bonsai_f32_to_f16(0.0f);
        }
        if (max_min > 0) {
            const float iscale = 15.f / max_min;
            for (int j = 0; j < 16; j++) y[i].scales[j] |= (uint8_t)(round_nearest(iscale * mins[j]) << 4);
            y[i].dmin = bonsai_f32_to_f16(max_min / 15.f);
        } else {
            y[i].dmin = bonsai_f32_to_f16(0.0f);
        }
        // re-fit the levels to the scales as stored
        for (int j = 0; j < 16; j++) {
            const float d = bonsai_f16_to_f32(y[i].d) * (y[i].scales[j] & 0xf);
            if (!d) continue;
            const float dm = bonsai_f16_to_f32(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int k = 0; k < 16; k++) L[16 * j + k] = (uint8_t)clampi(round_nearest((x[16 * j + k] + dm) / d), 0, 3);
        }
        pack_2bit(L, y[i].qs);
    }
}

// q3_K: 16 sub-blocks of 16, symmetric 3-bit levels (two low bits in qs, the third in hmask), 6-bit
// signed sub-block scales packed in 12 bytes (bonsai_q3_K_scales reads them) against one f16 scale.
static void quant_q3_K(const float *x, block_q3_K *y, int64_t nb) {
    int8_t L[BONSAI_QKK];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += BONSAI_QKK) {
        for (int j = 0; j < 16; j++) scales[j] = fit_symmetric_refine(16, 4, x + 16 * j, L + 16 * j);
        const float max_scale = largest_magnitude(16, scales);
        memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                const int l = clampi((int8_t)round_nearest(iscale * scales[j]), -32, 31) + 32;   // 6 bits
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xf);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0xf) << 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = bonsai_f32_to_f16(1 / iscale);
        } else {
            y[i].d = bonsai_f32_to_f16(0.0f);
        }
        int8_t sc[16];
        bonsai_q3_K_scales(y[i].scales, sc);   // the stored 6-bit scales, 0..63; the value is sc − 32
        for (int j = 0; j < 16; j++) {
            const float d = bonsai_f16_to_f32(y[i].d) * (sc[j] - 32);
            if (!d) continue;
            for (int k = 0; k < 16; k++) L[16 * j + k] = (int8_t)(clampi(round_nearest(x[16 * j + k] / d), -4, 3) + 4);
        }
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int j = 0; j < BONSAI_QKK; j++) {   // bit 2 of element j into hmask[j % 32], bit j / 32
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1 << (j / 32));
                L[j] = (int8_t)(L[j] - 4);
            }
        }
        pack_2bit((const uint8_t *)L, y[i].qs);
    }
}

int bonsai_quantize_k(int type, const float *x, void *dst, int64_t n, bool reference) {
    bonsai_simd_init();
    switch (type) {
    case BONSAI_TYPE_Q2_K: quant_q2_K(x, dst, n / BONSAI_QKK, reference); return 1;
    case BONSAI_TYPE_Q3_K: quant_q3_K(x, dst, n / BONSAI_QKK); return 1;
    case BONSAI_TYPE_Q4_K: quant_q4_K(x, dst, n / BONSAI_QKK, reference); return 1;
    case BONSAI_TYPE_Q5_K: quant_q5_K(x, dst, n / BONSAI_QKK, reference); return 1;
    case BONSAI_TYPE_Q6_K: quant_q6_K(x, dst, n / BONSAI_QKK, reference); return 1;
    default: return 0;
    }
}
