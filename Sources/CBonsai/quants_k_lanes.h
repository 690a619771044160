// quants_k_lanes.h — internal: the K types' scale searches (quants_k.c), and iq4's (quants_iq4.c), on 8
// sub-blocks at once, one per lane: the same operations in the same order, lane by lane, so the bytes
// are those of the scalar fits; branches become masks. Quantizing is these searches: a full-size PHI-2 f16 → q4_K_M took 135 s
// one sub-block at a time, 34 s in SSE2 lanes, 25 s in AVX2's (llama-quantize: 122-128 s; 2 threads, Zen 3).
// Levels stay floats: rounding v to an integer and clamping it equals clamping v and rounding
// (v + 1.5·2^23) − 1.5·2^23, which is exact and gives round_nearest's ties. Plain vector types, so any ISA
// compiles them: quants_k.c at the baseline (SSE2 halves, NEON), quants_k_avx2.c for AVX2. The includer
// defines LANES_NAME(name) and turns FP contraction off; the helpers are inlined into the two entry
// points, so no vector crosses a call.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpsabi"
typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
#define LANES static inline __attribute__((always_inline))

LANES f32x8 select8(i32x8 m, f32x8 a, f32x8 b) { return (f32x8)((m & (i32x8)a) | (~m & (i32x8)b)); }   // m ? a : b
LANES f32x8 levels8(f32x8 v, float lo, float hi) {   // clampi(round_nearest(v), lo, hi), as a float
    v = select8(v < lo, (f32x8){0} + lo, v);
    v = select8(v > hi, (f32x8){0} + hi, v);
    return (v + 12582912.0f) - 12582912.0f;
}

LANES f32x8 abs8(f32x8 v) { return (f32x8)((i32x8)v & 0x7fffffff); }

// largest_magnitude lane by lane over n elements; *amax receives the magnitudes.
LANES f32x8 largest_magnitude8(int n, const f32x8 *x, f32x8 *amax) {
    f32x8 max = {0}, a = {0};
    for (int i = 0; i < n; i++) {
        const f32x8 ax = abs8(x[i]);
        const i32x8 larger = ax > a;
        a = select8(larger, ax, a);
        max = select8(larger, x[i], max);
    }
    *amax = a;
    return max;
}

// fit_affine: x[i], w[i] element i of each lane's sub-block of n (32: q4_K/q5_K, 16: q2_K); L[i] receives
// its levels; mad: absolute instead of squared error (q2_K). Returns the scales, *the_min the mins.
LANES f32x8 fit_affine8(int n, int nmax, const f32x8 x[32], const f32x8 w[32], f32x8 L[32], f32x8 *the_min,
                        float rmin, float rdelta, int nstep, bool mad) {
    f32x8 min = x[0], max = x[0];
    f32x8 sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        min = select8(x[i] < min, x[i], min);
        max = select8(x[i] > max, x[i], max);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    min = select8(min > 0, (f32x8){0}, min);
    // Lanes with max == min (the scalar fit's early return) need no mask but on L: their iscale is infinite,
    // every level NaN, so no step is better, and scale stays 1/∞ = 0 and min as it is, as that return has them.
    const i32x8 flat = max == min;
    f32x8 iscale = (float)nmax / (max - min);
    f32x8 scale = 1 / iscale;
    f32x8 best_error = {0};
    for (int i = 0; i < n; i++) {
        L[i] = levels8(iscale * (x[i] - min), 0, (float)nmax);
        const f32x8 diff = scale * L[i] + min - x[i];
        best_error += w[i] * (mad ? abs8(diff) : diff * diff);
    }
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * k + nmax) / (max - min);
        f32x8 sum_l = {0}, sum_l2 = {0}, sum_xl = {0}, Laux[32];
        for (int i = 0; i < n; i++) {
            const f32x8 l = Laux[i] = levels8(iscale * (x[i] - min), 0, (float)nmax);   // min: the best fit's so far
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const f32x8 D = sum_w * sum_l2 - sum_l * sum_l;
        f32x8 this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        f32x8 this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        const i32x8 positive = this_min > 0;
        this_min = select8(positive, (f32x8){0}, this_min);
        this_scale = select8(positive, sum_xl / sum_l2, this_scale);
        f32x8 err = {0};
        for (int i = 0; i < n; i++) {
            const f32x8 diff = this_scale * Laux[i] + this_min - x[i];
            err += w[i] * (mad ? abs8(diff) : diff * diff);
        }
        const i32x8 better = (D > 0) & (err < best_error);
        for (int i = 0; i < n; i++) L[i] = select8(better, Laux[i], L[i]);
        best_error = select8(better, err, best_error);
        scale = select8(better, this_scale, scale);
        min = select8(better, this_min, min);
    }
    for (int i = 0; i < n; i++) L[i] = select8(flat, (f32x8){0}, L[i]);
    *the_min = -min;
    return scale;
}

