// simd.h — internal: the few vector primitives the kernels share, with run-time ISA dispatch.
#ifndef BONSAI_SIMD_H
#define BONSAI_SIMD_H

#include <stdint.h>
#include "bonsai.h"

// sum_i a[i] * b[i], accumulated in f32 (8 partial sums, so the order is fixed for a given ISA).
typedef float (*bonsai_dot_fn)(const float *a, const float *b, int64_t n);
extern bonsai_dot_fn bonsai_dot_f32;

// y[i] += s * x[i]
typedef void (*bonsai_axpy_fn)(float *y, float s, const float *x, int64_t n);
extern bonsai_axpy_fn bonsai_axpy_f32;

// Fast int8 dot product of a weight row (type) with an activation row of the type's vec_dot_type.
typedef float (*bonsai_vec_dot_fn)(int64_t n, const void *w, const void *a);
// Per weight type, the ISA kernel chosen at start-up, or NULL (then the f32 path runs).
extern bonsai_vec_dot_fn bonsai_fast_dot[BONSAI_TYPE_COUNT];
// out[r][c] = row r of w (rows ws bytes apart) · activation row c of a (as bytes apart), 4 × 4.
// Must equal four times four bonsai_fast_dot calls up to float rounding.
typedef void (*bonsai_gemm4x4_fn)(int64_t n, const void *w, size_t ws, const void *a, size_t as, float out[4][4]);
extern bonsai_gemm4x4_fn bonsai_fast_gemm4x4[BONSAI_TYPE_COUNT];
// Four weight rows × eight tokens whose activations were interleaved by bonsai_pack_act8(k).
typedef void (*bonsai_gemm4x8_fn)(int64_t n, const void *w, size_t ws, const void *act8, float out[4][8]);
extern bonsai_gemm4x8_fn bonsai_fast_gemm4x8[BONSAI_TYPE_COUNT];
// Interleave 8 tokens' activation rows (q8_0 → act8, q8_K → act8k) for the 2 × 8 kernels.
void bonsai_pack_act8(const void *a, size_t as, int64_t nb, void *dst);
size_t bonsai_act8_size(int64_t nb);
void bonsai_pack_act8k(const void *a, size_t as, int64_t nb, void *dst);
size_t bonsai_act8k_size(int64_t nb);

// Row dequantization by an ISA kernel, bit-identical to bonsai_dequantize_row; NULL: use the reference.
typedef void (*bonsai_dequant_fn)(const void *src, float *dst, int64_t n);
extern bonsai_dequant_fn bonsai_fast_dequant[BONSAI_TYPE_COUNT];

#if defined(__x86_64__)
void bonsai_register_avx2_dequant(bonsai_dequant_fn table[BONSAI_TYPE_COUNT]);
void bonsai_register_avx2_gemm8(bonsai_gemm4x8_fn table[BONSAI_TYPE_COUNT]);
void bonsai_register_avx2_kernels(bonsai_vec_dot_fn table[BONSAI_TYPE_COUNT]);
void bonsai_register_avx2_gemm(bonsai_gemm4x4_fn table[BONSAI_TYPE_COUNT]);
#endif

// x[i] = gelu_new(x[i])
typedef void (*bonsai_gelu_fn)(float *x, int64_t n);
extern bonsai_gelu_fn bonsai_gelu_f32;
// dx[i] = dout[i] * gelu_new'(x[i])
typedef void (*bonsai_gelu_backward_fn)(float *dx, const float *x, const float *dout, int64_t n);
extern bonsai_gelu_backward_fn bonsai_gelu_backward_f32;

// One query of one head against the cache (see attend_avx2), or NULL (then ops.c's loop runs).
typedef void (*bonsai_attend_fn)(float *out, const float *q, const float *k, const float *v, int64_t n_keys,
                                 int64_t stride, int hd, float scale, float *att);
extern bonsai_attend_fn bonsai_attend_f32;

// C[t][j] += sum_r A[t][r] * B[r][j] for t < T, r < k, j < n; rows cs, as, bs floats apart (gemm_f32.c).
typedef void (*bonsai_gemm_nn_fn)(float *c, int64_t cs, const float *a, int64_t as, const float *b, int64_t bs,
                                  int64_t T, int64_t k, int64_t n);
extern bonsai_gemm_nn_fn bonsai_gemm_nn_f32;
#if defined(__x86_64__)
void bonsai_gemm_nn_avx2(float *c, int64_t cs, const float *a, int64_t as, const float *b, int64_t bs,
                         int64_t T, int64_t k, int64_t n);
#endif

// Called once (thread-safe, idempotent) before the first kernel runs.
void bonsai_simd_init(void);

#ifdef BONSAI_OPENMP
#include <omp.h>
#define BONSAI_THREAD_ID() omp_get_thread_num()
#define BONSAI_NUM_THREADS() omp_get_max_threads()
#else
#define BONSAI_THREAD_ID() 0
#define BONSAI_NUM_THREADS() 1
#endif

#endif
