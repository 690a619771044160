// cpu.c — what the CPU can do, which kernels run, how many threads.
#include "bonsai.h"
#include "simd.h"
#include <pthread.h>
#include <stdio.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include "x86_common.h"
#define BONSAI_X86 1
#endif

// ---------------------------------------------------------------------------- portable references

static float dot_f32_generic(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_f32_generic(float *y, float s, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += s * x[i];
}

// ---------------------------------------------------------------------------- AVX2 + FMA

#ifdef BONSAI_X86
__attribute__((target("avx2,fma")))
static float dot_f32_avx2(const float *a, const float *b, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

__attribute__((target("avx2,fma")))
static void axpy_f32_avx2(float *y, float s, const float *x, int64_t n) {
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vs, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += s * x[i];
}

// exp(x) for 8 lanes: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial (rel. error ~2e-7).
__attribute__((target("avx2,fma")))
static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);      // ln2 split in two parts
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// x[i] = exp(x[i] - max x) for i < n; returns the sum (8 lanes, then the tail in order).
__attribute__((target("avx2,fma")))
static float exp_sum_avx2(float *x, int64_t n) {
    __m256 m8 = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + j));
    float maxv = hmax_ps(m8);
    for (; j < n; j++) if (x[j] > maxv) maxv = x[j];
    __m256 s8 = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_set1_ps(maxv)));
        _mm256_storeu_ps(x + j, e);
        s8 = _mm256_add_ps(s8, e);
    }
    float sum = hsum_ps(s8);
    for (; j < n; j++) {
        x[j] = expf(x[j] - maxv);
        sum += x[j];
    }
    return sum;
}

// gelu_new(x) = 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
__attribute__((target("avx2,fma")))
static void gelu_avx2(float *x, int64_t n) {
    const __m256 k2 = _mm256_set1_ps(-2.0f * 0.7978845608028654f), c = _mm256_set1_ps(0.044715f), one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 u = _mm256_mul_ps(k2, _mm256_fmadd_ps(_mm256_mul_ps(c, v), _mm256_mul_ps(v, v), v));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, exp256(u))));
    }
    for (; i < n; i++) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

// gelu_new'(x) = s + 2 x s (1 - s) u',  s = 1 / (1 + exp(-2u)) = (1 + tanh u) / 2,  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
// dx = dout * gelu_new'(x)
__attribute__((target("avx2,fma")))
static void gelu_backward_avx2(float *dx, const float *x, const float *dout, int64_t n) {
    const float k = 0.7978845608028654f;
    const __m256 k2 = _mm256_set1_ps(-2.0f * k), c = _mm256_set1_ps(0.044715f), one = _mm256_set1_ps(1.0f);
    const __m256 two_k = _mm256_set1_ps(2.0f * k), c3 = _mm256_set1_ps(3.0f * 0.044715f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i), v2 = _mm256_mul_ps(v, v);
        const __m256 u = _mm256_mul_ps(k2, _mm256_fmadd_ps(_mm256_mul_ps(c, v), v2, v));   // -2u
        const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp256(u)));
        const __m256 du = _mm256_mul_ps(two_k, _mm256_fmadd_ps(c3, v2, one));            // 2u'
        const __m256 g = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(v, s), _mm256_sub_ps(one, s)), du, s);
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dout + i), g));
    }
    for (; i < n; i++) {
        const float v = x[i], th = tanhf(k * (v + 0.044715f * v * v * v));
        dx[i] = dout[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * v * v));
    }
}

// One query of one head against n_keys cached keys/values (token stride `stride` elements, f32 or f16):
// scores of 8 keys at a time (8 FMA chains, one transpose-reduce), f32 softmax, then out = Σ p_j v_j
// with the head's output kept in registers. head_dim must be a multiple of 8 and at most 128.
#define AVX2_KV __attribute__((target("avx2,fma,f16c")))
AVX2_KV static inline __m256 kv_load8(const void *p, bool f16, int64_t i) {
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)))
               : _mm256_loadu_ps((const float *)p + i);
}

