// matmul.c — weight × activations for every weight type.
//
// Two modes. FAST (default): where the CPU has an int8 kernel for the weight type, activations are
// rounded to int8 per 32 elements: for one token (generation) every row is one int8 dot product with the
// activation quantized to the type's vec_dot_type, as llama.cpp does (and laid out once per token where
// the kernel reads a layout of its own: act_layout.c); for prompts (from 4 tokens, 8 for q8_0) the
// unpacked-weight kernels (unpacked.c), q8_0's short prompts its 4-row blocked kernel.
// F32 (and types without a kernel): weights dequantized to f32 multiply f32 activations — the exact
// reference the tests compare with transformers — as a packed gemm for prompts, a dot per pair otherwise.
#include "bonsai.h"
#include "simd.h"
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>

enum { TILE_ROWS = 16 };

static bonsai_math math_mode = BONSAI_MATH_FAST;
void bonsai_set_math(bonsai_math mode) { math_mode = mode; }
bonsai_math bonsai_get_math(void) { return math_mode; }

// Grow-only scratch: the decode loop allocates nothing after the first token.
typedef struct { void *p; size_t cap; } scratch;
static _Thread_local scratch tile_buf, act_buf, act8_buf, wrow_buf, unpacked_buf, layout_buf;
static _Thread_local scratch pack_buf;   // packed activations: the caller's, shared by its OpenMP team
static _Thread_local scratch runs_buf;   // the caller's work runs (chunk_run), shared by its team

static void *scratch_get(scratch *s, size_t bytes) {
    if (bytes > s->cap) {
        free(s->p);
        s->p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        s->cap = s->p ? bytes : 0;
    }
    return s->p;
}

// Asks for `bytes` of each of `rows` rows (stride bytes apart) from p on, into L2, a 64-byte line at a time:
// for weights the next step will read while the current one computes.
static void prefetch_rows(const char *p, size_t stride, int64_t rows, size_t bytes) {
    for (int64_t i = 0; i < rows; i++)
        for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + (size_t)i * stride + off, 0, 2);
}

// Work shared by stealing. Each thread owns a run of work items and takes them from its front; a thread
// whose run is empty takes the others' items from their backs. On a shared machine the threads' speeds
// wander, and with fixed equal shares one thread waited for the other at the end of every product (~5%
// of q4_0 generation and prompt time with 2 threads). Owners keep a contiguous stream of weights.
// A run of items [front, back): front in the low 32 bits. Owner and thieves move its ends by CAS, so
// each item is taken exactly once.
typedef struct { _Alignas(64) _Atomic uint64_t span; } chunk_run;

static bool take_chunk(chunk_run *run, bool from_front, uint32_t *chunk) {
    uint64_t s = atomic_load_explicit(&run->span, memory_order_relaxed);
    for (;;) {
        const uint32_t front = (uint32_t)s, back = (uint32_t)(s >> 32);
        if (front >= back) return false;
        const uint64_t next = from_front ? (uint64_t)back << 32 | (front + 1) : (uint64_t)(back - 1) << 32 | front;
        if (atomic_compare_exchange_weak_explicit(&run->span, &s, next, memory_order_relaxed, memory_order_relaxed)) {
            *chunk = from_front ? front : back - 1;
            return true;
        }
    }
}

// Thread k's loop over shared items: its own run's from the front, then the other runs' from the back.
#define FOR_EACH_SHARED_ITEM(runs, nth, k, item) \
    for (int turn_ = 0; turn_ < (nth); turn_++) \
        for (chunk_run *run_ = &(runs)[((k) + turn_) % (nth)]; take_chunk(run_, turn_ == 0, &(item));)

void bonsai_matrix_row(const bonsai_matrix *W, int64_t r, float *dst) {
    bonsai_dequantize_row(W->type, (const char *)W->data + (size_t)r * W->row_stride, dst, W->cols);
}

float bonsai_vec_dot(int type, int64_t n, const void *w, const void *a) {
    bonsai_simd_init();
    bonsai_vec_dot_fn f = type >= 0 && type < BONSAI_TYPE_COUNT ? bonsai_fast_dot[type] : NULL;
    if (!f) return bonsai_vec_dot_ref(type, n, w, a);
    const bonsai_act_layout layout = bonsai_fast_act[type];
    if (!layout.make) return f(n, w, a);
    void *act = scratch_get(&layout_buf, layout.size(n));
    layout.make(a, n, act);
    return f(n, w, act);
}

