// cross_check.c — the C target on another architecture (arm64 under qemu-user) against itself on this one.
//
// The same deterministic inputs go through every type's quantizer, dequantizer, int8 dot product and
// matmul (both math modes), and the attention. What must be bit-exact everywhere (quantized bytes,
// dequantized floats) is hashed and printed, so run.sh can require both architectures to print the same
// lines; float results are checked here against double-precision references, with the bounds the Swift
// tests use. Exit status 1 on any failed check.
//
// With a file argument, the int8 matmuls' float outputs are hashed into that file too: they must be
// bit-identical between the x86 builds (AVX2 kernels, and VNNI ones emulated through SIMDe), though not
// across architectures.
#include "bonsai.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_u64(void) {   // splitmix64
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u64() >> 40) / (float)(1 << 24); }

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int failures = 0, checks = 0;
static void check(int ok, const char *what, const char *type, double got, double want, double tol) {
    checks++;
    if (ok) return;
    failures++;
    if (failures <= 20) fprintf(stderr, "FAIL %s %s: %.9g vs %.9g (tolerance %.3g)\n", what, type, got, want, tol);
}

// Random rows of `type`, quantized from uniform data (every type has a quantizer).
static void random_rows(int type, int64_t rows, int64_t n, uint8_t *dst) {
    const size_t rs = bonsai_row_size(type, n);
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++) x[i] = uniform(-1, 1);
        if (!bonsai_quantize_row(type, x, dst + r * rs, n)) {
            fprintf(stderr, "cross_check: no quantizer for type %d\n", type);
            exit(1);
        }
    }
    free(x);
}

