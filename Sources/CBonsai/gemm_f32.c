// gemm_f32.c — the f32 product the backward pass is made of: C[T, n] += A[T, k] B[k, n].
//
// Register-blocked: 6 rows of C × 16 columns stay in twelve 8-wide accumulators while k runs, so each
// pair of B loads feeds twelve FMAs (the classic Haswell shape: 12 accumulators + 2 B + 1 broadcast =
// 15 of 16 ymm registers). Written once with clang/gcc vector types and compiled twice: for the baseline
// ISA and, selected at run time, for AVX2+FMA.
#include "simd.h"
#include <string.h>

typedef float v8 __attribute__((vector_size(32), aligned(4)));   // unaligned 8-float loads/stores

// R (a constant after inlining) rows of C × 16 columns.
static inline __attribute__((always_inline))
void tile16(float *c, int64_t cs, const float *a, int64_t as, const float *b, int64_t bs, int64_t k, const int R) {
    v8 c0[6], c1[6];
    for (int i = 0; i < R; i++) { c0[i] = *(v8 *)(c + i * cs); c1[i] = *(v8 *)(c + i * cs + 8); }
    for (int64_t r = 0; r < k; r++) {
        const v8 b0 = *(const v8 *)(b + r * bs), b1 = *(const v8 *)(b + r * bs + 8);
        for (int i = 0; i < R; i++) {
            const float ai = a[i * as + r];
            const v8 s = {ai, ai, ai, ai, ai, ai, ai, ai};
            c0[i] += s * b0;
            c1[i] += s * b1;
        }
    }
    for (int i = 0; i < R; i++) { *(v8 *)(c + i * cs) = c0[i]; *(v8 *)(c + i * cs + 8) = c1[i]; }
}

// R rows of C × the columns j0 .. n-1 that do not fill 16 (scalar).
static inline __attribute__((always_inline))
void tail_cols(float *c, int64_t cs, const float *a, int64_t as, const float *b, int64_t bs, int64_t k,
               int64_t R, int64_t j0, int64_t n) {
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = j0; j < n; j++) {
            float s = c[i * cs + j];
            for (int64_t r = 0; r < k; r++) s += a[i * as + r] * b[r * bs + j];
            c[i * cs + j] = s;
        }
}

static inline __attribute__((always_inline))
void gemm_nn_body(float *c, int64_t cs, const float *a, int64_t as, const float *b, int64_t bs,
                  int64_t T, int64_t k, int64_t n) {
    const int64_t n16 = n / 16 * 16;
    for (int64_t t = 0; t < T; t += 6) {
        const int64_t R = T - t < 6 ? T - t : 6;
        float *ct = c + t * cs;
        const float *at = a + t * as;
        for (int64_t j = 0; j < n16; j += 16) {
            switch (R) {   // constant row counts, so the accumulators live in registers
            case 6: tile16(ct + j, cs, at, as, b + j, bs, k, 6); break;
            case 5: tile16(ct + j, cs, at, as, b + j, bs, k, 5); break;
            case 4: tile16(ct + j, cs, at, as, b + j, bs, k, 4); break;
            case 3: tile16(ct + j, cs, at, as, b + j, bs, k, 3); break;
            case 2: tile16(ct + j, cs, at, as, b + j, bs, k, 2); break;
            default: tile16(ct + j, cs, at, as, b + j, bs, k, 1); break;
            }
        }
        if (n16 < n) tail_cols(ct, cs, at, as, b, bs, k, R, n16, n);
    }
}

// ---------------------------------------------------------------------------------------------
// The same product from packed operands, for the weight products (matmul.c), where both operands are
// copied anyway (the weight is dequantized tile by tile) and k is long. Packing makes every load of the
// 6×16 micro-kernel sequential: A in groups of 6 rows, each [k][6]; B in panels of 16 columns, each
// [k][16]. ~76% of the FMA peak on Zen 3 vs ~63% for the strided kernel above.

static inline __attribute__((always_inline))
void micro6x16(float *c, int64_t cs, const float *a, const float *b, int64_t k) {
    v8 c0[6], c1[6];
    for (int i = 0; i < 6; i++) { c0[i] = *(v8 *)(c + i * cs); c1[i] = *(v8 *)(c + i * cs + 8); }
    for (int64_t r = 0; r < k; r++) {
        const v8 b0 = *(const v8 *)(b + r * 16), b1 = *(const v8 *)(b + r * 16 + 8);
        for (int i = 0; i < 6; i++) {
            const float ai = a[r * 6 + i];
            const v8 s = {ai, ai, ai, ai, ai, ai, ai, ai};
            c0[i] += s * b0;
            c1[i] += s * b1;
        }
    }
    for (int i = 0; i < 6; i++) { *(v8 *)(c + i * cs) = c0[i]; *(v8 *)(c + i * cs + 8) = c1[i]; }
}

enum { PACK_T_BLOCK = 120 };   // 120 rows of packed A (k = 256: 120 KB) stay in L2 while the panels pass

static inline __attribute__((always_inline))
void gemm_packed_body(float *c, int64_t cs, const float *ap, const float *bp, int64_t T, int64_t k, int64_t n) {
    for (int64_t tb = 0; tb < T; tb += PACK_T_BLOCK) {
        const int64_t te = tb + PACK_T_BLOCK < T ? tb + PACK_T_BLOCK : T;
        for (int64_t j = 0; j < n; j += 16) {
            const float *b = bp + j * k;   // panel j/16 starts at (j/16)·16·k
            const int64_t N = n - j < 16 ? n - j : 16;
            for (int64_t t = tb; t < te; t += 6) {
                const float *a = ap + t * k;   // group t/6 starts at (t/6)·6·k
                const int64_t R = te - t < 6 ? te - t : 6;
                if (R == 6 && N == 16) { micro6x16(c + t * cs + j, cs, a, b, k); continue; }
                float edge[6 * 16] = {0};   // a partial block goes through a full one
                for (int64_t i = 0; i < R; i++) for (int64_t x = 0; x < N; x++) edge[i * 16 + x] = c[(t + i) * cs + j + x];
                micro6x16(edge, 16, a, b, k);
                for (int64_t i = 0; i < R; i++) for (int64_t x = 0; x < N; x++) c[(t + i) * cs + j + x] = edge[i * 16 + x];
            }
        }
    }
}

void bonsai_pack_a6(float *dst, const float *a, int64_t as, int64_t T, int64_t k) {
    for (int64_t t = 0; t < T; t += 6, dst += 6 * k)
        for (int64_t r = 0; r < k; r++)
            for (int64_t i = 0; i < 6; i++) dst[r * 6 + i] = t + i < T ? a[(t + i) * as + r] : 0.0f;
}

static void gemm_packed_generic(float *c, int64_t cs, const float *ap, const float *bp, int64_t T, int64_t k,
                                int64_t n) {
    gemm_packed_body(c, cs, ap, bp, T, k, n);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
void bonsai_gemm_packed_avx2(float *c, int64_t cs, const float *ap, const float *bp, int64_t T, int64_t k,
                             int64_t n) {
    gemm_packed_body(c, cs, ap, bp, T, k, n);
}
#endif

bonsai_gemm_packed_fn bonsai_gemm_packed_f32 = gemm_packed_generic;

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