static void matmul_f32(const bonsai_matrix *W, const float *X, int64_t T, float *Y, int64_t y_stride,
                       const float *bias) {
    const int64_t rows = W->rows, cols = W->cols;
    const int64_t ntiles = (rows + TILE_ROWS - 1) / TILE_ROWS;
    const bool direct = W->type == BONSAI_TYPE_F32;   // f32 rows need no dequantization
#pragma omp parallel for schedule(static) if (rows * cols * T > 32768)
    for (int64_t tile = 0; tile < ntiles; tile++) {
        const int64_t r0 = tile * TILE_ROWS;
        const int64_t nr = rows - r0 < TILE_ROWS ? rows - r0 : TILE_ROWS;
        const float *w;
        if (direct) {
            w = (const float *)((const char *)W->data + (size_t)r0 * W->row_stride);
        } else {
            float *buf = scratch_get(&tile_buf, (size_t)(TILE_ROWS * cols) * sizeof(float));
            for (int64_t i = 0; i < nr; i++) bonsai_matrix_row(W, r0 + i, buf + i * cols);
            w = buf;
        }
        const int64_t wstride = direct ? (int64_t)(W->row_stride / sizeof(float)) : cols;
        for (int64_t t = 0; t < T; t++) {
            const float *x = X + t * cols;
            float *y = Y + t * y_stride + r0;
            for (int64_t i = 0; i < nr; i++) y[i] = bonsai_dot_f32(w + i * wstride, x, cols) + (bias ? bias[r0 + i] : 0.0f);
        }
    }
}

// TOKEN_CHUNK: activations of one chunk stay in L2 while the rows stream past. unpack_min_tokens: from 4
// tokens the padded unpacked path beats a dot per pair (q4_0: 3-token prompt 7.6 vs 7.2 t/s, 6 tokens 14.2
// vs 10.1); q8_0's unpacking costs more (magnitudes and signs) and its 4 × 4 kernel is good, so it unpacks
// from 8 tokens (pp4 10.7 vs 7.7 t/s, pp8 about even, pp13 13.4 vs 16.3, pp512 21 vs 25-28).
enum { TOKEN_CHUNK = 64 };
// UNPACKED_CHUNK: tokens per unpacking of a group of 4 rows (matmul_unpacked). Each unpacking is paid once
// per chunk, and the unpacked rows stay in L1 while the chunk's activations stream past from L2/L3 (at most
// 256 × 10240 × 11/8 bytes = 3.6 MB, for fc2). Zen 4, pp512, 2 threads, alternating, against 64 tokens:
// q4_K_M 85-88 → 93-102 tokens/s, q8_0 91 → 108, q4_0 89-94 → 99; 512 tokens gained little more.
enum { UNPACKED_CHUNK = 256 };
static const int64_t unpack_min_tokens[BONSAI_UNPACKED_KINDS] = {
    [BONSAI_UNPACKED_U8] = 4, [BONSAI_UNPACKED_U8_HALVES] = 4, [BONSAI_UNPACKED_S8] = 8,
};

// What W's int8 dot reads for T tokens, in the calling thread's scratch: X quantized to the type's
// vec_dot_type (aq, qrow bytes a token), then laid out as the dot wants (al, arow bytes a token; the same
// buffer when the type has no layout of its own: act_layout.c). NULL buffers: out of memory.
typedef struct { int at; bonsai_act_layout layout; size_t qrow, arow; char *aq, *al; } int8_acts;

static int8_acts int8_acts_get(const bonsai_matrix *W, int64_t T) {
    int8_acts A = {.at = bonsai_type_info(W->type)->vec_dot_type, .layout = bonsai_fast_act[W->type]};
    A.qrow = bonsai_row_size(A.at, W->cols);
    A.arow = A.layout.make ? A.layout.size(W->cols) : A.qrow;
    A.aq = scratch_get(&act_buf, A.qrow * (size_t)T);
    A.al = A.layout.make ? scratch_get(&layout_buf, A.arow * (size_t)T) : A.aq;
    return A;
}

// Token t of X into A.
static void int8_acts_make(const int8_acts *A, const bonsai_matrix *W, const float *X, int64_t t) {
    bonsai_quantize_row(A->at, X + t * W->cols, A->aq + (size_t)t * A->qrow, W->cols);
    if (A->layout.make) A->layout.make(A->aq + (size_t)t * A->qrow, W->cols, A->al + (size_t)t * A->arow);
}

