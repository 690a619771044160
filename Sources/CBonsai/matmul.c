// matmul.c — weight × activations for every weight type.
//
// Two paths. FAST (default): where the CPU has an int8 kernel for the weight type, the activations are
// quantized once per call to the type's vec_dot_type and every (row, token) pair is one int8 dot
// product. F32 (and types without a kernel): a tile of rows is dequantized to f32 and dotted with the
// f32 activations — the exact reference, used by the tests that compare with transformers.
#include "bonsai.h"
#include "simd.h"
#include <stdlib.h>
#include <string.h>

enum { TILE_ROWS = 16 };

static bonsai_math math_mode = BONSAI_MATH_FAST;
void bonsai_set_math(bonsai_math mode) { math_mode = mode; }
bonsai_math bonsai_get_math(void) { return math_mode; }

// Grow-only scratch: the decode loop allocates nothing after the first token.
typedef struct { void *p; size_t cap; } scratch;
static _Thread_local scratch tile_buf, act_buf;

static void *scratch_get(scratch *s, size_t bytes) {
    if (bytes > s->cap) {
        free(s->p);
        s->p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        s->cap = s->p ? bytes : 0;
    }
    return s->p;
}

void bonsai_matrix_row(const bonsai_matrix *W, int64_t r, float *dst) {
    bonsai_dequantize_row(W->type, (const char *)W->data + (size_t)r * W->row_stride, dst, W->cols);
}

float bonsai_vec_dot(int type, int64_t n, const void *w, const void *a) {
    bonsai_simd_init();
    bonsai_vec_dot_fn f = type >= 0 && type < BONSAI_TYPE_COUNT ? bonsai_fast_dot[type] : NULL;
    return f ? f(n, w, a) : bonsai_vec_dot_ref(type, n, w, a);
}

static void matmul_f32(const bonsai_matrix *W, const float *X, int64_t T, float *Y, int64_t y_stride,
                       const float *bias) {
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
            float *buf = scratch_get(&tile_buf, (size_t)(TILE_ROWS * cols) * sizeof(float));
            for (int64_t i = 0; i < nr; i++) bonsai_matrix_row(W, r0 + i, buf + i * cols);
            w = buf;
        }
        const int64_t wstride = direct ? (int64_t)(W->row_stride / sizeof(float)) : cols;
        for (int64_t t = 0; t < T; t++) {
            const float *x = X + t * cols;
            float *y = Y + t * y_stride + r0;
            for (int64_t i = 0; i < nr; i++) y[i] = bonsai_dot_f32(w + i * wstride, x, cols) + (bias ? bias[r0 + i] : 0.0f);
        }
    }
}

static void matmul_int8(const bonsai_matrix *W, bonsai_vec_dot_fn dot, const float *X, int64_t T, float *Y,
                        int64_t y_stride, const float *bias) {
    const int64_t rows = W->rows, cols = W->cols;
    const int at = bonsai_type_info(W->type)->vec_dot_type;
    const size_t arow = bonsai_row_size(at, cols);
    char *aq = scratch_get(&act_buf, arow * (size_t)T);
    const int64_t ntiles = (rows + TILE_ROWS - 1) / TILE_ROWS;
#pragma omp parallel if (rows * cols * T > 32768)
    {
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) bonsai_quantize_row(at, X + t * cols, aq + (size_t)t * arow, cols);
#pragma omp for schedule(static)
        for (int64_t tile = 0; tile < ntiles; tile++) {
            const int64_t r0 = tile * TILE_ROWS;
            const int64_t nr = rows - r0 < TILE_ROWS ? rows - r0 : TILE_ROWS;
            for (int64_t t = 0; t < T; t++) {
                float *y = Y + t * y_stride + r0;
                const char *a = aq + (size_t)t * arow;
                for (int64_t i = 0; i < nr; i++) {
                    const void *w = (const char *)W->data + (size_t)(r0 + i) * W->row_stride;
                    y[i] = dot(cols, w, a) + (bias ? bias[r0 + i] : 0.0f);
                }
            }
        }
    }
}

void bonsai_matmul(const bonsai_matrix *W, const float *X, int64_t T, float *Y, int64_t y_stride,
                   const float *bias) {
    bonsai_simd_init();
    bonsai_vec_dot_fn dot = math_mode == BONSAI_MATH_FAST ? bonsai_fast_dot[W->type] : NULL;
    const bonsai_type_traits *t = bonsai_type_info(W->type);
    if (dot && t && W->cols % bonsai_type_info(t->vec_dot_type)->block_size == 0) {
        matmul_int8(W, dot, X, T, Y, y_stride, bias);
    } else {
        matmul_f32(W, X, T, Y, y_stride, bias);
    }
}
