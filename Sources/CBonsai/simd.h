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
// The same dot for 4 rows at once, rows w_stride bytes apart: out[j] = row j · a, bit-identical to the
// one-row dot (the same operations in the same order per row). Generation's products read each weight
// byte once per token, and four streams far apart read faster than one (bonsai_matmul_batch).
typedef void (*bonsai_vec_dot4_fn)(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]);
extern bonsai_vec_dot4_fn bonsai_fast_dot4[BONSAI_TYPE_COUNT];   // NULL: four one-row dots
// Some fast dots read the activation row in a layout of their own, made once per token from the
// vec_dot_type row (bonsai_fast_act[type].make; size: its bytes for n elements). NULL make: the dot reads
// the vec_dot_type row itself.
typedef struct { size_t (*size)(int64_t n); void (*make)(const void *a, int64_t n, void *dst); } bonsai_act_layout;
extern bonsai_act_layout bonsai_fast_act[BONSAI_TYPE_COUNT];

// q4_0's generation activation (and q5_0's, q4_1's, q5_1's: their elements sit the same way), per 8 blocks
// (256 elements) from q8_0 (or q8_1) blocks y_0..y_7. A q4_0 block's low
// nibbles are its elements 0..15 and its high nibbles 16..31, so one 32-byte load of blocks 2j and 2j+1
// gives the nibbles that meet lo[j] and hi[j]. The scales are f32, converted once per token instead of
// once per row. The per-block values sit in the lane order the kernel's horizontal adds leave the block
// sums in: lane BONSAI_Q4_0_LANE(b) holds block b's (0, 2, 4, 6, 1, 3, 5, 7). A last partial group is
// padded with zero blocks.
#define BONSAI_Q4_0_LANE(b) (((b) % 2) * 4 + (b) / 2)
typedef struct {
    int8_t lo[4][32];   // pair j: elements 0..15 of y_2j, then of y_2j+1
    int8_t hi[4][32];   // elements 16..31 of the same blocks
    float d[8];         // the blocks' scales, by lane
    int32_t c[8];       // 8·Σy, by lane: q4_0's q − 8 taken off the exact integer sum (q5_0: 2c; q4_1, q5_1: m·c/8)
} bonsai_q4_0_act8;     // 320 B
size_t bonsai_q4_0_act_size(int64_t n);
void bonsai_q4_0_act_make(const void *a, int64_t n, void *dst);
void bonsai_q4_1_act_make(const void *a, int64_t n, void *dst);   // the same layout from q8_1 rows (q4_1, q5_1)
// out[r][c] = row r of w (rows ws bytes apart) · activation row c of a (as bytes apart), 4 × 4.
// Must equal four times four bonsai_fast_dot calls up to float rounding.
typedef void (*bonsai_gemm4x4_fn)(int64_t n, const void *w, size_t ws, const void *a, size_t as, float out[4][4]);
extern bonsai_gemm4x4_fn bonsai_fast_gemm4x4[BONSAI_TYPE_COUNT];