// matmul_int8: a few tokens (q8_0 prompts below 8 tokens), or any count where a type has an int8 dot but
// no unpacked kernel (generation goes through bonsai_matmul_batch). Activations
// are quantized to the type's vec_dot_type (then laid out per token if the dot wants: act_layout.c); each
// (row, token) pair is one int8 dot, or 4 × 4 pairs at once where the type has a blocked kernel (q8_0).
static void matmul_int8(const bonsai_matrix *W, bonsai_vec_dot_fn dot, const float *X, int64_t T, float *Y,
                        int64_t y_stride, const float *bias) {
    const int64_t rows = W->rows, cols = W->cols;
    const size_t wrow = W->row_stride;
    const int8_acts A = int8_acts_get(W, T);
    const char *al = A.al;
    const size_t arow = A.arow;   // what the dot reads, per token
    bonsai_gemm4x4_fn g4 = T >= 4 && !A.layout.make ? bonsai_fast_gemm4x4[W->type] : NULL;
    const int64_t group = g4 ? 4 : TILE_ROWS;   // rows per step
    const int64_t ngroups = (rows + group - 1) / group;
#pragma omp parallel if (rows * cols * T > 32768)
    {
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) int8_acts_make(&A, W, X, t);
        for (int64_t t0 = 0; t0 < T; t0 += TOKEN_CHUNK) {
            const int64_t t1 = t0 + TOKEN_CHUNK < T ? t0 + TOKEN_CHUNK : T;
#pragma omp for schedule(static) nowait
            for (int64_t g = 0; g < ngroups; g++) {
                const int64_t r0 = g * group, nr = rows - r0 < group ? rows - r0 : group;
                const char *w = (const char *)W->data + (size_t)r0 * wrow;
                int64_t t = t0;
                if (g4 && nr == 4) {
                    for (; t + 4 <= t1; t += 4) {
                        float out[4][4];
                        g4(cols, w, wrow, al + (size_t)t * arow, arow, out);
                        for (int64_t c = 0; c < 4; c++)
                            for (int64_t r = 0; r < 4; r++) Y[(t + c) * y_stride + r0 + r] = out[r][c] + (bias ? bias[r0 + r] : 0.0f);
                    }
                }
                for (; t < t1; t++) {
                    const char *a = al + (size_t)t * arow;
                    for (int64_t i = 0; i < nr; i++)
                        Y[t * y_stride + r0 + i] = dot(cols, w + (size_t)i * wrow, a) + (bias ? bias[r0 + i] : 0.0f);
                }
            }
        }
    }
}

// matmul_unpacked: prompts on a type that unpacks (unpacked.c). Each group of 4 rows is unpacked once per
// chunk of tokens into a thread's buffer (in L1/L2) and multiplied with every 8-token set of the chunk;
// the last set is padded with zero tokens (one more kernel call is cheaper than reading every weight row
// again for a per-pair dot: a 13-token prompt took 0.9 s that way, 0.6 s padded). Rows past the last
// group of 4 go through the one-pair paths.
static void matmul_rest(const bonsai_matrix *W, const float *X, int64_t T, float *Y, int64_t y_stride,
                        const float *bias);

// A kernel's out[4][width] (rows r0..r0+3 of Y, tokens t0..t0+width-1) into Y, but for the padding tokens.
static inline void store_tile(const float *out, int width, int64_t t0, int64_t T, float *Y, int64_t y_stride,
                              int64_t r0, const float *bias) {
    for (int64_t c = 0; c < width && t0 + c < T; c++)
        for (int r = 0; r < 4; r++) Y[(t0 + c) * y_stride + r0 + r] = out[r * width + c] + (bias ? bias[r0 + r] : 0.0f);
}

