// gemm_unpacked_x86.h — internal: the prompt kernels over unpacked weights, 4 rows × 8 tokens, written once
// and compiled per x86 level (matmul_avx2.c: AVX2; matmul_vnni.c: AVX512-VNNI and AVX-VNNI). The includer
// defines, and this file undefines at its end:
//   KERNEL_ISA            the kernels' target attribute
//   KERNEL(name)          a kernel's name at this level
//   PAIRS_ADD(p, u, s)    p + the products u8 u × s8 s, summed by four into i32 lanes or by two into i16
//                         lanes (the level's choice; the caller's bounds keep i16 sums exact)
//   PAIRS_WIDEN(acc, p)   acc (i32 lanes) + p, whatever PAIRS_ADD left p in
//   PAIRS_DOT(acc, u, s)  PAIRS_WIDEN(acc, PAIRS_ADD(0, u, s))
// Every level computes the same i32 sums exactly and the same float operations after them, so its outputs
// are bit-identical to AVX2's (tools/cross_check runs the VNNI kernels through SIMDe to check that).
//
// Activations of 8 tokens interleaved by groups of 4 elements (unpacked.c): qs[j] holds, for k = 4j..4j+3,
// the values of tokens 0..7 (32 bytes). A broadcast of 4 weight bytes against qs[j] gives each token's
// block product in its own lane: no horizontal sums.

// Four unpacked rows × 8 tokens (unpacked.c): one broadcast of 4 weight bytes against 32 activation bytes
// per step, no per-call unpacking. In i16, 4 steps fit before widening: 4 · 2 · 31 · 127 < 2^15.
KERNEL_ISA static void KERNEL(gemm_u8)(int64_t nb, const void *wp, const bonsai_act8x32_block *a, float out[4][8]) {
    const bonsai_u8x4_block *w = wp;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        __m256i s[4];
        for (int r = 0; r < 4; r++) s[r] = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            __m256i h[4];
            for (int r = 0; r < 4; r++) h[r] = _mm256_setzero_si256();
            for (int j = 4 * half; j < 4 * half + 4; j++) {
                const __m256i x = _mm256_loadu_si256((const __m256i *)a[b].qs[j]);
                for (int r = 0; r < 4; r++) {
                    int32_t q4;
                    memcpy(&q4, w[b].q[r] + 4 * j, 4);
                    h[r] = PAIRS_ADD(h[r], _mm256_set1_epi32(q4), x);
                }
            }
            for (int r = 0; r < 4; r++) s[r] = PAIRS_WIDEN(s[r], h[r]);
        }
        const __m256 da = _mm256_loadu_ps(a[b].d), sa = _mm256_loadu_ps(a[b].s);
        for (int r = 0; r < 4; r++) {
            const __m256 scale = _mm256_mul_ps(_mm256_broadcast_ss(&w[b].d[r]), da);
            acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s[r]), acc[r]);
            acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&w[b].m[r]), sa, acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) _mm256_storeu_ps(out[r], acc[r]);
}

// The same over 16-granular blocks (q2_K, q3_K, q6_K): each half has its own scale and offset, and
// q < 64 allows only 2 steps in i16 (2 · 2 · 63 · 127 < 2^15).
KERNEL_ISA static void KERNEL(gemm_u8h)(int64_t nb, const void *wp, const bonsai_act8x32_block *a, float out[4][8]) {
    const bonsai_u8x4h_block *w = wp;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        const __m256 da = _mm256_loadu_ps(a[b].d), s_lo = _mm256_loadu_ps(a[b].s_lo);
        const __m256 s_half[2] = {s_lo, _mm256_sub_ps(_mm256_loadu_ps(a[b].s), s_lo)};
        for (int half = 0; half < 2; half++) {
            __m256i s[4];
            for (int r = 0; r < 4; r++) s[r] = _mm256_setzero_si256();
            for (int j = 4 * half; j < 4 * half + 4; j += 2) {
                const __m256i x0 = _mm256_loadu_si256((const __m256i *)a[b].qs[j]);
                const __m256i x1 = _mm256_loadu_si256((const __m256i *)a[b].qs[j + 1]);
                for (int r = 0; r < 4; r++) {
                    int32_t q0, q1;
                    memcpy(&q0, w[b].q[r] + 4 * j, 4);
                    memcpy(&q1, w[b].q[r] + 4 * j + 4, 4);
                    const __m256i p = PAIRS_ADD(PAIRS_ADD(_mm256_setzero_si256(), _mm256_set1_epi32(q0), x0),
                                                _mm256_set1_epi32(q1), x1);
                    s[r] = PAIRS_WIDEN(s[r], p);
                }
            }
            for (int r = 0; r < 4; r++) {
                const __m256 scale = _mm256_mul_ps(_mm256_broadcast_ss(&w[b].d[half][r]), da);
                acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s[r]), acc[r]);
                acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&w[b].m[half][r]), s_half[half], acc[r]);
            }
        }
    }
    for (int r = 0; r < 4; r++) _mm256_storeu_ps(out[r], acc[r]);
}

// q8_0: weights are signed 8-bit, so the u8 × s8 products take |w| and the activation with w's sign, as
// ggml's q8_0 dot does; in i16 a pair reaches 2 · 128 · 127 < 2^15 and is widened at once.
KERNEL_ISA static void KERNEL(gemm_s8)(int64_t nb, const void *wp, const bonsai_act8x32_block *a, float out[4][8]) {
    const bonsai_s8x4_block *w = wp;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        __m256i s[4];
        for (int r = 0; r < 4; r++) s[r] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)a[b].qs[j]);
            for (int r = 0; r < 4; r++) {
                int32_t q4, a4;
                memcpy(&q4, w[b].q[r] + 4 * j, 4);
                memcpy(&a4, w[b].absq[r] + 4 * j, 4);
                s[r] = PAIRS_DOT(s[r], _mm256_set1_epi32(a4), _mm256_sign_epi8(x, _mm256_set1_epi32(q4)));
            }
        }
        const __m256 da = _mm256_loadu_ps(a[b].d);
        for (int r = 0; r < 4; r++)
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_broadcast_ss(&w[b].d[r]), da), _mm256_cvtepi32_ps(s[r]), acc[r]);
    }
    for (int r = 0; r < 4; r++) _mm256_storeu_ps(out[r], acc[r]);
}

#undef KERNEL_ISA
#undef KERNEL
#undef PAIRS_ADD
#undef PAIRS_WIDEN
#undef PAIRS_DOT
