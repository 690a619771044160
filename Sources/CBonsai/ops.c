// ops.c — the transformer's non-matmul ops, f32 throughout.
#include "bonsai.h"
#include "simd.h"
#include <math.h>
#include <string.h>

// layernorm_forward: x [T, C] -> out [T, C]; mean and variance in f32 (two passes, like torch).
void bonsai_layernorm_forward(float *out, const float *x, const float *w, const float *b,
                              int64_t T, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (T > 4)
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * C;
        float *ot = out + t * C;
        float mean = 0.0f;
        for (int64_t i = 0; i < C; i++) mean += xt[i];
        mean /= (float)C;
        float var = 0.0f;
        for (int64_t i = 0; i < C; i++) {
            const float d = xt[i] - mean;
            var += d * d;
        }
        var /= (float)C;
        const float rstd = 1.0f / sqrtf(var + eps);
        for (int64_t i = 0; i < C; i++) ot[i] = (xt[i] - mean) * rstd * w[i] + b[i];
    }
}

// gelu_forward (gelu_new): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x [n] in place.
void bonsai_gelu_forward(float *x, int64_t n) {
    bonsai_simd_init();
    const int64_t chunk = 4096;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i += chunk) bonsai_gelu_f32(x + i, n - i < chunk ? n - i : chunk);
}

// rope_neox_forward: x [T, n_head, head_dim] (token stride `stride`), rotate-half on the first rot_dim
// dims of each head. The angle is computed as transformers does: inv_freq = 1 / theta^(2i/rot_dim) in
// f32, angle = pos * inv_freq in f32.
void bonsai_rope_neox_forward(float *x, int64_t T, int64_t stride, int n_head, int head_dim,
                              int rot_dim, float theta, int64_t pos0) {
    const int half = rot_dim / 2;
    for (int64_t t = 0; t < T; t++) {
        const float pos = (float)(pos0 + t);
        for (int i = 0; i < half; i++) {
            const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)rot_dim);
            const float angle = pos * inv_freq;
            const float c = cosf(angle), s = sinf(angle);
            for (int h = 0; h < n_head; h++) {
                float *v = x + t * stride + (int64_t)h * head_dim;
                const float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x1 * c + x0 * s;
            }
        }
    }
}

// attention_forward: out [T, H*D] = softmax(q k^T * scale, causal) v, per head; see bonsai.h.
void bonsai_attention_forward(float *out, const float *q, int64_t q_stride,
                              const float *k_cache, const float *v_cache,
                              int64_t T, int64_t pos0, int n_head, int head_dim, float scale,
                              float *scratch) {
    bonsai_simd_init();
    const int64_t dm = (int64_t)n_head * head_dim;
    const int64_t n_keys_max = pos0 + T;
// schedule(static, 1) interleaves the causal rows' unequal work; (dynamic needs a newer libomp than Debian's)
#pragma omp parallel for schedule(static, 1) if (T * n_head > 1 || pos0 > 256)
    for (int64_t th = 0; th < T * n_head; th++) {
        const int64_t t = th / n_head;
        const int h = (int)(th % n_head);
        const int64_t n_keys = pos0 + t + 1;
        float *att = scratch + (int64_t)BONSAI_THREAD_ID() * n_keys_max;
        const float *qh = q + t * q_stride + (int64_t)h * head_dim;
        if (bonsai_attend_f32 && head_dim % 8 == 0 && head_dim <= 128) {
            bonsai_attend_f32(out + t * dm + (int64_t)h * head_dim, qh, k_cache + (int64_t)h * head_dim,
                              v_cache + (int64_t)h * head_dim, n_keys, dm, head_dim, scale, att);
            continue;
        }
        float maxv = -INFINITY;
        for (int64_t j = 0; j < n_keys; j++) {
            const float s = bonsai_dot_f32(qh, k_cache + j * dm + (int64_t)h * head_dim, head_dim) * scale;
            att[j] = s;
            if (s > maxv) maxv = s;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < n_keys; j++) {
            att[j] = expf(att[j] - maxv);
            sum += att[j];
        }
        const float inv = 1.0f / sum;
        float *oh = out + t * dm + (int64_t)h * head_dim;
        memset(oh, 0, (size_t)head_dim * sizeof(float));
        for (int64_t j = 0; j < n_keys; j++)
            bonsai_axpy_f32(oh, att[j] * inv, v_cache + j * dm + (int64_t)h * head_dim, head_dim);
    }
}

void bonsai_add3(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a[i] + b[i];
}