static void matmul_unpacked(const bonsai_matrix *W, bonsai_unpacker u, bonsai_gemm_unpacked_fn gemm,
                            const float *X, int64_t T, float *Y, int64_t y_stride, const float *bias) {
    const bonsai_gemm_unpacked16_fn gemm16 = bonsai_gemm_unpacked16[u.kind];
    const int64_t rows = W->rows, cols = W->cols, nb = cols / BONSAI_QK;
    const int64_t sets = (T + 7) / 8, full = T / 8, rows4 = rows / 4 * 4;
    const size_t wblock = bonsai_unpacked_block_size[u.kind];
    bonsai_act8x32_block *act = scratch_get(&act8_buf, (size_t)(sets * nb) * sizeof(bonsai_act8x32_block));
    if (full < sets) {   // the last tokens, padded to a set of 8 with zeros
        float *pad = scratch_get(&act_buf, (size_t)(8 * cols) * sizeof(float));
        memset(pad, 0, (size_t)(8 * cols) * sizeof(float));
        memcpy(pad, X + 8 * full * cols, (size_t)((T - 8 * full) * cols) * sizeof(float));
        bonsai_pack_act8x32(pad, cols, cols, act + full * nb);
    }
    // Per chunk of tokens, the groups of 4 rows are shared by stealing (runs of equal counts).
    const int nth = BONSAI_NUM_THREADS();
    const int64_t nchunks = (sets + UNPACKED_CHUNK / 8 - 1) / (UNPACKED_CHUNK / 8), ngroups = rows4 / 4;
    chunk_run *runs = scratch_get(&runs_buf, (size_t)(nchunks * nth) * sizeof(chunk_run));
    for (int64_t i = 0; i < nchunks; i++)
        for (int k = 0; k < nth; k++)
            atomic_init(&runs[i * nth + k].span, (uint64_t)(ngroups * (k + 1) / nth) << 32 | (uint64_t)(ngroups * k / nth));
#pragma omp parallel num_threads(nth)
    {
#pragma omp for schedule(static)
        for (int64_t s = 0; s < full; s++) bonsai_pack_act8x32(X + 8 * s * cols, cols, cols, act + s * nb);
        void *wu = scratch_get(&unpacked_buf, (size_t)nb * wblock);
        const int k = BONSAI_THREAD_ID();
        uint32_t g;
        for (int64_t s0 = 0; s0 < sets; s0 += UNPACKED_CHUNK / 8) {
            const int64_t s1 = s0 + UNPACKED_CHUNK / 8 < sets ? s0 + UNPACKED_CHUNK / 8 : sets;
            FOR_EACH_SHARED_ITEM(runs + s0 / (UNPACKED_CHUNK / 8) * nth, nth, k, g) {
                const int64_t r0 = 4 * (int64_t)g;
                for (int r = 0; r < 4; r++) u.unpack((const char *)W->data + (size_t)(r0 + r) * W->row_stride, cols, wu, r);
                // An owner takes consecutive groups: the next group's rows come from memory while this one
                // is multiplied, instead of stalling the unpacking (pp512 q4_0: 33-34 → 38 tokens/s).
                if (r0 + 4 < rows4)
                    prefetch_rows((const char *)W->data + (size_t)(r0 + 4) * W->row_stride, W->row_stride, 4, W->row_stride);
                for (int64_t s = s0; s < s1;) {
                    if (gemm16 && s + 1 < s1) {   // two sets at once (AVX-512)
                        float out[4][16];
                        gemm16(nb, wu, act + s * nb, act + (s + 1) * nb, out);
                        store_tile(&out[0][0], 16, 8 * s, T, Y, y_stride, r0, bias);
                        s += 2;
                    } else {
                        float out[4][8];
                        gemm(nb, wu, act + s * nb, out);
                        store_tile(&out[0][0], 8, 8 * s, T, Y, y_stride, r0, bias);
                        s += 1;
                    }
                }
            }
        }
    }
    if (rows4 < rows) {   // the last rows
        bonsai_matrix rest = *W;
        rest.rows = rows - rows4;
        rest.data = (const char *)W->data + (size_t)rows4 * W->row_stride;
        matmul_rest(&rest, X, T, Y + rows4, y_stride, bias ? bias + rows4 : NULL);
    }
}

// matmul_gemm: the product for many tokens at once (prompts, training batches). The activations are
// packed once for the gemm; then a tile of GW_ROWS rows × GW_COLS columns of W is dequantized once into
// the gemm's B panels (transposed: the rows become the output columns) and stays in L2 while every
// token streams past. The dequantization costs 1/T per product and the f32 gemm runs at ~3/4 of the FMA
// peak. The exact path for prompts (F32 math, and f16/bf16/f32 weights); for the quantized types the
// int8 kernels are faster still (pp512 on q4_0: 17.7 t/s this way, 33 with the unpacked kernels). Threads
// split the rows.
enum { GW_ROWS = 128, GW_COLS = 256, GEMM_MIN_TOKENS = 4 };

