// act_layout.c — activation rows rearranged once per token for a generation kernel (simd.h's
// bonsai_act_layout). Generation multiplies one activation row with every weight row of a matrix, so
// anything done to the activation here is paid once, not once per row.
#include "simd.h"
#include "half.h"
#include <string.h>

// q4_0 (bonsai_q4_0_act8): from the q8_0 row the kernel's dot would otherwise read.
size_t bonsai_q4_0_act_size(int64_t n) {
    const int64_t nb = n / BONSAI_QK;
    return (size_t)((nb + 7) / 8) * sizeof(bonsai_q4_0_act8);
}

// Block i of the row (scale d, bytes qs) into its group's lanes.
static void act8_put(bonsai_q4_0_act8 *g, int64_t i, bonsai_f16 d, const int8_t qs[BONSAI_QK]) {
    bonsai_q4_0_act8 *o = g + i / 8;
    const int b = (int)(i % 8), j = b / 2, h = b % 2;
    int32_t sum = 0;
    for (int k = 0; k < 16; k++) {
        o->lo[j][16 * h + k] = qs[k];
        o->hi[j][16 * h + k] = qs[16 + k];
    }
    for (int k = 0; k < BONSAI_QK; k++) sum += qs[k];
    o->c[BONSAI_Q4_0_LANE(b)] = 8 * sum;
    o->d[BONSAI_Q4_0_LANE(b)] = bonsai_half(d);
}

void bonsai_q4_0_act_make(const void *a, int64_t n, void *dst) {
    const block_q8_0 *y = a;
    memset(dst, 0, bonsai_q4_0_act_size(n));   // the last group's missing blocks stay zero
    for (int64_t i = 0; i < n / BONSAI_QK; i++) act8_put(dst, i, y[i].d, y[i].qs);
}

// q4_1/q5_1 read q8_1 rows: the same bytes and scale (s, d·Σq rounded to f16, is not used: the layout's
// exact 8Σy is).
void bonsai_q4_1_act_make(const void *a, int64_t n, void *dst) {
    const block_q8_1 *y = a;
    memset(dst, 0, bonsai_q4_0_act_size(n));
    for (int64_t i = 0; i < n / BONSAI_QK; i++) act8_put(dst, i, y[i].d, y[i].qs);
}
