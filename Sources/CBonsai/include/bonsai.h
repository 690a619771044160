// bonsai.h — the C API that Swift sees.
//
// Plain functions over pointers and sizes. Matrices are row-major in ggml's sense: a weight with
// `rows` output channels and `cols` inputs stores each row contiguously (GGUF ne0 = cols, ne1 = rows;
// torch's [out, in] is the same memory layout). A quantized row is cols / block_size blocks.
#ifndef BONSAI_H
#define BONSAI_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------
// Tensor types: the numeric values are ggml's (they are written into GGUF files).
typedef enum {
    BONSAI_TYPE_F32  = 0,
    BONSAI_TYPE_F16  = 1,
    BONSAI_TYPE_Q4_0 = 2,
    BONSAI_TYPE_Q4_1 = 3,
    BONSAI_TYPE_Q5_0 = 6,
    BONSAI_TYPE_Q5_1 = 7,
    BONSAI_TYPE_Q8_0 = 8,
    BONSAI_TYPE_Q8_1 = 9,
    BONSAI_TYPE_Q2_K = 10,
    BONSAI_TYPE_Q3_K = 11,
    BONSAI_TYPE_Q4_K = 12,
    BONSAI_TYPE_Q5_K = 13,
    BONSAI_TYPE_Q6_K = 14,
    BONSAI_TYPE_Q8_K = 15,
    BONSAI_TYPE_IQ4_NL = 20,
    BONSAI_TYPE_IQ4_XS = 23,
    BONSAI_TYPE_I8   = 24,
    BONSAI_TYPE_I16  = 25,
    BONSAI_TYPE_I32  = 26,
    BONSAI_TYPE_I64  = 27,
    BONSAI_TYPE_F64  = 28,
    BONSAI_TYPE_BF16 = 30,
    BONSAI_TYPE_COUNT = 40,
} bonsai_type;

// Per type: elements per block and bytes per block. block_size == 0 means "not a type we know".
typedef struct {
    const char *name;      // ggml's spelling: "q4_0", "q6_K", ...
    int block_size;        // elements per block (1 for plain floats)
    int type_size;         // bytes per block
    bool can_dequantize;   // weights of this type can be run
    int vec_dot_type;      // the type activations are quantized to for this type's int8 dot product
                           // (q8_0, q8_1 or q8_K); f32 for f16/bf16, whose dot converts the weights and
                           // multiplies in f32; -1 where weights are dequantized to f32 instead
} bonsai_type_traits;

const bonsai_type_traits *bonsai_type_info(int type);   // NULL for an id we do not know
// Bytes of one row of n elements (n must be a multiple of the block size).
size_t bonsai_row_size(int type, int64_t n);

// ---------------------------------------------------------------------------------------------
// Block structs, one per quant type (layouts identical to ggml's).
#define BONSAI_QK  32     // block size of the _0/_1 types
#define BONSAI_QKK 256    // super-block size of the K types

typedef uint16_t bonsai_f16;
typedef uint16_t bonsai_bf16;

typedef struct { bonsai_f16 d; uint8_t qs[BONSAI_QK / 2]; } block_q4_0;                         // 18 B
typedef struct { bonsai_f16 d, m; uint8_t qs[BONSAI_QK / 2]; } block_q4_1;                      // 20 B
typedef struct { bonsai_f16 d; uint8_t qh[4]; uint8_t qs[BONSAI_QK / 2]; } block_q5_0;          // 22 B
typedef struct { bonsai_f16 d, m; uint8_t qh[4]; uint8_t qs[BONSAI_QK / 2]; } block_q5_1;       // 24 B
typedef struct { bonsai_f16 d; int8_t qs[BONSAI_QK]; } block_q8_0;                              // 34 B
typedef struct { bonsai_f16 d, s; int8_t qs[BONSAI_QK]; } block_q8_1;                          // 36 B
typedef struct { uint8_t scales[16]; uint8_t qs[64]; bonsai_f16 d, dmin; } block_q2_K;          // 84 B
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; bonsai_f16 d; } block_q3_K; // 110 B
typedef struct { bonsai_f16 d, dmin; uint8_t scales[12]; uint8_t qs[128]; } block_q4_K;         // 144 B
typedef struct { bonsai_f16 d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } block_q5_K; // 176 B
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; bonsai_f16 d; } block_q6_K; // 210 B
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } block_q8_K;                      // 292 B
// The non-linear 4-bit types: a nibble picks one of 16 fixed levels (bonsai_iq4_levels), not q − 8.
typedef struct { bonsai_f16 d; uint8_t qs[BONSAI_QK / 2]; } block_iq4_nl;                         // 18 B
typedef struct { bonsai_f16 d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } block_iq4_xs; // 136 B
extern const int8_t bonsai_iq4_levels[16];