// Rows r0 .. r0+nr of W, columns c0 .. c0+nc, dequantized into 16-column panels of the transposed tile.
static void dequantize_tile_t(const bonsai_matrix *W, const bonsai_type_traits *tr, int64_t r0, int64_t nr,
                              int64_t c0, int64_t nc, float *tile, float *row) {
    const char *src = (const char *)W->data + (size_t)r0 * W->row_stride
                    + (size_t)(c0 / tr->block_size) * (size_t)tr->type_size;
    if (nr % 16) memset(tile, 0, (size_t)((nr + 15) / 16 * 16 * nc) * sizeof(float));
    for (int64_t i = 0; i < nr; i++) {
        bonsai_dequantize_row_fast(W->type, src + (size_t)i * W->row_stride, row, nc);
        float *panel = tile + (i / 16) * 16 * nc + i % 16;
        for (int64_t k = 0; k < nc; k++) panel[k * 16] = row[k];
    }
}

static void matmul_gemm(const bonsai_matrix *W, const float *X, int64_t T, float *Y, int64_t y_stride,
                        const float *bias) {
    const int64_t rows = W->rows, cols = W->cols, tpad = (T + 5) / 6 * 6;
    const bonsai_type_traits *tr = bonsai_type_info(W->type);
    float *xp = scratch_get(&pack_buf, (size_t)(tpad * cols) * sizeof(float));
    const int64_t nchunks = (rows + GW_ROWS - 1) / GW_ROWS;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int64_t c0 = 0; c0 < cols; c0 += GW_COLS)   // chunk c0's packed block starts at c0·tpad
            bonsai_pack_a6(xp + c0 * tpad, X + c0, cols, T, cols - c0 < GW_COLS ? cols - c0 : GW_COLS);
#pragma omp for schedule(static)
        for (int64_t chunk = 0; chunk < nchunks; chunk++) {
            const int64_t r0 = chunk * GW_ROWS, nr = rows - r0 < GW_ROWS ? rows - r0 : GW_ROWS;
            float *tile = scratch_get(&tile_buf, (size_t)(GW_COLS * GW_ROWS) * sizeof(float));
            float *row = scratch_get(&wrow_buf, GW_COLS * sizeof(float));
            for (int64_t t = 0; t < T; t++)
                for (int64_t i = 0; i < nr; i++) Y[t * y_stride + r0 + i] = bias ? bias[r0 + i] : 0.0f;
            for (int64_t c0 = 0; c0 < cols; c0 += GW_COLS) {
                const int64_t nc = cols - c0 < GW_COLS ? cols - c0 : GW_COLS;
                dequantize_tile_t(W, tr, r0, nr, c0, nc, tile, row);
                if (c0 + GW_COLS < cols)   // the next tile's bytes come from memory during this tile's gemm
                    prefetch_rows((const char *)W->data + (size_t)r0 * W->row_stride
                                      + (size_t)((c0 + GW_COLS) / tr->block_size) * (size_t)tr->type_size,
                                  W->row_stride, nr, (size_t)(GW_COLS / tr->block_size) * (size_t)tr->type_size);
                bonsai_gemm_packed_f32(Y + r0, y_stride, xp + c0 * tpad, tile, T, nc, nr);
            }
        }
    }
}

// The type's dot product with rows of its activation type (int8 for the quantized types, f32 for f16 and
// bf16: float_dots.c), if the CPU has one and the rows are whole blocks of that type.
static bonsai_vec_dot_fn row_dot(const bonsai_matrix *W) {
    bonsai_vec_dot_fn dot = bonsai_fast_dot[W->type];
    const bonsai_type_traits *t = bonsai_type_info(W->type);
    return dot && W->cols % bonsai_type_info(t->vec_dot_type)->block_size == 0 ? dot : NULL;
}

// A few rows or tokens: an int8 dot per pair where the type has one, else the exact f32 path.
static void matmul_rest(const bonsai_matrix *W, const float *X, int64_t T, float *Y, int64_t y_stride,
                        const float *bias) {
    bonsai_vec_dot_fn dot = row_dot(W);
    if (dot) matmul_int8(W, dot, X, T, Y, y_stride, bias);
    else matmul_f32(W, X, T, Y, y_stride, bias);
}

