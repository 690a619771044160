// ops.c — the transformer's non-matmul ops, f32 arithmetic throughout (the KV cache may store f16).
#include "bonsai.h"
#include "simd.h"
#include "half.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// LayerNorm's sums run over 8 interleaved partial sums, then the tail in order: a fixed order, the same on
// every CPU, that the compiler turns into vector adds (a single running sum stays scalar).
static inline float lanes8_total(const float acc[8]) {
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// Σ x[i]
static float sum8(const float *x, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    float s = lanes8_total(acc);
    for (; i < n; i++) s += x[i];
    return s;
}

// Σ (x[i] - m)²
static float sum8_sq_dev(const float *x, float m, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += (x[i + k] - m) * (x[i + k] - m);
    float s = lanes8_total(acc);
    for (; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return s;
}

static void layernorm_rows(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                           int64_t t0, int64_t t1, int64_t C, float eps) {
    for (int64_t t = t0; t < t1; t++) {
        const float *xt = x + t * C;
        float *ot = out + t * C;
        const float m = sum8(xt, C) / (float)C;
        const float var = sum8_sq_dev(xt, m, C) / (float)C;
        const float rs = 1.0f / sqrtf(var + eps);
        for (int64_t i = 0; i < C; i++) ot[i] = (xt[i] - m) * rs * w[i] + b[i];
        if (mean) mean[t] = m;
        if (rstd) rstd[t] = rs;
    }
}

// layernorm_forward: x [T, C] -> out [T, C]; mean and variance in f32 (two passes, like torch).
// mean, rstd [T] (may be NULL): the statistics layernorm_backward needs.
void bonsai_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                              const float *b, int64_t T, int64_t C, float eps) {
    if (T <= 4) {
        layernorm_rows(out, mean, rstd, x, w, b, 0, T, C, eps);
        return;
    }
#pragma omp parallel
    {
        int64_t t0, t1;
        bonsai_thread_share(T, &t0, &t1);
        layernorm_rows(out, mean, rstd, x, w, b, t0, t1, C, eps);
    }
}

// layernorm_backward: dx [T, C] += d(out)/d(x)^T dout, given the forward's x, mean, rstd [T] and w.
// The weights are frozen (LoRA training), so no dw, db. With xhat = (x - mean) rstd, g = dout w:
//   dx = rstd (g - mean(g) - xhat mean(g xhat))
void bonsai_layernorm_backward(float *dx, const float *dout, const float *x, const float *mean,
                               const float *rstd, const float *w, int64_t T, int64_t C) {
#pragma omp parallel for schedule(static) if (T > 4)
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * C, *dt = dout + t * C;
        const float m = mean[t], rs = rstd[t];
        float g_acc[8] = {0}, gx_acc[8] = {0};
        int64_t i = 0;
        for (; i + 8 <= C; i += 8)
            for (int k = 0; k < 8; k++) {
                const float g = dt[i + k] * w[i + k];
                g_acc[k] += g;
                gx_acc[k] += g * (xt[i + k] - m) * rs;
            }
        float g_mean = lanes8_total(g_acc), gx_mean = lanes8_total(gx_acc);
        for (; i < C; i++) {
            const float g = dt[i] * w[i];
            g_mean += g;
            gx_mean += g * (xt[i] - m) * rs;
        }
        g_mean /= (float)C;
        gx_mean /= (float)C;
        float *dxt = dx + t * C;
        for (int64_t i = 0; i < C; i++) {
            const float xhat = (xt[i] - m) * rs;
            dxt[i] += rs * (dt[i] * w[i] - g_mean - xhat * gx_mean);
        }
    }
}

// gelu_forward (gelu_new): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x [n] in place.
void bonsai_gelu_forward(float *x, int64_t n) {
    bonsai_simd_init();
    if (n <= 65536) {
        bonsai_gelu_f32(x, n);
        return;
    }
    const int64_t chunk = 4096, chunks = (n + chunk - 1) / chunk;
#pragma omp parallel
    {
        int64_t c0, c1;
        bonsai_thread_share(chunks, &c0, &c1);
        for (int64_t i = c0 * chunk; i < n && i < c1 * chunk; i += chunk) bonsai_gelu_f32(x + i, n - i < chunk ? n - i : chunk);
    }
}