// ---------------------------------------------------------------------------------------------
// Scalar conversions (exact; round-to-nearest-even for f32 -> f16/bf16).
float bonsai_f16_to_f32(bonsai_f16 h);
bonsai_f16 bonsai_f32_to_f16(float f);
float bonsai_bf16_to_f32(bonsai_bf16 h);
bonsai_bf16 bonsai_f32_to_bf16(float f);

// Dequantize n elements (a multiple of the block size) of `type` at src into dst.
// Bit-identical to ggml's dequantize_row_<type>. Returns false for a type that cannot be dequantized.
bool bonsai_dequantize_row(int type, const void *src, float *dst, int64_t n);

// The same through an ISA kernel where one exists (AVX2: q4_0, q8_0), else the reference; the results are
// bit-identical to bonsai_dequantize_row (tested). For hot loops such as the backward pass's weight tiles.
void bonsai_dequantize_row_fast(int type, const void *src, float *dst, int64_t n);

// Quantize n floats into `type` blocks with ggml's reference quantizer (quantize_row_<type>_ref).
// Returns false for a type without a quantizer here.
bool bonsai_quantize_row(int type, const float *src, void *dst, int64_t n);
// The same bytes by the plain one-sub-block-at-a-time search that the fast quantizers (q2_K, q4_K, q5_K,
// q6_K, iq4_nl, iq4_xs: 8 sub-blocks at a time in SIMD lanes) are tested against.
bool bonsai_quantize_row_reference(int type, const float *src, void *dst, int64_t n);

// The reference dot product of one weight row with one activation row of type traits.vec_dot_type:
// both dequantized to f32, products summed in double. Fast kernels are tested against it.
float bonsai_vec_dot_ref(int type, int64_t n, const void *w, const void *a);

// The dot product the fast path uses (an ISA-specific kernel where one exists, else the reference).
float bonsai_vec_dot(int type, int64_t n, const void *w, const void *a);

// How matmuls compute. FAST: int8 products where the CPU has kernels for the weight type — one token:
// activations quantized to the type's vec_dot_type (as llama.cpp does); prompts of 4+ tokens: rounded per
// 32 elements with f32 scales against unpacked weights (activation rounding ~0.4% per element either
// way); q8_0 prompts of 32+ tokens and types without kernels: the exact f32 product. F32: weights are
// dequantized to f32 and multiplied with f32 activations (matches float32 frameworks to ~1e-6).
typedef enum { BONSAI_MATH_FAST = 0, BONSAI_MATH_F32 = 1 } bonsai_math;
void bonsai_set_math(bonsai_math mode);
bonsai_math bonsai_get_math(void);

// Rows of a matrix from one type to another (dequantize → quantize), rows in parallel:
// src rows are src_stride bytes apart, dst rows dense. False if either type is not supported.
bool bonsai_convert_rows(int src_type, const void *src, size_t src_stride, int dst_type, void *dst,
                         int64_t rows, int64_t cols);

// ---------------------------------------------------------------------------------------------
// A weight matrix as the kernels see it: rows x cols of `type`, rows contiguous, row_stride bytes apart.
typedef struct {
    int type;
    int64_t rows;        // output channels
    int64_t cols;        // input features
    size_t row_stride;   // bytes from one row to the next (== bonsai_row_size(type, cols) when dense)
    const void *data;
} bonsai_matrix;