// f16/bf16 weights: their dot multiplies in f32, so it serves either math mode, but only generation (a
// prompt's products go to the gemm, which reads each weight once for all tokens).
static bool float_weights(const bonsai_matrix *W) { return bonsai_type_info(W->type)->vec_dot_type == BONSAI_TYPE_F32; }

// Generation's products: the dot per (row, token) that bonsai_matmul would use, if it would use nothing
// else (fewer tokens than any blocked or unpacked kernel takes; an int8 dot in fast math, or float weights).
static bonsai_vec_dot_fn generation_dot(const bonsai_matrix *W, int64_t T) {
    if (T >= 4 || W->cols <= 0) return NULL;   // cols > 0: rows have bytes
    return math_mode == BONSAI_MATH_FAST || float_weights(W) ? row_dot(W) : NULL;
}

// A thread's own copy of the activations for a product: X quantized to W's vec_dot_type (and laid out as
// its dot reads them). Each thread makes it rather than one making it for all, so no thread waits for
// another: a few microseconds against a barrier per product. Reused while the input and type stay.
typedef struct { const float *x; int type; int64_t cols, T; const char *a; size_t arow; } act_copy;

static const char *thread_activations(const bonsai_matrix *W, const float *X, int64_t T, act_copy *c) {
    if (c->a && c->x == X && c->type == W->type && c->cols == W->cols && c->T == T) return c->a;
    const int8_acts A = int8_acts_get(W, T);
    if (!A.aq || !A.al) return NULL;
    for (int64_t t = 0; t < T; t++) int8_acts_make(&A, W, X, t);
    *c = (act_copy){X, W->type, W->cols, T, A.al, A.arow};
    return A.al;
}

// The batch's work items, numbered across its jobs' matrices (parts). An item is a chunk of BATCH_CHUNK
// rows; where the type has a 4-row dot, it is four chunks a quarter of the matrix apart, read together:
// generation reads every weight byte once per token, and on this machine four streams far apart read
// faster than one (alternating tg32 runs, 2 threads: q8_0 5.7 → 6.2 t/s, q4_0 10.5 → 11.7, q4_K_M 9.0 → 9.9;
// four adjacent rows at a time were slower than one). Items are shared by stealing; each thread's run
// holds an equal share of the weight bytes.
enum { BATCH_CHUNK = 16, WAYS = 4 };

typedef struct {
    const bonsai_matmul_job *job;
    bonsai_vec_dot_fn dot;
    bonsai_vec_dot4_fn dot4;   // NULL: an item is one chunk
    int64_t first_item, items;
} batch_part;

static int64_t item_rows(const batch_part *p) { return p->dot4 ? WAYS * BATCH_CHUNK : BATCH_CHUNK; }

// Row r of a part for T tokens: Y[t][r] = W[r] · a_t + b[r].
static void batch_row(const batch_part *p, int64_t r, const char *a, size_t arow, int64_t T) {
    const bonsai_matmul_job *job = p->job;
    const char *w = (const char *)job->W->data + (size_t)r * job->W->row_stride;
    const float b = job->bias ? job->bias[r] : 0.0f;
    for (int64_t t = 0; t < T; t++) job->Y[t * job->y_stride + r] = p->dot(job->W->cols, w, a + (size_t)t * arow) + b;
}

static void batch_item(const batch_part *parts, int64_t item, int64_t T, act_copy *acts) {
    const batch_part *p = parts;
    while (item >= p->first_item + p->items) p++;
    const bonsai_matmul_job *job = p->job;
    const bonsai_matrix *W = job->W;
    const char *a = thread_activations(W, job->X, T, acts);
    if (!a) return;   // out of memory: cannot happen after the first token (grow-only scratch)
    const int64_t r0 = (item - p->first_item) * BATCH_CHUNK, r1 = r0 + BATCH_CHUNK < W->rows ? r0 + BATCH_CHUNK : W->rows;
    if (!p->dot4) {
        for (int64_t r = r0; r < r1; r++) batch_row(p, r, a, acts->arow, T);
        return;
    }
    const int64_t apart = p->items * BATCH_CHUNK;   // rows between the item's four chunks
    for (int64_t r = r0; r < r0 + BATCH_CHUNK; r++) {
        if (r + (WAYS - 1) * apart < W->rows) {
            const char *w = (const char *)W->data + (size_t)r * W->row_stride;
            for (int64_t t = 0; t < T; t++) {
                float out[WAYS];
                p->dot4(W->cols, w, (size_t)apart * W->row_stride, a + (size_t)t * acts->arow, out);
                for (int j = 0; j < WAYS; j++)
                    job->Y[t * job->y_stride + r + j * apart] = out[j] + (job->bias ? job->bias[r + j * apart] : 0.0f);
            }
        } else {   // the last items: some of their chunks are past the end
            for (int64_t j = 0; j < WAYS && r + j * apart < W->rows; j++) batch_row(p, r + j * apart, a, acts->arow, T);
        }
    }
}

