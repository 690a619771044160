// loss.c — token cross-entropy, forward and backward in one pass over the logits.
#include "bonsai.h"
#include <math.h>

// cross_entropy: logits [T, V], targets [T] (each in 0..<V). Returns sum_t -log softmax(logits_t)[target_t]
// (double). In place, logits_t becomes its gradient: grad_scale * (softmax(logits_t) - onehot(target_t)).
double bonsai_cross_entropy(float *logits, const int32_t *targets, int64_t T, int64_t V, float grad_scale) {
    double loss = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : loss) if (T > 1)
    for (int64_t t = 0; t < T; t++) {
        float *z = logits + t * V;
        float maxv = -INFINITY;
        for (int64_t i = 0; i < V; i++) maxv = z[i] > maxv ? z[i] : maxv;
        const float target_shifted = z[targets[t]] - maxv;
        double sum = 0.0;
        for (int64_t i = 0; i < V; i++) {
            const float e = expf(z[i] - maxv);
            sum += e;
            z[i] = e;
        }
        loss += log(sum) - (double)target_shifted;
        const float inv = (float)(1.0 / sum);
        for (int64_t i = 0; i < V; i++) z[i] = grad_scale * z[i] * inv;
        z[targets[t]] -= grad_scale;
    }
    return loss;
}