AVX2_KV __attribute__((always_inline)) static inline void attend_avx2_kv(float *out, const float *q, const void *k,
        const void *v, int64_t n_keys, int64_t stride, int hd, float scale, float *att, bool f16) {
    const int nv = hd / 8;
    int64_t j = 0;
    for (; j + 8 <= n_keys; j += 8) {
        __m256 a[8];
        for (int u = 0; u < 8; u++) a[u] = _mm256_setzero_ps();
        for (int d = 0; d < hd; d += 8) {
            const __m256 qv = _mm256_loadu_ps(q + d);
            for (int u = 0; u < 8; u++) a[u] = _mm256_fmadd_ps(qv, kv_load8(k, f16, (j + u) * stride + d), a[u]);
        }
        const __m256 s0123 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        const __m256 s4567 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
        const __m256 sums = _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
        _mm256_storeu_ps(att + j, _mm256_mul_ps(sums, _mm256_set1_ps(scale)));
    }
    for (; j < n_keys && !f16; j++) att[j] = dot_f32_avx2(q, (const float *)k + j * stride, hd) * scale;
    for (; j < n_keys; j++) {
        __m256 a = _mm256_setzero_ps();
        for (int d = 0; d < hd; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), kv_load8(k, f16, j * stride + d), a);
        att[j] = hsum_ps(a) * scale;
    }
    const float sum = exp_sum_avx2(att, n_keys);   // scalar expf was an eighth of generation time at 1000 positions
    __m256 o[16];
    for (int i = 0; i < nv; i++) o[i] = _mm256_setzero_ps();
    for (j = 0; j < n_keys; j++) {
        const __m256 p = _mm256_set1_ps(att[j]);
        for (int i = 0; i < nv; i++) o[i] = _mm256_fmadd_ps(p, kv_load8(v, f16, j * stride + 8 * i), o[i]);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (int i = 0; i < nv; i++) _mm256_storeu_ps(out + 8 * i, _mm256_mul_ps(o[i], inv));
}

AVX2_KV static void f32_to_f16_f16c(const float *x, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = bonsai_f32_to_f16(x[i]);
}

AVX2_KV static void attend_avx2(float *out, const float *q, const void *k, const void *v, int64_t n_keys,
                                int64_t stride, int hd, float scale, float *att) {
    attend_avx2_kv(out, q, k, v, n_keys, stride, hd, scale, att, false);
}

AVX2_KV static void attend_avx2_f16(float *out, const float *q, const void *k, const void *v, int64_t n_keys,
                                    int64_t stride, int hd, float scale, float *att) {
    attend_avx2_kv(out, q, k, v, n_keys, stride, hd, scale, att, true);
}
#endif

static float exp_sum_generic(float *x, int64_t n) {
    float maxv = -INFINITY, sum = 0.0f;
    for (int64_t j = 0; j < n; j++) maxv = x[j] > maxv ? x[j] : maxv;
    for (int64_t j = 0; j < n; j++) {
        x[j] = expf(x[j] - maxv);
        sum += x[j];
    }
    return sum;
}

static void gelu_backward_generic(float *dx, const float *x, const float *dout, int64_t n) {
    const float k = 0.7978845608028654f;
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i], th = tanhf(k * (v + 0.044715f * v * v * v));
        dx[i] = dout[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * v * v));
    }
}