// Thread k's items: its own run first, then what it steals from the others'.
static void run_batch_items(const batch_part *parts, chunk_run *runs, int nth, int k, int64_t T) {
    act_copy acts = {0};
    uint32_t item;
    FOR_EACH_SHARED_ITEM(runs, nth, k, item) batch_item(parts, item, T, &acts);
}

// The item that holds byte `at` of the parts' weights laid end to end (counting whole items).
static uint32_t item_at_byte(const batch_part *parts, int nparts, int64_t at) {
    for (int p = 0;; p++) {
        const int64_t s = (int64_t)parts[p].job->W->row_stride * item_rows(&parts[p]), size = parts[p].items * s;
        if (at < size || p == nparts - 1) return (uint32_t)(parts[p].first_item + (at + s - 1) / s);
        at -= size;
    }
}

void bonsai_matmul_batch(const bonsai_matmul_job *jobs, int n_jobs, int64_t T) {
    bonsai_simd_init();
    if (T <= 0 || n_jobs <= 0) return;
    batch_part parts[n_jobs];
    int nparts = 0;
    int64_t items = 0, bytes = 0;
    for (int j = 0; j < n_jobs; j++) {
        const bonsai_matrix *W = jobs[j].W;
        const bonsai_vec_dot_fn dot = generation_dot(W, T);
        if (!dot) {
            bonsai_matmul(W, jobs[j].X, T, jobs[j].Y, jobs[j].y_stride, jobs[j].bias);
            continue;
        }
        batch_part *p = &parts[nparts++];
        *p = (batch_part){&jobs[j], dot, bonsai_fast_dot4[W->type], items, 0};
        const int64_t chunks = (W->rows + BATCH_CHUNK - 1) / BATCH_CHUNK;
        p->items = p->dot4 ? (chunks + WAYS - 1) / WAYS : chunks;
        items += p->items;
        bytes += W->rows * (int64_t)W->row_stride;
    }
    if (nparts == 0) return;
    const int nth = bytes * T > 32768 ? BONSAI_NUM_THREADS() : 1;
    uint32_t front[nth + 1];   // thread k's run: items front[k] ..< front[k + 1], an equal share of the bytes
    for (int k = 0; k < nth; k++) {
        const uint32_t at = item_at_byte(parts, nparts, bytes * k / nth);
        front[k] = at < items ? at : (uint32_t)items;
    }
    front[nth] = (uint32_t)items;
    chunk_run runs[nth];
    for (int k = 0; k < nth; k++) atomic_init(&runs[k].span, (uint64_t)front[k + 1] << 32 | front[k]);
    if (nth == 1) {   // no region: an if(false) one allocates in libomp (bonsai_thread_share)
        run_batch_items(parts, runs, 1, 0, T);
        return;
    }
#pragma omp parallel num_threads(nth)
    run_batch_items(parts, runs, nth, BONSAI_THREAD_ID(), T);
}

void bonsai_matmul(const bonsai_matrix *W, const float *X, int64_t T, float *Y, int64_t y_stride,
                   const float *bias) {
    bonsai_simd_init();
    const bonsai_type_traits *t = bonsai_type_info(W->type);
    if (!t || T <= 0) return;
    if (generation_dot(W, T)) {
        bonsai_matmul_batch(&(bonsai_matmul_job){W, X, Y, y_stride, bias}, 1, T);
        return;
    }
    if (math_mode == BONSAI_MATH_FAST) {
        const bonsai_unpacker u = bonsai_unpack[W->type];
        const bonsai_gemm_unpacked_fn gemm = u.unpack ? bonsai_gemm_unpacked[u.kind] : NULL;
        if (gemm && T >= unpack_min_tokens[u.kind] && W->cols % BONSAI_QK == 0) {
            matmul_unpacked(W, u, gemm, X, T, Y, y_stride, bias);
            return;
        }
        bonsai_vec_dot_fn dot = float_weights(W) ? NULL : row_dot(W);
        if (dot) {
            matmul_int8(W, dot, X, T, Y, y_stride, bias);
            return;
        }
    }
    if (T >= GEMM_MIN_TOKENS) matmul_gemm(W, X, T, Y, y_stride, bias);
    else matmul_f32(W, X, T, Y, y_stride, bias);
}