// The prompt kernel over unpacked weights (unpacked.c). Four weight rows, one 32-element block, one byte
// per element with a scale and an offset per row: w[r][k] = d[r]·q[r][k] + m[r], q < 32.
typedef struct { uint8_t q[4][32]; float d[4]; float m[4]; } bonsai_u8x4_block;     // 160 B
// The 16-granular types (q2_K, q3_K, q6_K): a scale and an offset per 16 elements, q < 64:
// w[r][k] = d[k/16][r]·q[r][k] + m[k/16][r].
typedef struct { uint8_t q[4][32]; float d[2][4]; float m[2][4]; } bonsai_u8x4h_block;   // 192 B
// q8_0's signed bytes: w[r][k] = d[r]·q[r][k], |q| ≤ 128. Beside them what the level's kernel reads
// (bonsai_s8_unpack_extras): the magnitudes for AVX2's maddubs (unsigned × signed), or qsum[r] = Σ_k q[r][k]
// for the VNNI kernels, which multiply the activations offset by 128 (unsigned) with q as it is and take
// 128·qsum back off; NEON multiplies signed by signed and reads neither.
typedef struct { uint8_t absq[4][32]; int8_t q[4][32]; float d[4]; int32_t qsum[4]; } bonsai_s8x4_block;   // 288 B
typedef enum { BONSAI_S8_PLAIN, BONSAI_S8_MAGNITUDES, BONSAI_S8_SUMS } bonsai_s8_extras;
extern bonsai_s8_extras bonsai_s8_unpack_extras;   // set where a level registers its gemm_s8
// Eight tokens, one 32-element block: x[c][k] ≈ d[c]·qs[k/4][4c + k%4]; s[c] = d[c]·Σ_k q[c][k],
// s_lo[c] the same over k < 16.
typedef struct { float d[8]; float s[8]; float s_lo[8]; int8_t qs[8][32]; } bonsai_act8x32_block;  // 352 B
// How a type unpacks, and so which kernel multiplies it.
typedef enum {
    BONSAI_UNPACKED_U8,          // bonsai_u8x4_block, q < 32 (32-granular types)
    BONSAI_UNPACKED_U8_HALVES,   // bonsai_u8x4h_block, q < 64 (16-granular K types)
    BONSAI_UNPACKED_S8,          // bonsai_s8x4_block (q8_0)
    BONSAI_UNPACKED_KINDS
} bonsai_unpacked_kind;
extern const size_t bonsai_unpacked_block_size[BONSAI_UNPACKED_KINDS];
// Row r (0..3) of a group of four, n elements → n/32 blocks of the kind's block type.
// unpack NULL: the type does not unpack.
typedef void (*bonsai_unpack_fn)(const void *row, int64_t n, void *dst, int r);
typedef struct { bonsai_unpack_fn unpack; bonsai_unpacked_kind kind; } bonsai_unpacker;
extern const bonsai_unpacker bonsai_unpack[BONSAI_TYPE_COUNT];
// Rows x, x + xs, …, x + 7·xs (n floats each) → n/32 blocks.
void bonsai_pack_act8x32(const float *x, int64_t xs, int64_t n, bonsai_act8x32_block *dst);
typedef void (*bonsai_pack_act8x32_fn)(const float *x, int64_t xs, int64_t n, bonsai_act8x32_block *dst);
extern bonsai_pack_act8x32_fn bonsai_pack_act8x32_kernel;   // an ISA version (bit-identical), or NULL
// out[r][c] = Σ_b d_w[r]·d_a[c]·Σ_k q_w·q_a + m_w[r]·s_a[c] over nb blocks of the kind's type: row r · token c.
typedef void (*bonsai_gemm_unpacked_fn)(int64_t nb, const void *w, const bonsai_act8x32_block *a, float out[4][8]);
extern bonsai_gemm_unpacked_fn bonsai_gemm_unpacked[BONSAI_UNPACKED_KINDS];   // per kind; NULL: no kernel
// The same for two sets of 8 tokens at once (a0: tokens 0..7 of out, a1: 8..15), bit-identical to two
// bonsai_gemm_unpacked calls: the 512-bit kernels (matmul_vnni.c). NULL: none on this CPU.
typedef void (*bonsai_gemm_unpacked16_fn)(int64_t nb, const void *w, const bonsai_act8x32_block *a0,
                                          const bonsai_act8x32_block *a1, float out[4][16]);
extern bonsai_gemm_unpacked16_fn bonsai_gemm_unpacked16[BONSAI_UNPACKED_KINDS];
#if defined(__x86_64__)
void bonsai_pack_act8x32_avx2(const float *x, int64_t xs, int64_t n, bonsai_act8x32_block *dst);
#endif

// Row dequantization by an ISA kernel, bit-identical to bonsai_dequantize_row; NULL: use the reference.
typedef void (*bonsai_dequant_fn)(const void *src, float *dst, int64_t n);
extern bonsai_dequant_fn bonsai_fast_dequant[BONSAI_TYPE_COUNT];

// The K quantizers' scale searches on a block's 8 sub-blocks at once (quants_k_lanes.h), compiled at the
// baseline ISA, and on x86 for AVX2 too; the _kernel pointers hold this CPU's (bit-identical) choice.
typedef void (*bonsai_fit_affine_lanes_fn)(const float *x, int nmax, float rmin, float rdelta, int nstep,
                                           float scales[8], float mins[8], uint8_t L[BONSAI_QKK]);