// gelu_backward: dx [n] = dout [n] * gelu_new'(x [n]) where x is the forward's input (dx may be dout).
//   gelu_new'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
void bonsai_gelu_backward(float *dx, const float *x, const float *dout, int64_t n) {
    bonsai_simd_init();
    const int64_t chunk = 4096;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i += chunk) bonsai_gelu_backward_f32(dx + i, x + i, dout + i, n - i < chunk ? n - i : chunk);
}

// rope_neox_forward: x [T, n_head, head_dim] (token stride `stride`), rotate-half on the first rot_dim
// dims of each head. The angle is computed as transformers does: inv_freq = 1 / theta^(2i/rot_dim) in
// f32, angle = pos * inv_freq in f32. sign -1 rotates back (the backward pass: a rotation's transpose).
static void rope_neox(float *x, int64_t T, int64_t stride, int n_head, int head_dim, int rot_dim,
                      float theta, int64_t pos0, float sign) {
    const int half = rot_dim / 2;
    if (half <= 0) return;   // nothing rotates (and no zero-length arrays)
    float inv_freq[half], c[half], s[half];
    for (int i = 0; i < half; i++) inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)rot_dim);
    for (int64_t t = 0; t < T; t++) {
        const float pos = (float)(pos0 + t);
        for (int i = 0; i < half; i++) {
            const float angle = pos * inv_freq[i];
            c[i] = cosf(angle);
            s[i] = sign * sinf(angle);
        }
        for (int h = 0; h < n_head; h++) {   // over i: contiguous, so vector code
            float *v = x + t * stride + (int64_t)h * head_dim;
            for (int i = 0; i < half; i++) {
                const float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c[i] - x1 * s[i];
                v[i + half] = x1 * c[i] + x0 * s[i];
            }
        }
    }
}

void bonsai_rope_neox_forward(float *x, int64_t T, int64_t stride, int n_head, int head_dim,
                              int rot_dim, float theta, int64_t pos0) {
    rope_neox(x, T, stride, n_head, head_dim, rot_dim, theta, pos0, 1.0f);
}

// rope_neox_backward: dx [T, n_head, head_dim] in place, from d(rotated) to d(input).
void bonsai_rope_neox_backward(float *dx, int64_t T, int64_t stride, int n_head, int head_dim,
                               int rot_dim, float theta, int64_t pos0) {
    rope_neox(dx, T, stride, n_head, head_dim, rot_dim, theta, pos0, -1.0f);
}

// The KV cache holds f32 or f16 elements (kv_type BONSAI_TYPE_F32 / BONSAI_TYPE_F16). Element i of a row.
static inline float kv_at(const void *cache, bool f16, int64_t i) {
    return f16 ? bonsai_half(((const uint16_t *)cache)[i]) : ((const float *)cache)[i];
}

// dst [cols, rows] = src [rows, cols] as f32: src rows `stride` elements apart, f32 or (a cache's keys) f16
static void transpose(float *dst, const void *src, bool f16, int64_t rows, int64_t cols, int64_t stride) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[c * rows + r] = kv_at(src, f16, r * stride + c);
}

// One row of scores p[n] in place: softmax(scale · p) over the first n_keys, zeros after (the causal mask).
static void causal_softmax_row(float *p, int64_t n_keys, int64_t n, float scale) {
    for (int64_t j = 0; j < n_keys; j++) p[j] *= scale;
    const float inv = 1.0f / bonsai_exp_sum_f32(p, n_keys);
    for (int64_t j = 0; j < n_keys; j++) p[j] *= inv;
    for (int64_t j = n_keys; j < n; j++) p[j] = 0.0f;
}

