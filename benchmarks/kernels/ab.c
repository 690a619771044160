// ab.c — two versions of int8_x86.h's AVX2 generation kernels in one process, timed in turns.
//
// The shared machines here drift by ±12% between processes (clock boosts, neighbours), which hides a 5%
// kernel change in any end-to-end benchmark. This times one kernel version against another inside one
// process, alternating every pass over a weight matrix that fits in L2, so that both see the same clock.
// Repeated runs agree to about 0.5% on a quiet machine, but two copies of the same code can differ by
// 2-5% (their code alignment, a busy neighbour): trust bigger ratios only, or repeat. It measures the
// kernels' compute rate (generation on AVX2 is bound by it for q4_0 and the K types, by memory for q8_0);
// confirm a change end to end with `bonsai bench` and compare.py. Given more ROWS than the caches hold
// (memory mode), it times one core streaming the weights from memory, for prefetch changes; runs there
// drift by several percent.
//
// ab.sh builds it: A.h and B.h are the two copies of int8_x86.h, each compiled at the AVX2 level
// (int8_avx2_level.h, as matmul_avx2.c compiles the one in the tree) with its own name suffix.
// Everything else (quantizers, activation layouts, x86_common.h) comes from the tree's build.
#include "bonsai.h"
#include "simd.h"
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(__x86_64__)
int main(void) {
    fprintf(stderr, "ab: the A/B kernels are the x86 AVX2 ones; this is not an x86-64 build\n");
    return 1;
}
#else
#include "x86_common.h"

#include "int8_avx2_level.h"
#define KERNEL(name) name##_A
#include "A.h"
#include "int8_avx2_level.h"
#define KERNEL(name) name##_B
#include "B.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// One pass: the four-row dot over every row, as generation calls it (matmul.c, batch_item): its four
// rows a quarter of the matrix apart, so that the pass reads four sequential streams.
static double pass(bonsai_vec_dot4_fn dot4, int64_t n, const char *w, size_t rs, int rows, const void *act, float *y) {
    const int apart = rows / 4;
    float out[4];
    const double t0 = now();
    for (int r = 0; r < apart; r++) {
        dot4(n, w + (size_t)r * rs, (size_t)apart * rs, act, out);
        for (int j = 0; j < 4; j++) y[r + j * apart] = out[j];
    }
    return now() - t0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: ab TYPE [COLS [ROWS [PASSES]]]   (TYPE as ggml spells it: q4_0, q8_0, q4_K, ...)\n");
        return 2;
    }
    int type = -1;
    for (int i = 0; i < BONSAI_TYPE_COUNT; i++)
        if (bonsai_type_info(i) && strcmp(bonsai_type_info(i)->name, argv[1]) == 0) type = i;
    const int64_t n = argc > 2 ? atoll(argv[2]) : 2560;
    const int rows = argc > 3 ? atoi(argv[3]) : 128, passes = argc > 4 ? atoi(argv[4]) : 4000;
    bonsai_simd_init();
    const bonsai_type_traits *t = bonsai_type_info(type);
    if (!t || rows < 4 || rows % 4 || n <= 0) {
        fprintf(stderr, "ab: unknown type %s, or ROWS not a positive multiple of 4\n", argv[1]);
        return 2;
    }
    const bonsai_type_traits *at = bonsai_type_info(t->vec_dot_type);
    if (!at || n % t->block_size || n % at->block_size) {
        fprintf(stderr, "ab: %s has no int8 dot, or COLS is not a multiple of its blocks\n", t->name);
        return 2;
    }
    bonsai_vec_dot_fn dot_a[BONSAI_TYPE_COUNT] = {0}, dot_b[BONSAI_TYPE_COUNT] = {0};
    bonsai_vec_dot4_fn dot4_a[BONSAI_TYPE_COUNT] = {0}, dot4_b[BONSAI_TYPE_COUNT] = {0};
    bonsai_gemm4x4_fn gemm4x4[BONSAI_TYPE_COUNT] = {0};
    bonsai_gemm_unpacked_fn gemm[BONSAI_UNPACKED_KINDS] = {0};
    register_int8_A(dot_a, dot4_a, gemm4x4, gemm);
    register_int8_B(dot_b, dot4_b, gemm4x4, gemm);
    if (!dot4_a[type] || !dot4_b[type]) {
        fprintf(stderr, "ab: %s has no four-row AVX2 dot in A or B\n", t->name);
        return 2;
    }

    // Weights: rows of varied scale, quantized by the tree's quantizer; the activation as generation makes it.
    const size_t rs = (size_t)(n / t->block_size) * t->type_size;
    char *w = malloc(rs * (size_t)rows);
    float *x = malloc((size_t)n * sizeof(float)), *ya = malloc((size_t)rows * sizeof(float)), *yb = malloc((size_t)rows * sizeof(float));
    void *a = malloc((size_t)(n / at->block_size) * at->type_size);
    srand(1);
    for (int r = 0; r < rows; r++) {
        if (r >= 4096) {   // a matrix bigger than the caches (memory mode) repeats the first 4096 rows
            memcpy(w + (size_t)r * rs, w + (size_t)(r % 4096) * rs, rs);
            continue;
        }
        for (int64_t i = 0; i < n; i++) x[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * (float)(1 + (i + r) % 7);
        bonsai_quantize_row(type, x, w + (size_t)r * rs, n);
    }
    for (int64_t i = 0; i < n; i++) x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    bonsai_quantize_row(t->vec_dot_type, x, a, n);
    void *act = a;
    if (bonsai_fast_act[type].make) {
        act = malloc(bonsai_fast_act[type].size(n));
        bonsai_fast_act[type].make(a, n, act);
    }

    // The versions must agree (a kernel change that keeps the integer sums keeps every bit).
    pass(dot4_a[type], n, w, rs, rows, act, ya);
    pass(dot4_b[type], n, w, rs, rows, act, yb);
    int differ = 0;
    for (int r = 0; r < rows; r++) differ += memcmp(&ya[r], &yb[r], sizeof(float)) != 0;

    double best_a = 1e30, best_b = 1e30;
    for (int i = 0; i < passes; i++) {
        const double ta = pass(dot4_a[type], n, w, rs, rows, act, ya), tb = pass(dot4_b[type], n, w, rs, rows, act, yb);
        best_a = ta < best_a ? ta : best_a;
        best_b = tb < best_b ? tb : best_b;
    }
    const double per = 1e9 / ((double)rows * (double)n / 256.0);
    printf("%-6s %d x %lld: A %.3f ns per 256 weights (%.1f GB/s), B %.3f (%.1f GB/s), B/A %.4f; outputs differing: %d of %d\n",
           t->name, rows, (long long)n, best_a * per, (double)(rs * (size_t)rows) / best_a / 1e9, best_b * per,
           (double)(rs * (size_t)rows) / best_b / 1e9, best_b / best_a, differ, rows);
    return 0;
}
#endif
