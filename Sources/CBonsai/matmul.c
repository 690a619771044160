// matmul.c — weight × activations for every weight type: dequantize a tile of rows to f32, then dot.
#include "bonsai.h"
#include "simd.h"
#include <stdlib.h>
#include <string.h>

enum { TILE_ROWS = 16 };

// A per-thread scratch buffer that only grows: the decode loop allocates nothing after the first token.
static _Thread_local float *tile_buf;
static _Thread_local size_t tile_cap;

static float *tile_scratch(size_t n) {
    if (n > tile_cap) {
        free(tile_buf);
        tile_buf = malloc(n * sizeof(float));
        tile_cap = tile_buf ? n : 0;
    }
    return tile_buf;
}

void bonsai_matrix_row(const bonsai_matrix *W, int64_t r, float *dst) {
    bonsai_dequantize_row(W->type, (const char *)W->data + (size_t)r * W->row_stride, dst, W->cols);
}

void bonsai_matmul(const bonsai_matrix *W, const float *X, int64_t T, float *Y, int64_t y_stride,
                   const float *bias) {
    bonsai_simd_init();
    const int64_t rows = W->rows, cols = W->cols;
    const int64_t ntiles = (rows + TILE_ROWS - 1) / TILE_ROWS;
    const bool direct = W->type == BONSAI_TYPE_F32;   // f32 rows need no dequantization

#pragma omp parallel for schedule(static) if (rows * cols * T > 32768)
    for (int64_t tile = 0; tile < ntiles; tile++) {
        const int64_t r0 = tile * TILE_ROWS;
        const int64_t nr = rows - r0 < TILE_ROWS ? rows - r0 : TILE_ROWS;
        const float *w;
        if (direct) {
            w = (const float *)((const char *)W->data + (size_t)r0 * W->row_stride);
        } else {
            float *buf = tile_scratch((size_t)(TILE_ROWS * cols));
            for (int64_t i = 0; i < nr; i++) bonsai_matrix_row(W, r0 + i, buf + i * cols);
            w = buf;
        }
        const int64_t wstride = direct ? (int64_t)(W->row_stride / sizeof(float)) : cols;
        for (int64_t t = 0; t < T; t++) {
            const float *x = X + t * cols;
            float *y = Y + t * y_stride + r0;
            for (int64_t i = 0; i < nr; i++) {
                y[i] = bonsai_dot_f32(w + i * wstride, x, cols) + (bias ? bias[r0 + i] : 0.0f);
            }
        }
    }
}
