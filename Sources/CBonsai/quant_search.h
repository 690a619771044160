// quant_search.h — internal: the scalar steps the reference quantizers' searches share (quants_k.c,
// quants_iq4.c), written as ggml writes them so that the bytes match llama-quantize's.
#ifndef BONSAI_QUANT_SEARCH_H
#define BONSAI_QUANT_SEARCH_H
#include <math.h>
#include <string.h>

// Round to nearest, ties to even (valid for |v| < 2^22): the float-add trick ggml uses.
static inline int round_nearest(float v) {
    float t = v + 12582912.0f;
    int i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// The first of the values of largest magnitude, with its sign (the symmetric fits map it to the
// outermost level).
static inline float largest_magnitude(int n, const float *x) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    return max;
}

#endif