// matmul_backward: the input gradient of Y = X W^T + b. dX [T, cols] (+)= dY [T, rows] W, where dY rows
// are dy_stride floats apart. W is frozen: tiles of BW_ROWS × BW_COLS are dequantized into the packed
// gemm's B panels. Threads split the columns (BW_COLS is a multiple of every block size), so each owns
// its slice of dX and the weight is dequantized once in total.
enum { BW_ROWS = 128, BW_COLS = 256 };

void bonsai_matmul_backward(const bonsai_matrix *W, const float *dY, int64_t dy_stride, int64_t T, float *dX,
                            bool accumulate) {
    bonsai_simd_init();
    const int64_t rows = W->rows, cols = W->cols, tpad = (T + 5) / 6 * 6;
    const bonsai_type_traits *tr = bonsai_type_info(W->type);
    if (!accumulate) memset(dX, 0, (size_t)(T * cols) * sizeof(float));
    float *dyp = scratch_get(&pack_buf, (size_t)(tpad * rows) * sizeof(float));
    const int64_t nchunks = (cols + BW_COLS - 1) / BW_COLS;
#pragma omp parallel if (rows * cols * T > 32768)
    {
#pragma omp for schedule(static)
        for (int64_t r0 = 0; r0 < rows; r0 += BW_ROWS)   // row block r0's packed dY starts at r0·tpad
            bonsai_pack_a6(dyp + r0 * tpad, dY + r0, dy_stride, T, rows - r0 < BW_ROWS ? rows - r0 : BW_ROWS);
#pragma omp for schedule(static)
        for (int64_t chunk = 0; chunk < nchunks; chunk++) {
            const int64_t c0 = chunk * BW_COLS, nc = cols - c0 < BW_COLS ? cols - c0 : BW_COLS;
            const size_t offset = (size_t)(c0 / tr->block_size) * (size_t)tr->type_size;
            float *tile = scratch_get(&tile_buf, (size_t)(BW_ROWS * BW_COLS) * sizeof(float));
            float *row = scratch_get(&wrow_buf, BW_COLS * sizeof(float));
            for (int64_t r0 = 0; r0 < rows; r0 += BW_ROWS) {
                const int64_t nr = rows - r0 < BW_ROWS ? rows - r0 : BW_ROWS;
                if (nc % 16) memset(tile, 0, (size_t)(BW_ROWS * BW_COLS) * sizeof(float));   // the last panel's padding
                const char *src = (const char *)W->data + (size_t)r0 * W->row_stride + offset;
                for (int64_t i = 0; i < nr; i++) {   // row i of the tile is k = i of every 16-column panel
                    bonsai_dequantize_row_fast(W->type, src + (size_t)i * W->row_stride, row, nc);
                    for (int64_t j = 0; j < nc; j += 16)
                        memcpy(tile + j * nr + i * 16, row + j, (size_t)(nc - j < 16 ? nc - j : 16) * sizeof(float));
                }
                bonsai_gemm_packed_f32(dX + c0, cols, dyp + r0 * tpad, tile, T, nr, nc);
            }
        }
    }
}

bool bonsai_convert_rows(int src_type, const void *src, size_t src_stride, int dst_type, void *dst,
                         int64_t rows, int64_t cols) {
    float probe[BONSAI_QKK] = {0};
    char probe_out[BONSAI_QKK * sizeof(float)];   // room for any type, f32 included
    if (!bonsai_type_info(src_type) || !bonsai_quantize_row(dst_type, probe, probe_out, BONSAI_QKK)) return false;
    const size_t drow = bonsai_row_size(dst_type, cols);
    bool ok = true;
#pragma omp parallel
    {
        float *row = scratch_get(&tile_buf, (size_t)cols * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!row || !bonsai_dequantize_row(src_type, (const char *)src + (size_t)r * src_stride, row, cols)) ok = false;
            else bonsai_quantize_row(dst_type, row, (char *)dst + (size_t)r * drow, cols);
        }
    }
    return ok;
}
