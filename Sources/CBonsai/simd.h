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
#if defined(__x86_64__)
void bonsai_register_avx2_kernels(bonsai_vec_dot_fn table[BONSAI_TYPE_COUNT]);
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