int main(int argc, char **argv) {
    FILE *x86_exact = argc > 1 ? fopen(argv[1], "w") : NULL;
    if (argc > 1 && !x86_exact) { perror(argv[1]); return 2; }
    const int types[] = {BONSAI_TYPE_F16, BONSAI_TYPE_BF16, BONSAI_TYPE_Q4_0, BONSAI_TYPE_Q4_1, BONSAI_TYPE_Q5_0,
                         BONSAI_TYPE_Q5_1, BONSAI_TYPE_Q8_0, BONSAI_TYPE_Q2_K, BONSAI_TYPE_Q3_K, BONSAI_TYPE_Q4_K,
                         BONSAI_TYPE_Q5_K, BONSAI_TYPE_Q6_K, BONSAI_TYPE_IQ4_NL, BONSAI_TYPE_IQ4_XS};
    const int64_t rows = 37, n = 768;   // rows: not a multiple of 4, 8 or 16; n: 3 super-blocks, 24 blocks of 32
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const int type = types[ti];
        const bonsai_type_traits *t = bonsai_type_info(type);
        const size_t rs = bonsai_row_size(type, n);
        uint8_t *w = malloc(rows * rs);
        float *wf = malloc((size_t)(rows * n) * sizeof(float)), *wf2 = malloc((size_t)n * sizeof(float));
        random_rows(type, rows, n, w);
        for (int64_t r = 0; r < rows; r++) {
            bonsai_dequantize_row(type, w + r * rs, wf + r * n, n);
            bonsai_dequantize_row_fast(type, w + r * rs, wf2, n);
            check(memcmp(wf + r * n, wf2, (size_t)n * sizeof(float)) == 0, "fast dequantization", t->name, r, r, 0);
        }
        printf("%-5s bytes %016llx values %016llx\n", t->name, (unsigned long long)fnv(w, rows * rs, 14695981039346656037ull),
               (unsigned long long)fnv(wf, (size_t)(rows * n) * sizeof(float), 14695981039346656037ull));

        // One int8 dot per row against the activation quantized to the type's vec_dot_type.
        float *x = malloc((size_t)(rows * n) * sizeof(float));
        for (int64_t i = 0; i < rows * n; i++) x[i] = uniform(-3, 3);
        if (t->vec_dot_type >= 0) {
            uint8_t *a = malloc(bonsai_row_size(t->vec_dot_type, n));
            bonsai_quantize_row(t->vec_dot_type, x, a, n);
            for (int64_t r = 0; r < rows; r++) {
                const double ref = bonsai_vec_dot_ref(type, n, w + r * rs, a), got = bonsai_vec_dot(type, n, w + r * rs, a);
                double mag = 0;
                for (int64_t i = 0; i < n; i++) mag += fabs((double)wf[r * n + i] * x[i]);
                const double tol = 2e-6 * mag * 1.1 + 1e-6;   // 1.1: |a| ≤ |x| · (1 + rounding)
                check(fabs(got - ref) <= tol, "int8 dot", t->name, got, ref, tol);
            }
            free(a);
        }

        // Matmul for 1, 5 and 37 tokens in both modes against double over the dequantized weights.
        // F32: f32 sums, 1e-5 of Σ|w·x|. FAST: each activation is rounded by at most half a step of its
        // block's scale (≤ amax/127/2), so the product moves by at most Σ|w|·amax/254 (+ f32 sums).
        const int64_t Ts[] = {1, 5, 37};
        float *y = malloc((size_t)(rows * rows) * sizeof(float));
        bonsai_matrix W = {type, rows, n, rs, w};
        for (int mode = 0; mode < 2; mode++) {
            bonsai_set_math(mode == 0 ? BONSAI_MATH_F32 : BONSAI_MATH_FAST);
            for (size_t k = 0; k < 3; k++) {
                const int64_t T = Ts[k];
                bonsai_matmul(&W, x, T, y, rows, NULL);
                if (x86_exact && mode == 1)
                    fprintf(x86_exact, "%-5s matmul fast T=%-2lld %016llx\n", t->name, (long long)T,
                            (unsigned long long)fnv(y, (size_t)(T * rows) * sizeof(float), 14695981039346656037ull));
                for (int64_t tt = 0; tt < T; tt++) {
                    double amax = 0;
                    for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs(x[tt * n + i]));
                    for (int64_t r = 0; r < rows; r++) {
                        double ref = 0, mag = 0, wsum = 0;
                        for (int64_t i = 0; i < n; i++) {
                            ref += (double)wf[r * n + i] * x[tt * n + i];
                            mag += fabs((double)wf[r * n + i] * x[tt * n + i]);
                            wsum += fabs((double)wf[r * n + i]);
                        }
                        const double tol = 1e-5 * mag + (mode == 1 ? wsum * amax / 254 : 0);
                        check(fabs(y[tt * rows + r] - ref) <= tol, mode ? "matmul fast" : "matmul f32", t->name,
                              y[tt * rows + r], ref, tol);
                    }
                }
            }
        }
        free(y); free(x); free(w); free(wf); free(wf2);
    }

    // Causal attention behind cached keys: the per-query path (13 queries) and the blocked one (70).
    const int heads = 3, hd = 80, pos0 = 27;
    for (int T = 13; T <= 70; T += 57) {
        const int dm = heads * hd, nk = pos0 + T;
        float *q = malloc(sizeof(float) * T * dm), *k = malloc(sizeof(float) * nk * dm), *v = malloc(sizeof(float) * nk * dm);
        float *out = malloc(sizeof(float) * T * dm), *scratch = malloc(sizeof(float) * 64 * nk);
        for (int i = 0; i < T * dm; i++) q[i] = uniform(-1, 1);
        for (int i = 0; i < nk * dm; i++) { k[i] = uniform(-1, 1); v[i] = uniform(-1, 1); }
        const float scale = 1.0f / sqrtf((float)hd);
        bonsai_attention_forward(out, q, dm, k, v, T, pos0, heads, hd, scale, scratch);
        for (int t = 0; t < T; t++)
            for (int h = 0; h < heads; h++) {
                double s[128], m = -INFINITY, z = 0;
                const int keys = pos0 + t + 1;
                for (int j = 0; j < keys; j++) {
                    s[j] = 0;
                    for (int d = 0; d < hd; d++) s[j] += (double)q[t * dm + h * hd + d] * k[j * dm + h * hd + d];
                    s[j] *= scale;
                    m = fmax(m, s[j]);
                }
                for (int j = 0; j < keys; j++) { s[j] = exp(s[j] - m); z += s[j]; }
                for (int d = 0; d < hd; d++) {
                    double ref = 0;
                    for (int j = 0; j < keys; j++) ref += s[j] / z * v[j * dm + h * hd + d];
                    check(fabs(out[t * dm + h * hd + d] - ref) <= 1e-5, "attention", T == 13 ? "13 queries" : "70 queries",
                          out[t * dm + h * hd + d], ref, 1e-5);
                }
            }
        free(q); free(k); free(v); free(out); free(scratch);
    }

    if (x86_exact) fclose(x86_exact);
    fprintf(stderr, "%s: %d checks, %d failed (CPU: %s)\n", failures ? "FAILED" : "ok", checks, failures, bonsai_cpu_features());
    return failures ? 1 : 0;
}
