// gemm_f32.c — the f32 product the backward pass is made of: C[T, n] += A[T, k] B[k, n].
//
// Register-blocked: 4 rows of C × 16 columns stay in eight 8-wide accumulators while k runs, so each
// B load feeds four FMAs. Written once with clang/gcc vector types and compiled twice: for the
// baseline ISA and, selected at run time, for AVX2+FMA.
#include "simd.h"
#include <string.h>

typedef float v8 __attribute__((vector_size(32), aligned(4)));   // unaligned 8-float loads/stores

static inline __attribute__((always_inline)) v8 splat(float s) { return (v8){s, s, s, s, s, s, s, s}; }

static inline __attribute__((always_inline))
void gemm_nn_body(float *c, int64_t cs, const float *a, int64_t as, const float *b, int64_t bs,
                  int64_t T, int64_t k, int64_t n) {
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) {
        int64_t j = 0;
        for (; j + 16 <= n; j += 16) {
            v8 c00 = *(v8 *)(c + (t + 0) * cs + j), c01 = *(v8 *)(c + (t + 0) * cs + j + 8);
            v8 c10 = *(v8 *)(c + (t + 1) * cs + j), c11 = *(v8 *)(c + (t + 1) * cs + j + 8);
            v8 c20 = *(v8 *)(c + (t + 2) * cs + j), c21 = *(v8 *)(c + (t + 2) * cs + j + 8);
            v8 c30 = *(v8 *)(c + (t + 3) * cs + j), c31 = *(v8 *)(c + (t + 3) * cs + j + 8);
            for (int64_t r = 0; r < k; r++) {
                const v8 b0 = *(const v8 *)(b + r * bs + j), b1 = *(const v8 *)(b + r * bs + j + 8);
                v8 s = splat(a[(t + 0) * as + r]); c00 += s * b0; c01 += s * b1;
                s = splat(a[(t + 1) * as + r]); c10 += s * b0; c11 += s * b1;
                s = splat(a[(t + 2) * as + r]); c20 += s * b0; c21 += s * b1;
                s = splat(a[(t + 3) * as + r]); c30 += s * b0; c31 += s * b1;
            }
            *(v8 *)(c + (t + 0) * cs + j) = c00; *(v8 *)(c + (t + 0) * cs + j + 8) = c01;
            *(v8 *)(c + (t + 1) * cs + j) = c10; *(v8 *)(c + (t + 1) * cs + j + 8) = c11;
            *(v8 *)(c + (t + 2) * cs + j) = c20; *(v8 *)(c + (t + 2) * cs + j + 8) = c21;
            *(v8 *)(c + (t + 3) * cs + j) = c30; *(v8 *)(c + (t + 3) * cs + j + 8) = c31;
        }
        for (; j < n; j++)
            for (int64_t i = 0; i < 4; i++) {
                float s = c[(t + i) * cs + j];
                for (int64_t r = 0; r < k; r++) s += a[(t + i) * as + r] * b[r * bs + j];
                c[(t + i) * cs + j] = s;
            }
    }
    for (; t < T; t++) {
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) {
            v8 acc = *(v8 *)(c + t * cs + j);
            for (int64_t r = 0; r < k; r++) acc += splat(a[t * as + r]) * *(const v8 *)(b + r * bs + j);
            *(v8 *)(c + t * cs + j) = acc;
        }
        for (; j < n; j++) {
            float s = c[t * cs + j];
            for (int64_t r = 0; r < k; r++) s += a[t * as + r] * b[r * bs + j];
            c[t * cs + j] = s;
        }
    }
}

static void gemm_nn_generic(float *c, int64_t cs, const float *a, int64_t as, const float *b, int64_t bs,
                            int64_t T, int64_t k, int64_t n) {
    gemm_nn_body(c, cs, a, as, b, bs, T, k, n);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
void bonsai_gemm_nn_avx2(float *c, int64_t cs, const float *a, int64_t as, const float *b, int64_t bs,
                         int64_t T, int64_t k, int64_t n) {
    gemm_nn_body(c, cs, a, as, b, bs, T, k, n);
}
#endif

bonsai_gemm_nn_fn bonsai_gemm_nn_f32 = gemm_nn_generic;