// Y[t][r] = sum_c W[r][c] * X[t][c] + (bias ? bias[r] : 0), for t < T, r < rows.
// X: [T, cols] f32, Y: [T, y_stride] f32 (y_stride >= rows). Weights are dequantized to f32 and the
// products accumulate in f32: the result is what a float32 framework computes from the same weights.
void bonsai_matmul(const bonsai_matrix *W, const float *X, int64_t T, float *Y, int64_t y_stride,
                   const float *bias);

// Several products over the same T tokens, each exactly as bonsai_matmul computes it. Generation's
// (int8 dots, T < 4) share one parallel region: each thread quantizes the inputs itself, starts on an
// equal share of the weight bytes and then takes rows left by slower threads, so the threads meet once
// per batch instead of twice per product (PHI-2's q, k, v and fc1 read the same input; dense and fc2
// write the two halves of one residual sum). Other jobs run one after another through bonsai_matmul.
// No job may write where another reads.
typedef struct {
    const bonsai_matrix *W;
    const float *X;       // [T, W->cols]
    float *Y;             // [T, y_stride]
    int64_t y_stride;
    const float *bias;    // [W->rows] or NULL
} bonsai_matmul_job;
void bonsai_matmul_batch(const bonsai_matmul_job *jobs, int n_jobs, int64_t T);

// matmul_backward: the input gradient of the product above: dX [T, cols] (+)= dY [T, rows] W,
// dY rows dy_stride floats apart; f32 accumulation over W dequantized exactly.
void bonsai_matmul_backward(const bonsai_matrix *W, const float *dY, int64_t dy_stride, int64_t T, float *dX,
                            bool accumulate);

// Row r of W, dequantized: dst[cols].
void bonsai_matrix_row(const bonsai_matrix *W, int64_t r, float *dst);

// ---------------------------------------------------------------------------------------------
// Transformer ops (forward; backward passes sit beside them in ops.c when training needs them).

// layernorm_forward: out[T,C] = (x - mean) / sqrt(var + eps) * w + b, statistics in f32 per row;
// mean, rstd [T] (either may be NULL) keep the statistics for the backward pass.
void bonsai_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                              const float *b, int64_t T, int64_t C, float eps);
// layernorm_backward: dx [T,C] += (d out / d x)^T dout; w, b frozen (no weight gradients).
void bonsai_layernorm_backward(float *dx, const float *dout, const float *x, const float *mean,
                               const float *rstd, const float *w, int64_t T, int64_t C);

// gelu_new (tanh approximation), in place on n values.
void bonsai_gelu_forward(float *x, int64_t n);
// gelu_backward: dx[n] = dout[n] * gelu_new'(x[n]), x the forward's input.
void bonsai_gelu_backward(float *dx, const float *x, const float *dout, int64_t n);

// NeoX rotary on the first rot_dim dims of each head, in place.
// x: [T, n_head, head_dim] with row stride `stride` floats between tokens; token t sits at pos0 + t.
void bonsai_rope_neox_forward(float *x, int64_t T, int64_t stride, int n_head, int head_dim,
                              int rot_dim, float theta, int64_t pos0);
// rope_neox_backward: the same rotation transposed, in place on the gradient dx.
void bonsai_rope_neox_backward(float *dx, int64_t T, int64_t stride, int n_head, int head_dim,
                               int rot_dim, float theta, int64_t pos0);

// Causal multi-head attention against a cache.
// q: [T, n_head*head_dim] (row stride q_stride); k_cache, v_cache: [n_ctx, n_head*head_dim], where
// rows 0 .. pos0+T-1 are filled; out: [T, n_head*head_dim]. Query t attends to keys 0 .. pos0+t.
// Scores and softmax in f32. scratch: at least n_threads * (pos0 + T) floats.
void bonsai_attention_forward(float *out, const float *q, int64_t q_stride,
                              const float *k_cache, const float *v_cache,
                              int64_t T, int64_t pos0, int n_head, int head_dim, float scale,
                              float *scratch);