typedef void (*bonsai_fit_symmetric_lanes_fn)(const float *x, int nmax, float scales[8], int8_t L[128]);
typedef void (*bonsai_fit_affine16_lanes_fn)(const float *x, float scales[8], float mins[8], uint8_t L[128]);
void bonsai_fit_affine16_lanes(const float *x, float scales[8], float mins[8], uint8_t L[128]);
void bonsai_fit_affine_lanes(const float *x, int nmax, float rmin, float rdelta, int nstep, float scales[8],
                             float mins[8], uint8_t L[BONSAI_QKK]);
void bonsai_fit_symmetric_lanes(const float *x, int nmax, float scales[8], int8_t L[128]);
#if defined(__x86_64__)
void bonsai_fit_affine_lanes_avx2(const float *x, int nmax, float rmin, float rdelta, int nstep, float scales[8],
                                  float mins[8], uint8_t L[BONSAI_QKK]);
void bonsai_fit_symmetric_lanes_avx2(const float *x, int nmax, float scales[8], int8_t L[128]);
void bonsai_fit_affine16_lanes_avx2(const float *x, float scales[8], float mins[8], uint8_t L[128]);
#endif
// iq4_nl / iq4_xs: the scales of 8 sub-blocks of 32, and their levels at given scales (the same file).
typedef void (*bonsai_fit_iq4_lanes_fn)(const float *x, float scales[8]);
typedef void (*bonsai_iq4_levels_lanes_fn)(const float *x, const float d[8], uint8_t L[BONSAI_QKK]);
void bonsai_fit_iq4_lanes(const float *x, float scales[8]);
void bonsai_iq4_levels_lanes(const float *x, const float d[8], uint8_t L[BONSAI_QKK]);
#if defined(__x86_64__)
void bonsai_fit_iq4_lanes_avx2(const float *x, float scales[8]);
void bonsai_iq4_levels_lanes_avx2(const float *x, const float d[8], uint8_t L[BONSAI_QKK]);
#endif
extern bonsai_fit_iq4_lanes_fn bonsai_fit_iq4_lanes_kernel;
extern bonsai_iq4_levels_lanes_fn bonsai_iq4_levels_lanes_kernel;
extern bonsai_fit_affine_lanes_fn bonsai_fit_affine_lanes_kernel;
extern bonsai_fit_symmetric_lanes_fn bonsai_fit_symmetric_lanes_kernel;
extern bonsai_fit_affine16_lanes_fn bonsai_fit_affine16_lanes_kernel;

// f16 and bf16 rows · f32 activations (float_dots.c), and on x86 the rows' conversion to f32.
#if defined(__x86_64__)
void bonsai_register_float_dots_avx2(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT],
                                     bonsai_dequant_fn dequant[BONSAI_TYPE_COUNT]);
#elif defined(__aarch64__)
void bonsai_register_float_dots_neon(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT]);
#endif

#if defined(__aarch64__)
// sdot: set to whether the prompt kernels use ARMv8.2's SDOT.
void bonsai_register_neon_kernels(bonsai_vec_dot_fn table[BONSAI_TYPE_COUNT],
                                  bonsai_gemm_unpacked_fn gemm[BONSAI_UNPACKED_KINDS], bool *sdot);
#endif
#if defined(__x86_64__)
void bonsai_register_avx2_dequant(bonsai_dequant_fn table[BONSAI_TYPE_COUNT]);
void bonsai_register_avx2_kernels(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT],
                                  bonsai_act_layout acts[BONSAI_TYPE_COUNT], bonsai_gemm4x4_fn gemm4x4[BONSAI_TYPE_COUNT],
                                  bonsai_gemm_unpacked_fn gemm[BONSAI_UNPACKED_KINDS]);
// int8_x86.h's kernels with dpbusd (matmul_vnni.c) in place of AVX2's: evex, AVX512-VNNI + VL, and the
// 512-bit prompt kernels into gemm16; else AVX-VNNI.
void bonsai_register_vnni_kernels(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT],
                                  bonsai_gemm4x4_fn gemm4x4[BONSAI_TYPE_COUNT],
                                  bonsai_gemm_unpacked_fn gemm[BONSAI_UNPACKED_KINDS],
                                  bonsai_gemm_unpacked16_fn gemm16[BONSAI_UNPACKED_KINDS], bool evex);
#endif

