// lora.c — a LoRA adapter beside a frozen linear layer, forward and backward.
//
//   y = x W^T + b + scale * (x A^T) B^T        A [r, in], B [out, r] (PEFT's lora_A, lora_B)
//
// r is small (8–64), so u = x A^T [T, r] is cheap to keep for the backward pass.
#include "bonsai.h"
#include "simd.h"
#include <stdlib.h>
#include <string.h>

enum { COL_CHUNK = 256 };

// LoRA dropout (PEFT drops the adapter's input): element (t, i) is kept with probability 1 - p and scaled by
// 1 / (1 - p). The mask is a hash of (seed, t, i), so the backward pass (and a recomputed forward) sees the
// same mask without storing it, and a resumed run draws the same masks as an uninterrupted one.
static inline float dropout_factor(uint64_t seed, int64_t t, int64_t i, int64_t in, float p) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(t * in + i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = (float)(z >> 40) * (1.0f / 16777216.0f);   // uniform in [0, 1)
    return u < p ? 0.0f : 1.0f / (1.0f - p);
}

// x_drop [T, in] = x with dropout applied.
static void apply_dropout(float *dst, const float *x, int64_t T, int64_t in, float p, uint64_t seed) {
#pragma omp parallel for schedule(static) if (T * in > 65536)
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < in; i++) dst[t * in + i] = x[t * in + i] * dropout_factor(seed, t, i, in, p);
}

// Grow-only per-thread scratch (the decode loop allocates nothing after its first token).
typedef struct { float *p; size_t cap; } scratch;
static _Thread_local scratch bt_buf, dbt_buf;
static float *scratch_get(scratch *s, size_t n) {
    if (n > s->cap) {
        free(s->p);
        s->p = malloc(n * sizeof(float));
        s->cap = s->p ? n : 0;
    }
    return s->p;
}

// dst [r, out] = B^T, so that the products over `out` run along contiguous rows
static float *transposed(scratch *s, const float *B, int64_t out, int r) {
    float *bt = scratch_get(s, (size_t)(r * out));
    for (int64_t o = 0; o < out; o++)
        for (int j = 0; j < r; j++) bt[(int64_t)j * out + o] = B[o * r + j];
    return bt;
}

// lora_forward: y [T, out] (rows ys floats apart) += scale * u B^T, u = dropout(x [T, in]) A^T.
// u [T, r] receives u for the backward pass; NULL keeps it in a per-token temporary.
void bonsai_lora_forward(float *y, int64_t ys, float *u, const float *x, const float *A, const float *B,
                         int64_t T, int64_t in, int64_t out, int r, float scale, float dropout, uint64_t seed) {
    bonsai_simd_init();
    const float *bt = transposed(&bt_buf, B, out, r);
#pragma omp parallel if (T * (in + out) * r > 65536)
    {
        float tmp[r];
        float *xd = dropout > 0 ? malloc((size_t)in * sizeof(float)) : NULL;
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            float *ut = u ? u + t * r : tmp;
            const float *xt = x + t * in;
            if (xd) {
                for (int64_t i = 0; i < in; i++) xd[i] = xt[i] * dropout_factor(seed, t, i, in, dropout);
                xt = xd;
            }
            for (int j = 0; j < r; j++) ut[j] = bonsai_dot_f32(xt, A + (int64_t)j * in, in);
            for (int j = 0; j < r; j++) bonsai_axpy_f32(y + t * ys, scale * ut[j], bt + (int64_t)j * out, out);
        }
        free(xd);
    }
}

// lora_backward: given dy [T, out] (rows dys floats apart) and the forward's x [T, in], u [T, r]
// (xd = dropout(x), mask M with the forward's seed):
//   dB [out, r] += scale dy^T u
//   du [T, r]    = scale dy B
//   dA [r, in]  += du^T xd
//   dx [T, in]  += (du A) * M    (skipped when dx is NULL)
// scratch: 2 T r floats, plus 2 T in with dropout.
void bonsai_lora_backward(float *dx, float *dA, float *dB, const float *dy, int64_t dys, const float *x,
                          const float *u, const float *A, const float *B, int64_t T, int64_t in, int64_t out,
                          int r, float scale, float dropout, uint64_t seed, float *scratch) {
    bonsai_simd_init();
    float *du = scratch, *duT = scratch + T * r;
    float *xd = NULL, *dxd = NULL;
    if (dropout > 0) {
        xd = scratch + 2 * T * r;
        dxd = xd + T * in;
        apply_dropout(xd, x, T, in, dropout, seed);
        x = xd;
        memset(dxd, 0, (size_t)(T * in) * sizeof(float));
    }
    float *dx_lora = dropout > 0 && dx ? dxd : dx;
    const float *bt = transposed(&bt_buf, B, out, r);
    float *dbt = scratch_get(&dbt_buf, (size_t)(r * out));   // dB^T [r, out]
    memset(dbt, 0, (size_t)(r * out) * sizeof(float));
    const int64_t nchunks = (in + COL_CHUNK - 1) / COL_CHUNK, ochunks = (out + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel if (T * in * r > 65536)
    {
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            for (int j = 0; j < r; j++) {
                const float g = scale * bonsai_dot_f32(dy + t * dys, bt + (int64_t)j * out, out);
                du[t * r + j] = g;
                duT[(int64_t)j * T + t] = g;
            }
        }
        // dB^T [r, out] += u^T dy, split by output columns
#pragma omp for schedule(static) nowait
        for (int64_t c = 0; c < ochunks; c++) {
            const int64_t c0 = c * COL_CHUNK, nc = out - c0 < COL_CHUNK ? out - c0 : COL_CHUNK;
            for (int64_t t = 0; t < T; t++)
                for (int j = 0; j < r; j++) bonsai_axpy_f32(dbt + (int64_t)j * out + c0, u[t * r + j], dy + t * dys + c0, nc);
        }
#pragma omp for schedule(static)
        for (int64_t c = 0; c < nchunks; c++) {
            const int64_t c0 = c * COL_CHUNK, nc = in - c0 < COL_CHUNK ? in - c0 : COL_CHUNK;
            bonsai_gemm_nn_f32(dA + c0, in, duT, T, x + c0, in, r, T, nc);
            if (dx_lora) bonsai_gemm_nn_f32(dx_lora + c0, in, du, r, A + c0, in, T, r, nc);
        }
    }
    for (int64_t o = 0; o < out; o++)
        for (int j = 0; j < r; j++) dB[o * r + j] += scale * dbt[(int64_t)j * out + o];
    if (dx && dropout > 0) {
        // d x = d xd * M (the mask, scaled): the same factors as the forward
#pragma omp parallel for schedule(static) if (T * in > 65536)
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < in; i++) dx[t * in + i] += dxd[t * in + i] * dropout_factor(seed, t, i, in, dropout);
    }
}

// lora_merge: W [rows, cols] += scale * B [rows, r] A [r, cols] (rows of B: the output rows being merged).
void bonsai_lora_merge(float *W, int64_t rows, int64_t cols, const float *A, const float *B, int r, float scale) {
    bonsai_simd_init();
    float *sb = malloc((size_t)(rows * r) * sizeof(float));
    for (int64_t i = 0; i < rows * r; i++) sb[i] = scale * B[i];
    const int64_t nchunks = (cols + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t c0 = c * COL_CHUNK, nc = cols - c0 < COL_CHUNK ? cols - c0 : COL_CHUNK;
        bonsai_gemm_nn_f32(W + c0, cols, sb, r, A + c0, cols, rows, r, nc);
    }
    free(sb);
}