// fit_symmetric on sub-blocks of 16 (q6_K): L[i] receives element i's levels in [-nmax, nmax − 1] (not
// yet offset by nmax).
LANES f32x8 fit_symmetric8(int nmax, const f32x8 x[16], f32x8 L[16]) {
    f32x8 amax;
    const f32x8 max = largest_magnitude8(16, x, &amax);
    const i32x8 flat = amax < 1e-15f;
    const float lo = (float)-nmax, hi = (float)(nmax - 1);
    f32x8 iscale = lo / max;
    f32x8 sumlx = {0}, suml2 = {0};
    for (int i = 0; i < 16; i++) {
        const f32x8 l = L[i] = levels8(iscale * x[i], lo, hi), w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    f32x8 scale = select8(suml2 != 0, sumlx / suml2, (f32x8){0});
    f32x8 best = scale * sumlx;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        iscale = -(nmax + 0.1f * k) / max;
        sumlx = suml2 = (f32x8){0};
        f32x8 Laux[16];
        for (int i = 0; i < 16; i++) {
            const f32x8 l = Laux[i] = levels8(iscale * x[i], lo, hi), w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        const i32x8 better = (suml2 > 0) & (sumlx * sumlx > best * suml2);
        for (int i = 0; i < 16; i++) L[i] = select8(better, Laux[i], L[i]);
        scale = select8(better, sumlx / suml2, scale);
        best = select8(better, scale * sumlx, best);
    }
    for (int i = 0; i < 16; i++) L[i] = select8(flat, (f32x8){0} + lo, L[i]);
    return select8(flat, (f32x8){0}, scale);
}

// A block's 8 sub-blocks of n (x[n·j ..], lane j) as lanes: xv[i] holds element i of each.
LANES void to_lanes(const float *x, int n, f32x8 *xv) {
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < n; i++) xv[i][j] = x[n * j + i];
}

// fit_affine with weights rms(x) + |x| on the 8 sub-blocks of 32 of a q4_K/q5_K block.
void LANES_NAME(bonsai_fit_affine_lanes)(const float *x, int nmax, float rmin, float rdelta, int nstep,
                                         float scales[8], float mins[8], uint8_t L[BONSAI_QKK]) {
    f32x8 xv[32], wv[32], Lv[32], sum_x2 = {0}, the_min;
    to_lanes(x, 32, xv);
    for (int i = 0; i < 32; i++) sum_x2 += xv[i] * xv[i];
    f32x8 av_x;
    for (int j = 0; j < 8; j++) av_x[j] = sqrtf(sum_x2[j] / 32);
    for (int i = 0; i < 32; i++) wv[i] = av_x + abs8(xv[i]);
    const f32x8 scale = fit_affine8(32, nmax, xv, wv, Lv, &the_min, rmin, rdelta, nstep, false);
    memcpy(scales, &scale, sizeof scale);
    memcpy(mins, &the_min, sizeof the_min);
    for (int i = 0; i < 32; i++)
        for (int j = 0; j < 8; j++) L[32 * j + i] = (uint8_t)Lv[i][j];
}

// fit_affine with weights |x| and absolute error on 8 sub-blocks of 16 (half a q2_K block: nmax 3, rmin
// -0.5, rdelta 0.1, nstep 15).
void LANES_NAME(bonsai_fit_affine16_lanes)(const float *x, float scales[8], float mins[8], uint8_t L[128]) {
    f32x8 xv[32], wv[32], Lv[32], the_min;
    to_lanes(x, 16, xv);
    for (int i = 0; i < 16; i++) wv[i] = abs8(xv[i]);
    const f32x8 scale = fit_affine8(16, 3, xv, wv, Lv, &the_min, -0.5f, 0.1f, 15, true);
    memcpy(scales, &scale, sizeof scale);
    memcpy(mins, &the_min, sizeof the_min);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) L[16 * j + i] = (uint8_t)Lv[i][j];
}