// x[i] = gelu_new(x[i])
typedef void (*bonsai_gelu_fn)(float *x, int64_t n);
extern bonsai_gelu_fn bonsai_gelu_f32;
// dx[i] = dout[i] * gelu_new'(x[i])
typedef void (*bonsai_gelu_backward_fn)(float *dx, const float *x, const float *dout, int64_t n);
extern bonsai_gelu_backward_fn bonsai_gelu_backward_f32;

// x[i] = exp(x[i] - max_j x[j]) in place; returns Σ x[i] (softmax without the division). A vector exp
// (relative error ~2e-7) where the CPU has AVX2.
typedef float (*bonsai_exp_sum_fn)(float *x, int64_t n);
extern bonsai_exp_sum_fn bonsai_exp_sum_f32;

// One query of one head against the cache (see attend_avx2), or NULL (then ops.c's loop runs). k, v: the
// head's first key and value, f32 or f16 elements; rows `stride` elements apart.
typedef void (*bonsai_attend_fn)(float *out, const float *q, const void *k, const void *v, int64_t n_keys,
                                 int64_t stride, int hd, float scale, float *att);
extern bonsai_attend_fn bonsai_attend_f32, bonsai_attend_f16;
// dst[i] = x[i] as f16, rounded to nearest even (bonsai_f32_to_f16); F16C where the CPU has it.
typedef void (*bonsai_f16_row_fn)(const float *x, uint16_t *dst, int64_t n);
extern bonsai_f16_row_fn bonsai_f32_to_f16_row;

// C[t][j] += sum_r A[t][r] * B[r][j] for t < T, r < k, j < n; rows cs, as, bs floats apart (gemm_f32.c).
typedef void (*bonsai_gemm_nn_fn)(float *c, int64_t cs, const float *a, int64_t as, const float *b, int64_t bs,
                                  int64_t T, int64_t k, int64_t n);
extern bonsai_gemm_nn_fn bonsai_gemm_nn_f32;
#if defined(__x86_64__)
void bonsai_gemm_nn_avx2(float *c, int64_t cs, const float *a, int64_t as, const float *b, int64_t bs,
                         int64_t T, int64_t k, int64_t n);
#endif

// The same product from packed operands (gemm_f32.c): A as groups of 6 rows, each [k][6] (bonsai_pack_a6;
// ceil(T/6)·6·k floats), B as panels of 16 columns, each [k][16] (ceil(n/16)·16·k floats; the caller
// writes them, e.g. while dequantizing a weight tile).
typedef void (*bonsai_gemm_packed_fn)(float *c, int64_t cs, const float *ap, const float *bp, int64_t T, int64_t k,
                                      int64_t n);
extern bonsai_gemm_packed_fn bonsai_gemm_packed_f32;
void bonsai_pack_a6(float *dst, const float *a, int64_t as, int64_t T, int64_t k);
#if defined(__x86_64__)
void bonsai_gemm_packed_avx2(float *c, int64_t cs, const float *ap, const float *bp, int64_t T, int64_t k,
                             int64_t n);
#endif

// Called once (thread-safe, idempotent) before the first kernel runs.
void bonsai_simd_init(void);

#ifdef BONSAI_OPENMP
#include <omp.h>
#define BONSAI_THREAD_ID() omp_get_thread_num()
#define BONSAI_NUM_THREADS() omp_get_max_threads()
#define BONSAI_TEAM_SIZE() omp_get_num_threads()
#else
#define BONSAI_THREAD_ID() 0
#define BONSAI_NUM_THREADS() 1
#define BONSAI_TEAM_SIZE() 1
#endif

// Inside a parallel region: the calling thread's share [*begin, *end) of n items, contiguous and in
// thread order, sizes differing by at most one. The ops a generated token runs split their loops with
// this (or stride by the team size) instead of `omp for`, and run serially without entering a region:
// the decode loop allocates nothing, and Debian's libomp mallocs a trace string on every worksharing
// loop and a dispatch buffer on every if(false) region.
static inline void bonsai_thread_share(int64_t n, int64_t *begin, int64_t *end) {
    const int64_t k = BONSAI_THREAD_ID(), nth = BONSAI_TEAM_SIZE();
    *begin = n * k / nth;
    *end = n * (k + 1) / nth;
}

#endif