// Prompts: per head, blocks of ATT_BLOCK queries through the f32 gemm — the block's scores against its keys
// (the head's keys transposed once), the causal mask and softmax row by row, then P·V — instead of a dot
// and an axpy per (query, key) pair, which made attention 9-12% of pp512. An f16 cache's values are
// converted per head first. Returns false (nothing written) if the scratch cannot be had.
enum { ATT_BLOCK = 64, ATT_GEMM_MIN_TOKENS = 16 };

static bool attention_blocked(float *out, const float *q, int64_t q_stride, const void *k_cache,
                              const void *v_cache, bool f16, int64_t row_stride, int64_t head_stride, int64_t T,
                              int64_t pos0, int n_head, int head_dim, float scale) {
    const int64_t dm = (int64_t)n_head * head_dim, D = head_dim, nk_max = pos0 + T;
    bool ok = true;
#pragma omp parallel
    {
        float *kt = malloc((size_t)(D * nk_max) * sizeof(float));
        float *S = malloc((size_t)(ATT_BLOCK * nk_max) * sizeof(float));
        float *vh = f16 ? malloc((size_t)(D * nk_max) * sizeof(float)) : NULL;
        if (!kt || !S || (f16 && !vh)) {
#pragma omp atomic write
            ok = false;
        }
#pragma omp barrier
        if (ok) {
#pragma omp for schedule(static)
            for (int h = 0; h < n_head; h++) {
                const int64_t off = (int64_t)h * D, hoff = (int64_t)h * head_stride;
                transpose(kt, (const char *)k_cache + hoff * (f16 ? 2 : 4), f16, nk_max, D, row_stride);   // kt [D][nk_max]
                if (f16)   // the head's values as f32 [nk_max][D]
                    for (int64_t j = 0; j < nk_max; j++)
                        for (int64_t i = 0; i < D; i++) vh[j * D + i] = kv_at(v_cache, true, j * row_stride + hoff + i);
                const float *v = f16 ? vh : (const float *)v_cache + hoff;   // rows vs floats apart
                const int64_t vs = f16 ? D : row_stride;
                for (int64_t t0 = 0; t0 < T; t0 += ATT_BLOCK) {
                    const int64_t nq = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, nk = pos0 + t0 + nq;
                    memset(S, 0, (size_t)(nq * nk) * sizeof(float));
                    bonsai_gemm_nn_f32(S, nk, q + t0 * q_stride + off, q_stride, kt, nk_max, nq, D, nk);
                    for (int64_t i = 0; i < nq; i++) {   // query t0+i sees keys 0 .. pos0+t0+i
                        causal_softmax_row(S + i * nk, pos0 + t0 + i + 1, nk, scale);
                        memset(out + (t0 + i) * dm + off, 0, (size_t)D * sizeof(float));
                    }
                    bonsai_gemm_nn_f32(out + t0 * dm + off, dm, S, nk, v, vs, nq, nk, D);
                }
            }
        }
        free(kt);
        free(S);
        free(vh);
    }
    return ok;
}

// One query row t of head h against keys 0 .. pos0+t (see attention_forward_kv); att: n_keys floats.
static void attend_query(float *out, const float *q, int64_t q_stride, const void *k_cache, const void *v_cache,
                         bool f16, int64_t row_stride, int64_t head_stride, int64_t t, int h, int64_t pos0, int n_head,
                         int head_dim, float scale, float *att) {
    const int64_t n_keys = pos0 + t + 1, off = (int64_t)h * head_dim, hoff = (int64_t)h * head_stride;
    const float *qh = q + t * q_stride + off;
    float *oh = out + t * (int64_t)n_head * head_dim + off;
    const bonsai_attend_fn attend = f16 ? bonsai_attend_f16 : bonsai_attend_f32;
    if (attend && head_dim % 8 == 0 && head_dim <= 128) {
        const size_t esize = f16 ? 2 : 4;
        attend(oh, qh, (const char *)k_cache + hoff * esize, (const char *)v_cache + hoff * esize, n_keys, row_stride,
               head_dim, scale, att);
        return;
    }
    float row[head_dim];   // a key or value row as f32
    for (int64_t j = 0; j < n_keys; j++) {
        for (int i = 0; i < head_dim; i++) row[i] = kv_at(k_cache, f16, j * row_stride + hoff + i);
        att[j] = bonsai_dot_f32(qh, row, head_dim) * scale;
    }
    const float inv = 1.0f / bonsai_exp_sum_f32(att, n_keys);
    memset(oh, 0, (size_t)head_dim * sizeof(float));
    for (int64_t j = 0; j < n_keys; j++) {
        for (int i = 0; i < head_dim; i++) row[i] = kv_at(v_cache, f16, j * row_stride + hoff + i);
        bonsai_axpy_f32(oh, att[j] * inv, row, head_dim);
    }
}