static void gelu_generic(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

// ---------------------------------------------------------------------------- dispatch

bonsai_vec_dot_fn bonsai_fast_dot[BONSAI_TYPE_COUNT];
bonsai_vec_dot4_fn bonsai_fast_dot4[BONSAI_TYPE_COUNT];
bonsai_act_layout bonsai_fast_act[BONSAI_TYPE_COUNT];
bonsai_dequant_fn bonsai_fast_dequant[BONSAI_TYPE_COUNT];
bonsai_gemm4x4_fn bonsai_fast_gemm4x4[BONSAI_TYPE_COUNT];
bonsai_dot_fn bonsai_dot_f32 = dot_f32_generic;
bonsai_axpy_fn bonsai_axpy_f32 = axpy_f32_generic;
bonsai_gelu_fn bonsai_gelu_f32 = gelu_generic;
bonsai_gelu_backward_fn bonsai_gelu_backward_f32 = gelu_backward_generic;
bonsai_exp_sum_fn bonsai_exp_sum_f32 = exp_sum_generic;
bonsai_attend_fn bonsai_attend_f32 = NULL, bonsai_attend_f16 = NULL;

static void f32_to_f16_generic(const float *x, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = bonsai_f32_to_f16(x[i]);
}
bonsai_f16_row_fn bonsai_f32_to_f16_row = f32_to_f16_generic;
static char features[128] = "generic";

#ifdef BONSAI_X86
// CPUID read directly (not __builtin_cpu_supports, whose runtime symbols not every toolchain links),
// and XGETBV to check that the OS saves the wide registers.
typedef struct { bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avxvnni; } x86_caps;

static x86_caps x86_detect(void) {
    x86_caps c = {0};
    unsigned a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
    const bool osxsave = cx & (1u << 27), avx = cx & (1u << 28);
    if (!osxsave || !avx) return c;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    const bool ymm = (xlo & 0x6) == 0x6, zmm = (xlo & 0xe6) == 0xe6;
    c.fma = ymm && (cx & (1u << 12));
    c.f16c = ymm && (cx & (1u << 29));
    unsigned a7, b7, c7, d7;
    if (!__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) return c;
    c.avx2 = ymm && (b7 & (1u << 5));
    c.avx512f = zmm && (b7 & (1u << 16));
    c.avx512bw = zmm && (b7 & (1u << 30));
    c.avx512vl = zmm && (b7 & (1u << 31));
    c.avx512vnni = zmm && (c7 & (1u << 11));
    unsigned a71, b71, c71, d71;
    if (__get_cpuid_count(7, 1, &a71, &b71, &c71, &d71)) c.avxvnni = ymm && (a71 & (1u << 4));
    return c;
}
#endif

static void simd_init_once(void) {
#ifdef BONSAI_X86
    const x86_caps caps = x86_detect();
    const bool avx2 = caps.avx2 && caps.fma;
    features[0] = 0;
    if (avx2) strcat(features, "AVX2 FMA ");
    if (caps.f16c) strcat(features, "F16C ");
    if (caps.avxvnni) strcat(features, "AVX_VNNI ");
    if (caps.avx512f) strcat(features, "AVX512F ");
    if (caps.avx512bw) strcat(features, "AVX512BW ");
    if (caps.avx512vl) strcat(features, "AVX512VL ");
    if (caps.avx512vnni) strcat(features, "AVX512_VNNI ");
    if (avx2) {
        bonsai_dot_f32 = dot_f32_avx2;
        bonsai_axpy_f32 = axpy_f32_avx2;
        bonsai_gelu_f32 = gelu_avx2;
        bonsai_gelu_backward_f32 = gelu_backward_avx2;
        bonsai_exp_sum_f32 = exp_sum_avx2;
        bonsai_gemm_nn_f32 = bonsai_gemm_nn_avx2;
        bonsai_gemm_packed_f32 = bonsai_gemm_packed_avx2;
        bonsai_fit_affine_lanes_kernel = bonsai_fit_affine_lanes_avx2;
        bonsai_fit_symmetric_lanes_kernel = bonsai_fit_symmetric_lanes_avx2;
        bonsai_fit_affine16_lanes_kernel = bonsai_fit_affine16_lanes_avx2;
        bonsai_fit_iq4_lanes_kernel = bonsai_fit_iq4_lanes_avx2;
        bonsai_iq4_levels_lanes_kernel = bonsai_iq4_levels_lanes_avx2;
        if (caps.f16c) {
            bonsai_attend_f32 = attend_avx2;
            bonsai_attend_f16 = attend_avx2_f16;
            bonsai_f32_to_f16_row = f32_to_f16_f16c;
            bonsai_register_avx2_kernels(bonsai_fast_dot, bonsai_fast_dot4, bonsai_fast_act, bonsai_fast_gemm4x4,
                                         bonsai_gemm_unpacked);
            bonsai_register_avx2_dequant(bonsai_fast_dequant);
            bonsai_register_float_dots_avx2(bonsai_fast_dot, bonsai_fast_dot4, bonsai_fast_dequant);
            bonsai_pack_act8x32_kernel = bonsai_pack_act8x32_avx2;
            const bool evex = caps.avx512vnni && caps.avx512vl;
            if ((evex || caps.avxvnni) && !getenv("BONSAI_NO_VNNI"))   // BONSAI_NO_VNNI=1: AVX2's, to compare
                bonsai_register_vnni_kernels(bonsai_fast_dot, bonsai_fast_dot4, bonsai_fast_gemm4x4, bonsai_gemm_unpacked,
                                             bonsai_gemm_unpacked16, evex);
#ifdef BONSAI_VNNI_EMULATED   // tools/cross_check: SIMDe's dpbusd on any AVX2 CPU (matmul_vnni.c)
            const char *flavor = getenv("BONSAI_VNNI_EMULATED");
            bonsai_register_vnni_kernels(bonsai_fast_dot, bonsai_fast_dot4, bonsai_fast_gemm4x4, bonsai_gemm_unpacked,
                                         bonsai_gemm_unpacked16, !flavor || strcmp(flavor, "avxvnni") != 0);
            strcat(features, flavor && !strcmp(flavor, "avxvnni") ? "AVX_VNNI(emulated) " : "AVX512_VNNI(emulated) ");
#endif
        }
    }
    if (!features[0]) strcpy(features, "SSE2");
    else features[strlen(features) - 1] = 0;
#elif defined(__aarch64__)
    bool sdot = false;
    bonsai_register_neon_kernels(bonsai_fast_dot, bonsai_gemm_unpacked, &sdot);
    bonsai_register_float_dots_neon(bonsai_fast_dot, bonsai_fast_dot4);
    strcpy(features, sdot ? "NEON DOTPROD" : "NEON");
#endif
}

void bonsai_dequantize_row_fast(int type, const void *src, float *dst, int64_t n) {
    bonsai_simd_init();
    bonsai_dequant_fn f = type >= 0 && type < BONSAI_TYPE_COUNT ? bonsai_fast_dequant[type] : NULL;
    if (f) f(src, dst, n);
    else bonsai_dequantize_row(type, src, dst, n);
}

static pthread_once_t simd_once = PTHREAD_ONCE_INIT;
void bonsai_simd_init(void) { pthread_once(&simd_once, simd_init_once); }

const char *bonsai_cpu_features(void) {
    bonsai_simd_init();
    return features;
}

bool bonsai_has_openmp(void) {
#ifdef BONSAI_OPENMP
    return true;
#else
    return false;
#endif
}

int bonsai_max_threads(void) { return BONSAI_NUM_THREADS(); }

void bonsai_set_threads(int n) {
#ifdef BONSAI_OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}
