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

// lora_forward: y [T, out] (rows ys floats apart) += scale * u B^T, u = x [T, in] A^T.
// u [T, r] receives x A^T for the backward pass; NULL keeps it in a per-token temporary.
void bonsai_lora_forward(float *y, int64_t ys, float *u, const float *x, const float *A, const float *B,
                         int64_t T, int64_t in, int64_t out, int r, float scale) {
    bonsai_simd_init();
#pragma omp parallel if (T * in * r > 65536)
    {
        float *tmp = u ? NULL : malloc((size_t)r * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            float *ut = u ? u + t * r : tmp;
            for (int j = 0; j < r; j++) ut[j] = bonsai_dot_f32(x + t * in, A + (int64_t)j * in, in);
            float *yt = y + t * ys;
            for (int64_t o = 0; o < out; o++) {
                float s = 0.0f;
                for (int j = 0; j < r; j++) s += B[o * r + j] * ut[j];
                yt[o] += scale * s;
            }
        }
        free(tmp);
    }
}

// lora_backward: given dy [T, out] (rows dys floats apart) and the forward's x [T, in], u [T, r]:
//   dB [out, r] += scale dy^T u
//   du [T, r]    = scale dy B
//   dA [r, in]  += du^T x
//   dx [T, in]  += du A          (skipped when dx is NULL)
// scratch: 2 T r floats.
void bonsai_lora_backward(float *dx, float *dA, float *dB, const float *dy, int64_t dys, const float *x,
                          const float *u, const float *A, const float *B, int64_t T, int64_t in, int64_t out,
                          int r, float scale, float *scratch) {
    bonsai_simd_init();
    float *du = scratch, *duT = scratch + T * r;
    const int64_t nchunks = (in + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel if (T * in * r > 65536)
    {
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            float acc[r];
            memset(acc, 0, sizeof acc);
            for (int64_t o = 0; o < out; o++) {
                const float g = dy[t * dys + o];
                for (int j = 0; j < r; j++) acc[j] += g * B[o * r + j];
            }
            for (int j = 0; j < r; j++) {
                du[t * r + j] = scale * acc[j];
                duT[(int64_t)j * T + t] = scale * acc[j];
            }
        }
#pragma omp for schedule(static) nowait
        for (int64_t o = 0; o < out; o++) {
            float acc[r];
            memset(acc, 0, sizeof acc);
            for (int64_t t = 0; t < T; t++) {
                const float g = dy[t * dys + o];
                for (int j = 0; j < r; j++) acc[j] += g * u[t * r + j];
            }
            for (int j = 0; j < r; j++) dB[o * r + j] += scale * acc[j];
        }
#pragma omp for schedule(static)
        for (int64_t c = 0; c < nchunks; c++) {
            const int64_t c0 = c * COL_CHUNK, nc = in - c0 < COL_CHUNK ? in - c0 : COL_CHUNK;
            bonsai_gemm_nn_f32(dA + c0, in, duT, T, x + c0, in, r, T, nc);
            if (dx) bonsai_gemm_nn_f32(dx + c0, in, du, r, A + c0, in, T, r, nc);
        }
    }
}