// fit_symmetric on 8 sub-blocks of 16 (half a q6_K block); L as fit_symmetric leaves it (+ nmax).
void LANES_NAME(bonsai_fit_symmetric_lanes)(const float *x, int nmax, float scales[8], int8_t L[128]) {
    f32x8 xv[16], Lv[16];
    to_lanes(x, 16, xv);
    const f32x8 scale = fit_symmetric8(nmax, xv, Lv);
    memcpy(scales, &scale, sizeof scale);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) L[16 * j + i] = (int8_t)(Lv[i][j] + nmax);
}

// ---- iq4_nl / iq4_xs (quants_iq4.c): fit_sub_block and levels_at on 8 sub-blocks of 32 at once

// The level nearest each lane's v as ggml's best_index_int8 picks it: the last level ≤ v (a count of
// levels 1..14, where its binary search branches on every element) or the next one, whichever is nearer,
// the upper on a tie. *q receives the level's value.
LANES i32x8 iq4_nearest8(f32x8 v, f32x8 *q) {
    f32x8 lo = (f32x8){0} + (float)bonsai_iq4_levels[0], hi = (f32x8){0} + (float)bonsai_iq4_levels[1];
    i32x8 idx = {0};
    for (int k = 1; k < 15; k++) {
        const i32x8 up = v >= (float)bonsai_iq4_levels[k];   // −1 where v ≥ level k
        lo = select8(up, (f32x8){0} + (float)bonsai_iq4_levels[k], lo);
        hi = select8(up, (f32x8){0} + (float)bonsai_iq4_levels[k + 1], hi);
        idx -= up;
    }
    const i32x8 lower = (v - lo) < (hi - v);
    *q = select8(lower, lo, hi);
    return idx + 1 + lower;
}

// Σ w·q·x and Σ w·q² (w = x²) for the levels nearest x·id.
LANES void iq4_sums8(const f32x8 x[32], f32x8 id, f32x8 *sumqx, f32x8 *sumq2) {
    f32x8 sqx = {0}, sq2 = {0}, q;
    for (int i = 0; i < 32; i++) {
        iq4_nearest8(id * x[i], &q);
        const f32x8 w = x[i] * x[i];
        sqx += w * q * x[i];
        sq2 += w * q * q;
    }
    *sumqx = sqx;
    *sumq2 = sq2;
}

// The scales of 8 sub-blocks of 32 (x[32·j ..], lane j): fit_sub_block's search lane by lane.
void LANES_NAME(bonsai_fit_iq4_lanes)(const float *x, float scales[8]) {
    f32x8 xv[32], amax;
    to_lanes(x, 32, xv);
    const f32x8 max = largest_magnitude8(32, xv, &amax);
    const float l0 = (float)bonsai_iq4_levels[0];
    f32x8 sumqx, sumq2;
    iq4_sums8(xv, 1 / (-max / l0), &sumqx, &sumq2);
    f32x8 d = sumqx / sumq2, best = d * sumqx;
    for (int t = -7; t <= 7; t++) {
        iq4_sums8(xv, (float)(t + bonsai_iq4_levels[0]) / max, &sumqx, &sumq2);
        const i32x8 better = (sumq2 > 0) & (sumqx * sumqx > best * sumq2);
        const f32x8 dt = sumqx / sumq2;
        d = select8(better, dt, d);
        best = select8(better, dt * sumqx, best);
    }
    d = select8(amax < 1e-15f, (f32x8){0}, d);   // all-zero sub-blocks (their searches ran on NaNs)
    memcpy(scales, &d, sizeof d);
}

// The levels of 8 sub-blocks of 32 at scales d (levels_at): L[32·j + i] for element i of sub-block j.
void LANES_NAME(bonsai_iq4_levels_lanes)(const float *x, const float d[8], uint8_t L[BONSAI_QKK]) {
    f32x8 xv[32], dv, q;
    to_lanes(x, 32, xv);
    memcpy(&dv, d, sizeof dv);
    const f32x8 id = select8(dv != 0, 1 / dv, (f32x8){0});
    for (int i = 0; i < 32; i++) {
        const i32x8 l = iq4_nearest8(id * xv[i], &q);
        for (int j = 0; j < 8; j++) L[32 * j + i] = (uint8_t)l[j];
    }
}
#undef LANES
#undef LANES_NAME
#pragma clang diagnostic pop