// The same against a cache of kv_type elements, BONSAI_TYPE_F32 or BONSAI_TYPE_F16 (llama.cpp's default
// cache type: half the bytes a generated token reads per cached position), in any layout: element i of
// head h at position p is at p·row_stride + h·head_stride + i. Head-major (row_stride = head_dim,
// head_stride = n_ctx·head_dim) keeps each head's keys and values contiguous: one stream per head.
void bonsai_attention_forward_kv(float *out, const float *q, int64_t q_stride, const void *k_cache,
                                 const void *v_cache, int kv_type, int64_t row_stride, int64_t head_stride,
                                 int64_t T, int64_t pos0, int n_head, int head_dim, float scale, float *scratch);
// kv_store: T positions' keys or values src [T, n_head·head_dim] (f32) into such a cache at pos0 ...
void bonsai_kv_store(void *cache, int kv_type, int64_t row_stride, int64_t head_stride, const float *src, int64_t T,
                     int64_t pos0, int n_head, int head_dim);

// attention_train_forward: one whole sequence (no cache), causal. q, k, v, out: [T, H*D];
// probs: [H, T, T], row t holds the softmax over keys 0..t (zeros after) for the backward pass.
void bonsai_attention_train_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                                    int64_t T, int n_head, int head_dim, float scale);
// attention_backward: dout [T, H*D] -> dq, dk, dv [T, H*D] (overwritten), from the forward's q, k, v, probs.
void bonsai_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *probs,
                               int64_t T, int n_head, int head_dim, float scale);

// cross_entropy: logits [T, V] and targets [T] -> sum of -log p(target) (double); logits are replaced
// in place by grad_scale * (softmax - onehot(target)), the gradient of grad_scale * loss.
double bonsai_cross_entropy(float *logits, const int32_t *targets, int64_t T, int64_t V, float grad_scale);

// LoRA beside a frozen linear layer: y += scale * (x A^T) B^T, A [r, in], B [out, r] (lora.c).
// LoRA dropout (probability `dropout`, 0 = none) drops elements of the adapter's input x with a mask
// hashed from `seed`: pass the same seed to the backward pass.
// lora_forward: y [T, out] rows ys apart; u [T, r] keeps dropout(x) A^T for the backward pass (NULL: not kept).
void bonsai_lora_forward(float *y, int64_t ys, float *u, const float *x, const float *A, const float *B,
                         int64_t T, int64_t in, int64_t out, int r, float scale, float dropout, uint64_t seed);
// lora_backward: dy [T, out] (rows dys apart) -> dB += scale dy^T u, dA += du^T dropout(x),
// dx += (du A) * mask (dx may be NULL), with du = scale dy B. scratch: 2 T r floats (+ 2 T in with dropout).
void bonsai_lora_backward(float *dx, float *dA, float *dB, const float *dy, int64_t dys, const float *x,
                          const float *u, const float *A, const float *B, int64_t T, int64_t in, int64_t out,
                          int r, float scale, float dropout, uint64_t seed, float *scratch);

// lora_merge: W [rows, cols] += scale * B [rows, r] A [r, cols], f32 (merging an adapter into a weight).
void bonsai_lora_merge(float *W, int64_t rows, int64_t cols, const float *A, const float *B, int r, float scale);

// y[i] += a[i] + b[i]
void bonsai_add3(float *y, const float *a, const float *b, int64_t n);

// ---------------------------------------------------------------------------------------------
// Threads and CPU.
int bonsai_max_threads(void);            // 1 without OpenMP
void bonsai_set_threads(int n);          // n <= 0: all cores
bool bonsai_has_openmp(void);
const char *bonsai_cpu_features(void);   // e.g. "AVX2 FMA F16C" (what the kernels dispatch on)

#ifdef __cplusplus
}
#endif
#endif
#include "bonsai_interrupt.h"
