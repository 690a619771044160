// iq4.h — what the iq4_nl / iq4_xs dequantizers, quantizer and kernels share.
#ifndef BONSAI_IQ4_H
#define BONSAI_IQ4_H
#include "bonsai.h"

// iq4_xs: sub-block ib's scale, in units of the block's d (−32 … 31): 4 low bits in scales_l, 2 high in scales_h.
static inline int iq4_xs_scale(const block_iq4_xs *b, int ib) {
    const int lo = (b->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf;
    const int hi = (b->scales_h >> 2 * ib) & 3;
    return (lo | hi << 4) - 32;
}

void bonsai_dequant_iq4_nl(const void *src, float *y, int64_t n);
void bonsai_dequant_iq4_xs(const void *src, float *y, int64_t n);
// llama-quantize's bytes; reference: one sub-block at a time (what the SIMD-lane searches are tested against).
int bonsai_quantize_iq4(int type, const float *x, void *dst, int64_t n, bool reference);

#endif