// attention_forward_kv: out [T, H*D] = softmax(q k^T * scale, causal) v, per head; see bonsai.h.
void bonsai_attention_forward_kv(float *out, const float *q, int64_t q_stride, const void *k_cache,
                                 const void *v_cache, int kv_type, int64_t row_stride, int64_t head_stride,
                                 int64_t T, int64_t pos0, int n_head, int head_dim, float scale, float *scratch) {
    bonsai_simd_init();
    const bool f16 = kv_type == BONSAI_TYPE_F16;
    if (T >= ATT_GEMM_MIN_TOKENS && attention_blocked(out, q, q_stride, k_cache, v_cache, f16, row_stride, head_stride,
                                                      T, pos0, n_head, head_dim, scale))
        return;
    const int64_t n_keys_max = pos0 + T, tasks = T * n_head;   // task th: query th / n_head, head th % n_head
    if ((tasks == 1 && pos0 <= 256) || BONSAI_NUM_THREADS() == 1) {   // no region (bonsai_thread_share)
        for (int64_t th = 0; th < tasks; th++)
            attend_query(out, q, q_stride, k_cache, v_cache, f16, row_stride, head_stride, th / n_head,
                         (int)(th % n_head), pos0, n_head, head_dim, scale, scratch);
        return;
    }
#pragma omp parallel
    {
        // thread k takes tasks k, k + team, …: the causal rows' unequal work interleaves
        const int k = BONSAI_THREAD_ID(), team = BONSAI_TEAM_SIZE();
        float *att = scratch + (int64_t)k * n_keys_max;
        for (int64_t th = k; th < tasks; th += team)
            attend_query(out, q, q_stride, k_cache, v_cache, f16, row_stride, head_stride, th / n_head,
                         (int)(th % n_head), pos0, n_head, head_dim, scale, att);
    }
}

void bonsai_attention_forward(float *out, const float *q, int64_t q_stride, const float *k_cache,
                              const float *v_cache, int64_t T, int64_t pos0, int n_head, int head_dim, float scale,
                              float *scratch) {
    bonsai_attention_forward_kv(out, q, q_stride, k_cache, v_cache, BONSAI_TYPE_F32, (int64_t)n_head * head_dim,
                                head_dim, T, pos0, n_head, head_dim, scale, scratch);
}

// kv_store: src [T, n_head·head_dim] f32 → positions pos0 .. pos0+T-1 of a cache laid out as above.
void bonsai_kv_store(void *cache, int kv_type, int64_t row_stride, int64_t head_stride, const float *src, int64_t T,
                     int64_t pos0, int n_head, int head_dim) {
    bonsai_simd_init();
    const bool f16 = kv_type == BONSAI_TYPE_F16;
    for (int64_t t = 0; t < T; t++)
        for (int h = 0; h < n_head; h++) {
            const float *x = src + (t * n_head + h) * head_dim;
            const int64_t at = (pos0 + t) * row_stride + (int64_t)h * head_stride;
            if (f16) bonsai_f32_to_f16_row(x, (uint16_t *)cache + at, head_dim);
            else memcpy((float *)cache + at, x, (size_t)head_dim * sizeof(float));
        }
}

// Training attention works on whole heads with the f32 gemm (scores for all T × T pairs, the causal half
// then zeroed): one head per task, its scratch allocated per task.

// attention_train_forward: one sequence, no cache. q, k, v, out [T, H*D]; probs [H, T, T] keeps the
// softmax of row t in probs[h][t][0..t] (the rest zero) for the backward pass. Scores in f32.
//   S = q_h k_h^T * scale (causal),  P = softmax(S),  out_h = P v_h
void bonsai_attention_train_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                                    int64_t T, int n_head, int head_dim, float scale) {
    bonsai_simd_init();
    const int64_t dm = (int64_t)n_head * head_dim, D = head_dim;
#pragma omp parallel
    {
        float *kt = malloc((size_t)(D * T) * sizeof(float));
#pragma omp for schedule(static)
        for (int h = 0; h < n_head; h++) {
            const int64_t off = (int64_t)h * D;
            float *P = probs + (int64_t)h * T * T;
            memset(P, 0, (size_t)(T * T) * sizeof(float));
            transpose(kt, k + off, false, T, D, dm);
            bonsai_gemm_nn_f32(P, T, q + off, dm, kt, T, T, D, T);
            for (int64_t t = 0; t < T; t++) {
                causal_softmax_row(P + t * T, t + 1, T, scale);
                memset(out + t * dm + off, 0, (size_t)D * sizeof(float));
            }
            bonsai_gemm_nn_f32(out + off, dm, P, T, v + off, dm, T, T, D);
        }
        free(kt);
    }
}

// attention_backward: from dout [T, H*D] to dq, dk, dv [T, H*D] (overwritten), given the forward's
// q, k, v and probs [H, T, T]. With P = softmax(S), S = scale q k^T (causal), per head:
//   dv = P^T dout,  dP = dout v^T,  dS = P * (dP - rowsum(P * dP)),  dq = scale dS k,  dk = scale dS^T q
void bonsai_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *probs,
                               int64_t T, int n_head, int head_dim, float scale) {
    bonsai_simd_init();
    const int64_t dm = (int64_t)n_head * head_dim, D = head_dim;
    for (int64_t t = 0; t < T; t++) {
        memset(dq + t * dm, 0, (size_t)dm * sizeof(float));
        memset(dk + t * dm, 0, (size_t)dm * sizeof(float));
        memset(dv + t * dm, 0, (size_t)dm * sizeof(float));
    }
#pragma omp parallel
    {
        float *pt = malloc((size_t)(T * T) * sizeof(float));   // P^T, then dS^T
        float *ds = malloc((size_t)(T * T) * sizeof(float));   // dP, then dS
        float *vt = malloc((size_t)(D * T) * sizeof(float));
#pragma omp for schedule(static)
        for (int h = 0; h < n_head; h++) {
            const int64_t off = (int64_t)h * D;
            const float *P = probs + (int64_t)h * T * T;
            transpose(pt, P, false, T, T, T);
            bonsai_gemm_nn_f32(dv + off, dm, pt, T, dout + off, dm, T, T, D);
            transpose(vt, v + off, false, T, D, dm);
            memset(ds, 0, (size_t)(T * T) * sizeof(float));
            bonsai_gemm_nn_f32(ds, T, dout + off, dm, vt, T, T, D, T);
            for (int64_t t = 0; t < T; t++) {
                const float *p = P + t * T;
                float *g = ds + t * T, dot = 0.0f;
                for (int64_t j = 0; j <= t; j++) dot += p[j] * g[j];
                for (int64_t j = 0; j <= t; j++) g[j] = p[j] * (g[j] - dot) * scale;
                for (int64_t j = t + 1; j < T; j++) g[j] = 0.0f;
            }
            bonsai_gemm_nn_f32(dq + off, dm, ds, T, k + off, dm, T, T, D);
            transpose(pt, ds, false, T, T, T);
            bonsai_gemm_nn_f32(dk + off, dm, pt, T, q + off, dm, T, T, D);
        }
        free(pt);
        free(ds);
        free(vt);
    }
}

void bonsai_add3(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a[i] + b[i];
}
