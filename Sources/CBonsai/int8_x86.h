// int8_x86.h — internal: the x86 int8 kernels built on u8 × s8 products, written once and compiled per
// level (matmul_avx2.c: AVX2; matmul_vnni.c: AVX512-VNNI and AVX-VNNI): generation's dots, one row and
// four (q4_0/q5_0/q4_1/q5_1 and iq4_nl, q8_0, and the K types q2_K … q6_K and iq4_xs against q8_K), q8_0's
// 4 × 4 prompt kernel, and the prompt kernels over unpacked weights (4 rows × 8 tokens). Shared helpers: x86_common.h. The
// includer defines, and this file undefines at its end:
//   KERNEL_ISA            the kernels' target attribute
//   KERNEL(name)          a kernel's name at this level
//   PAIRS_ADD(p, u, s)    p + the products u8 u × s8 s, summed by four into i32 lanes or by two into i16
//                         lanes (the level's choice; the caller's bounds keep i16 sums exact)
//   PAIRS_WIDEN(acc, p)   acc (i32 lanes) + p, whatever PAIRS_ADD left p in
//   PAIRS_DOT(acc, u, s)  PAIRS_WIDEN(acc, PAIRS_ADD(0, u, s))
//   PAIRS_I32             defined if PAIRS_ADD sums into i32 lanes (cannot saturate)
//   PAIRS_SCALED(acc, p, s) acc (i32 lanes) + the i16 lanes of p times those of s, summed by two (the K types
//                         fold their sub-block scales in this way: madd + add, or VNNI's dpwssd)
//   KERNEL_REGS32         defined if the level has 32 vector registers (AVX-512): the K types' four-row
//                         dots keep all four rows' sums in registers
// Every level computes the same i32 sums exactly and the same float operations after them, so its outputs
// are bit-identical to AVX2's (tools/cross_check runs the VNNI kernels through SIMDe to check that).

// ------------------------------------------------------------------------------- q4_0, q5_0, iq4_nl · q8_0; q4_1, q5_1 · q8_1
// Reads the activation as bonsai_q4_0_act8 (act_layout.c), made once per token. Per pair of blocks: one
// 32-byte load of both blocks' nibbles; two maddubs against lo/hi, whose sum fits i16 (2 · 2·31·127);
// madd to i32 lanes (4 per block). Per group of 8 blocks, horizontal adds give each block's exact sum;
// the offset comes off in integers (q4_0: Σ q·y − 8Σy = Σ (q − 8)·y, exact), then one convert and one FMA by
// the 8 blocks' d_w·d_y. The activation's per-block values are stored in the horizontal adds' lane order
// and the weight scales are gathered in it, so nothing is permuted. This does per block about 10
// operations where a q8_0-activation dot does 17 (two scale conversions, a product and a broadcast per
// block; maddubs by 8 for the offset), which is what held q4_0 generation below the memory bandwidth.
// q5_0 is q4_0 with a fifth bit per element from qh (x5_bits) and offset 16 (2 · 8Σy); q4_1 and q5_1 are
// q4_0 and q5_0 with a min m per block in place of the offset: d·dy·Σq·y + m·dy·Σy; iq4_nl is q4_0's block
// with nibbles that pick signed levels (nl) and no offset. They differ in where the nibbles sit (qs_off),
// whether there is a qh (qh_off ≥ 0) and a min (m_off ≥ 0; d is always first).
// One group and the result with a last partial group (x0_result): the one-row and four-row dots share
// them, so a row gets the same result from either.
KERNEL_ISA static inline __attribute__((always_inline)) __m256 KERNEL(x0_group)(
        __m256 acc, const char *x, size_t block_bytes, size_t qs_off, long qh_off, long m_off, bool nl, const bonsai_q4_0_act8 *a) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    prefetch_block(x, 8 * block_bytes);
    __m256i q[4];   // pair j: lanes 0-3 block 2j's partial sums, lanes 4-7 block 2j+1's
    for (int j = 0; j < 4; j++) {
        const char *b0 = x + 2 * j * block_bytes, *b1 = b0 + block_bytes;
        const __m256i v = _mm256_loadu2_m128i((const __m128i *)(b1 + qs_off), (const __m128i *)(b0 + qs_off));
        __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        if (qh_off >= 0) {
            uint32_t h0, h1;
            memcpy(&h0, b0 + qh_off, 4);
            memcpy(&h1, b1 + qh_off, 4);
            const __m256i words = _mm256_set_m128i(_mm_cvtsi32_si128((int)h1), _mm_cvtsi32_si128((int)h0));
            lo = _mm256_or_si256(lo, x5_bits(words, 0));
            hi = _mm256_or_si256(hi, x5_bits(words, 1));
        }
        const __m256i yl = _mm256_loadu_si256((const __m256i *)a->lo[j]), yh = _mm256_loadu_si256((const __m256i *)a->hi[j]);
        if (nl) {   // signed levels: |w| × (y with w's sign), each half widened alone (2 · 2·127·127 overflows i16)
            const __m256i wl = _mm256_shuffle_epi8(iq4_table(), lo), wh = _mm256_shuffle_epi8(iq4_table(), hi);
            q[j] = PAIRS_DOT(PAIRS_DOT(_mm256_setzero_si256(), _mm256_sign_epi8(wl, wl), _mm256_sign_epi8(yl, wl)),
                             _mm256_sign_epi8(wh, wh), _mm256_sign_epi8(yh, wh));
        } else {
            q[j] = PAIRS_WIDEN(_mm256_setzero_si256(), PAIRS_ADD(PAIRS_ADD(_mm256_setzero_si256(), lo, yl), hi, yh));
        }
    }
    // Each block's sum in lanes (0, 2, 4, 6 | 1, 3, 5, 7) = BONSAI_Q4_0_LANE order
    const __m256i blocks = _mm256_hadd_epi32(_mm256_hadd_epi32(q[0], q[1]), _mm256_hadd_epi32(q[2], q[3]));
    const __m256i c = _mm256_loadu_si256((const __m256i *)a->c);   // 8Σy
    const __m256 dy = _mm256_loadu_ps(a->d);
    uint16_t d[8];
    for (int b = 0; b < 8; b++) memcpy(&d[BONSAI_Q4_0_LANE(b)], x + b * block_bytes, 2);
    const __m256 scales = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d)), dy);
    if (m_off < 0) {
        const __m256i centred = nl ? blocks : _mm256_sub_epi32(blocks, qh_off >= 0 ? _mm256_slli_epi32(c, 1) : c);
        return _mm256_fmadd_ps(_mm256_cvtepi32_ps(centred), scales, acc);
    }
    uint16_t m[8];
    for (int b = 0; b < 8; b++) memcpy(&m[BONSAI_Q4_0_LANE(b)], x + b * block_bytes + m_off, 2);
    const __m256 sy = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(c, 3)), dy);   // dy·Σy (c/8: exact)
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(blocks), scales, acc);
    return _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)m)), sy, acc);
}

KERNEL_ISA static inline __attribute__((always_inline)) float KERNEL(dot_x0_act8)(
        int64_t n, const void *w, size_t block_bytes, size_t qs_off, long qh_off, long m_off, bool nl, const void *act) {
    const char *x = w;
    const bonsai_q4_0_act8 *a = act;
    const int64_t nb = n / BONSAI_QK, ng = nb / 8;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t g = 0; g < ng; g++) acc = KERNEL(x0_group)(acc, x + 8 * g * block_bytes, block_bytes, qs_off, qh_off, m_off, nl, a + g);
    return x0_result(acc, x + 8 * ng * block_bytes, block_bytes, qs_off, qh_off, m_off, nl, a + ng, nb - 8 * ng);
}

// Four rows, w_stride bytes apart; the activation's group is read from L1 once per row. The row loop is
// unrolled so that the four sums stay in registers (rolled, they went through the stack every group).
KERNEL_ISA static inline __attribute__((always_inline)) void KERNEL(dot4_x0_act8)(
        int64_t n, const void *w, size_t w_stride, size_t block_bytes, size_t qs_off, long qh_off, long m_off, bool nl,
        const void *act, float out[4]) {
    const bonsai_q4_0_act8 *a = act;
    const int64_t nb = n / BONSAI_QK, ng = nb / 8;
    const char *x[4];
    __m256 acc[4];
    for (int r = 0; r < 4; r++) {
        x[r] = (const char *)w + (size_t)r * w_stride;
        acc[r] = _mm256_setzero_ps();
    }
    for (int64_t g = 0; g < ng; g++) {
#pragma clang loop unroll(full)
        for (int r = 0; r < 4; r++)
            acc[r] = KERNEL(x0_group)(acc[r], x[r] + 8 * g * block_bytes, block_bytes, qs_off, qh_off, m_off, nl, a + g);
    }
    for (int r = 0; r < 4; r++)
        out[r] = x0_result(acc[r], x[r] + 8 * ng * block_bytes, block_bytes, qs_off, qh_off, m_off, nl, a + ng, nb - 8 * ng);
}

// Each type's dot and four-row dot: its block, where the nibbles, fifth bits and min sit, and whether the
// nibbles pick iq4_nl's levels (nl).
#define X0_DOTS(type, qh_off, m_off, nl)                                                                            \
    KERNEL_ISA static float KERNEL(dot_##type##_act8)(int64_t n, const void *w, const void *act) {                   \
        return KERNEL(dot_x0_act8)(n, w, sizeof(block_##type), offsetof(block_##type, qs), (qh_off), (m_off), (nl), act); \
    }                                                                                                               \
    KERNEL_ISA static void KERNEL(dot4_##type##_act8)(int64_t n, const void *w, size_t w_stride, const void *act,   \
                                                      float out[4]) {                                               \
        KERNEL(dot4_x0_act8)(n, w, w_stride, sizeof(block_##type), offsetof(block_##type, qs), (qh_off), (m_off), (nl), act, out); \
    }
X0_DOTS(q4_0, -1, -1, false)
X0_DOTS(q5_0, (long)offsetof(block_q5_0, qh), -1, false)
X0_DOTS(q4_1, -1, (long)offsetof(block_q4_1, m), false)
X0_DOTS(q5_1, (long)offsetof(block_q5_1, qh), (long)offsetof(block_q5_1, m), false)
X0_DOTS(iq4_nl, -1, -1, true)

// ------------------------------------------------------------------------------- q8_0 · q8_0
// s8 × s8 as u8 × s8: |x| × (y with x's sign). Blocks go by groups of 8: each block's products summed to
// i32 lanes, then horizontal adds give the 8 blocks' exact sums in one vector, and one convert and one FMA
// by the 8 scale products (converted together) finish the group, where a block at a time costs a convert,
// an FMA and two scalar scale conversions per block. The one-row and four-row dots share both steps, so a
// row gets the same result from either.
KERNEL_ISA static inline __m256i KERNEL(q8_0_products)(const block_q8_0 *x, const block_q8_0 *y) {
    const __m256i xq = _mm256_loadu_si256((const __m256i *)x->qs), yq = _mm256_loadu_si256((const __m256i *)y->qs);
    return PAIRS_DOT(_mm256_setzero_si256(), _mm256_sign_epi8(xq, xq), _mm256_sign_epi8(yq, xq));
}

KERNEL_ISA static inline __m256 KERNEL(q8_0_group)(__m256 acc, const block_q8_0 *x, const block_q8_0 *y) {
    __m256i p[8];
    for (int i = 0; i < 8; i++) {
        if (!(i & 1)) prefetch_block(x + i, 2 * sizeof(block_q8_0));
        p[i] = KERNEL(q8_0_products)(&x[i], &y[i]);
    }
    // (lanes of p0..p3 summed by halves: [p0 p1 p2 p3 | p0 p1 p2 p3]), the same for p4..p7, then the halves
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    const __m256i sums = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
    const __m128i dx = _mm_setr_epi16((short)x[0].d, (short)x[1].d, (short)x[2].d, (short)x[3].d,
                                      (short)x[4].d, (short)x[5].d, (short)x[6].d, (short)x[7].d);
    const __m128i dy = _mm_setr_epi16((short)y[0].d, (short)y[1].d, (short)y[2].d, (short)y[3].d,
                                      (short)y[4].d, (short)y[5].d, (short)y[6].d, (short)y[7].d);
    const __m256 scales = _mm256_mul_ps(_mm256_cvtph_ps(dx), _mm256_cvtph_ps(dy));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scales, acc);
}

// The blocks past the last group of 8, one at a time.
KERNEL_ISA static inline float KERNEL(q8_0_rest)(__m256 acc, const block_q8_0 *x, const block_q8_0 *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(KERNEL(q8_0_products)(&x[i], &y[i])), acc);
    return hsum_ps(acc);
}

KERNEL_ISA static float KERNEL(dot_q8_0_q8_0)(int64_t n, const void *w, const void *a) {
    const block_q8_0 *x = w;
    const block_q8_0 *y = a;
    const int64_t nb = n / BONSAI_QK, ng = nb / 8;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t g = 0; g < ng; g++) acc = KERNEL(q8_0_group)(acc, x + 8 * g, y + 8 * g);
    return KERNEL(q8_0_rest)(acc, x + 8 * ng, y + 8 * ng, nb - 8 * ng);
}

// Four rows, w_stride bytes apart.
KERNEL_ISA static void KERNEL(dot4_q8_0_q8_0)(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {
    const block_q8_0 *y = a;
    const int64_t nb = n / BONSAI_QK, ng = nb / 8;
    const block_q8_0 *x[4];
    __m256 acc[4];
    for (int r = 0; r < 4; r++) {
        x[r] = (const block_q8_0 *)((const char *)w + (size_t)r * w_stride);
        acc[r] = _mm256_setzero_ps();
    }
    for (int64_t g = 0; g < ng; g++) {
#pragma clang loop unroll(full)   // the four sums stay in registers
        for (int r = 0; r < 4; r++) acc[r] = KERNEL(q8_0_group)(acc[r], x[r] + 8 * g, y + 8 * g);
    }
    for (int r = 0; r < 4; r++) out[r] = KERNEL(q8_0_rest)(acc[r], x[r] + 8 * ng, y + 8 * ng, nb - 8 * ng);
}

// ------------------------------------------------------------------------------- 4 rows × 4 tokens
// Prompt processing: each weight block is unpacked once and used for four tokens; the four tokens'
// eight-lane partial sums are folded into one vector (hadd) so that the block scales cost one multiply.

KERNEL_ISA static void KERNEL(gemm4x4_q8_0)(int64_t n, const void *w, size_t ws, const void *a, size_t as, float out[4][4]) {
    const block_q8_0 *y[4];
    for (int c = 0; c < 4; c++) y[c] = (const block_q8_0 *)((const char *)a + c * as);
    const block_q8_0 *x[4];
    for (int r = 0; r < 4; r++) x[r] = (const block_q8_0 *)((const char *)w + r * ws);
    __m128 acc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    for (int64_t b = 0; b < n / BONSAI_QK; b++) {
        __m256i yv[4];
        for (int c = 0; c < 4; c++) yv[c] = _mm256_loadu_si256((const __m256i *)y[c][b].qs);
        const __m128 dy = _mm_set_ps(h2f(y[3][b].d), h2f(y[2][b].d), h2f(y[1][b].d), h2f(y[0][b].d));
        for (int r = 0; r < 4; r++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)x[r][b].qs), aq = _mm256_sign_epi8(q, q);
            __m256i p[4];
            for (int c = 0; c < 4; c++) p[c] = PAIRS_DOT(_mm256_setzero_si256(), aq, _mm256_sign_epi8(yv[c], q));
            const __m128 s = _mm_cvtepi32_ps(reduce4(p[0], p[1], p[2], p[3]));
            acc[r] = _mm_fmadd_ps(_mm_mul_ps(_mm_set1_ps(h2f(x[r][b].d)), dy), s, acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) _mm_storeu_ps(out[r], acc[r]);
}

// ------------------------------------------------------------------------------- prompts: 4 rows × 8 tokens
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
// ggml's q8_0 dot does; in i16 a pair reaches 2 · 128 · 127 < 2^15 and is widened at once. A level whose
// products sum straight into i32 (PAIRS_I32: VNNI) instead offsets the activations by 128 (unsigned) and
// multiplies q as it is, taking 128·Σq back off: Σ (x + 128)·q − 128·Σq = Σ x·q, exactly, one sign
// operation fewer per product. maddubs cannot: its i16 pair sums would saturate.
KERNEL_ISA static void KERNEL(gemm_s8)(int64_t nb, const void *wp, const bonsai_act8x32_block *a, float out[4][8]) {
    const bonsai_s8x4_block *w = wp;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        __m256i s[4];
#ifdef PAIRS_I32
        for (int r = 0; r < 4; r++) s[r] = _mm256_set1_epi32(-128 * w[b].qsum[r]);
        for (int j = 0; j < 8; j++) {
            const __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)a[b].qs[j]), _mm256_set1_epi8((char)0x80));
            for (int r = 0; r < 4; r++) {
                int32_t q4;
                memcpy(&q4, w[b].q[r] + 4 * j, 4);
                s[r] = PAIRS_DOT(s[r], x, _mm256_set1_epi32(q4));
            }
        }
#else
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
#endif
        const __m256 da = _mm256_loadu_ps(a[b].d);
        for (int r = 0; r < 4; r++)
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_broadcast_ss(&w[b].d[r]), da), _mm256_cvtepi32_ps(s[r]), acc[r]);
    }
    for (int r = 0; r < 4; r++) _mm256_storeu_ps(out[r], acc[r]);
}

// ------------------------------------------------------------------------------- K types · q8_K
// A 256-block's sub-blocks (32 elements for q4_K/q5_K, 16 for q2_K/q3_K/q6_K) each have a small integer
// scale sc_s; the elements are unsigned bytes u (offsets and mins come off through the activation's
// per-16 sums, bsums). maddubs sums pairs of products u·y in i16; PAIRS_SCALED folds sc_s into their
// widening to i32, so a block accumulates exactly in i32:
//   with a min per sub-block (q2_K, q4_K, q5_K):  d·dy · Σ_s sc_s Σ u·y  −  dmin·dy · Σ_s m_s Σ y
//   with an offset o (q3_K: 4, q6_K: 32):        d·dy · (Σ_s sc_s Σ u·y  −  o Σ_s sc_s Σ y)

// Each sub-block's scale spread over the i16 lanes of its products: sc holds 8 scales as i16, in both
// 128-bit lanes. 32-element sub-blocks (q4_K/q5_K): scale j in every lane. 16-element ones: the products
// of a group of 32 elements hold sub-block 2k in the low 128 bits and 2k+1 in the high 128 bits.
#define K_SPREAD32(sc, j) _mm256_shuffle_epi8((sc), _mm256_set1_epi16((short)(0x0202 * (j) + 0x0100)))
#define K_SPREAD16(sc, k) _mm256_shuffle_epi8((sc), _mm256_set_m128i(_mm_set1_epi16((short)(0x0202 * (2 * (k) + 1) + 0x0100)), \
                                                                     _mm_set1_epi16((short)(0x0202 * (2 * (k)) + 0x0100))))

// The 16-element types: Σ_s sc_s Σ u·y over one 128-element half, whose 4 groups of 32 elements are g[k]
// (sub-blocks 8h + 2k, 8h + 2k + 1) against y[32k ..]. s16: the block's 16 scales as i16.
KERNEL_ISA static inline __m256i KERNEL(k16_half)(__m256i isum, const __m256i g[4], __m256i s16, int h, const int8_t *y) {
    const __m256i sc = h ? _mm256_permute2x128_si256(s16, s16, 0x11) : _mm256_permute2x128_si256(s16, s16, 0x00);
    for (int k = 0; k < 4; k++) {
        const __m256i p = _mm256_maddubs_epi16(g[k], _mm256_loadu_si256((const __m256i *)(y + 32 * k)));
        isum = PAIRS_SCALED(isum, p, K_SPREAD16(sc, k));
    }
    return isum;
}

// ---- the types with mins: a block's exact integer sums (the dots below take their float steps)

// q4_K/q5_K: 8 sub-blocks of 32, 6-bit scales and mins. q5_K's fifth bit comes from qh: bit 2j of qh[l]
// tops element l of sub-block 2j (the low nibbles), bit 2j+1 that of 2j+1; qh NULL (q4_K) compiles it away.
// u ≤ 31: |pair| ≤ 2·31·127 fits i16.
KERNEL_ISA static inline void KERNEL(k4_block)(const uint8_t scales[12], const uint8_t *q, const uint8_t *qh,
                                               const block_q8_K *y, __m256i *isum_out, __m128i *msum_out) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    const __m256i sm = k4_scales_mins(scales);
    const __m256i sc = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));   // sc[0..7] in both halves
    const __m256i hbits = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    __m256i isum = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {   // 64 elements: 32 low nibbles (sub-block 2j), 32 high (2j+1)
        const __m256i qb = _mm256_loadu_si256((const __m256i *)(q + 32 * j));
        __m256i lo = _mm256_and_si256(qb, low4), hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), low4);
        if (qh) {   // bits 2j, 2j+1 shifted straight to bit 4 (16-bit shifts: what crosses bytes is masked off)
            lo = _mm256_or_si256(lo, _mm256_and_si256(j <= 2 ? _mm256_slli_epi16(hbits, 4 - 2 * j) : _mm256_srli_epi16(hbits, 2 * j - 4), bit4));
            hi = _mm256_or_si256(hi, _mm256_and_si256(j <= 1 ? _mm256_slli_epi16(hbits, 3 - 2 * j) : _mm256_srli_epi16(hbits, 2 * j - 3), bit4));
        }
        const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(y->qs + 64 * j)));
        const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y->qs + 64 * j + 32)));
        isum = PAIRS_SCALED(isum, plo, K_SPREAD32(sc, 2 * j));
        isum = PAIRS_SCALED(isum, phi, K_SPREAD32(sc, 2 * j + 1));
    }
    // Σ_s m_s (bsums[2s] + bsums[2s+1]): the 16 sums added pairwise (|pair| ≤ 32·128), times m
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    *isum_out = isum;
    *msum_out = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), pairs);
}

// q2_K: 16 sub-blocks of 16, a 4-bit scale (low nibble) and a 4-bit min (high) each; in each half,
// group k is bits 2k..2k+1 of qs[32h + l]. u ≤ 3.
KERNEL_ISA static inline void KERNEL(q2_K_sums)(const void *blk, const block_q8_K *y, __m256i *isum, __m128i *msum) {
    const block_q2_K *x = blk;
    const __m128i raw = _mm_loadu_si128((const __m128i *)x->scales), low4 = _mm_set1_epi8(0x0f);
    const __m256i s16 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, low4));
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), low4));
    const __m256i three = _mm256_set1_epi8(3);
    __m256i sum = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * h));
        const __m256i g[4] = {_mm256_and_si256(q, three), _mm256_and_si256(_mm256_srli_epi16(q, 2), three),
                              _mm256_and_si256(_mm256_srli_epi16(q, 4), three), _mm256_and_si256(_mm256_srli_epi16(q, 6), three)};
        sum = KERNEL(k16_half)(sum, g, s16, h, y->qs + 128 * h);
    }
    const __m256i mins = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), m16);   // Σ_s m_s Σ y, by pairs
    *isum = sum;
    *msum = _mm_add_epi32(_mm256_castsi256_si128(mins), _mm256_extracti128_si256(mins, 1));
}


// ---- q4_K and q5_K: four rows at once, through 8-byte words
// Generation reads four rows per step. A row at a time, every 32-element sub-block needs its scale
// spread over the products, a madd and an add: 24 of the ~70 vector operations of a block.
// Transposing the four rows' 32-byte chunks by 8-byte words puts the same 16 elements of the four rows in
// one vector (row r in word r). Against the activation's 8 bytes broadcast, maddubs then gives each row's
// products in its own quarter, four such words add up in i16 (4 · 2·31·128 < 2^15), and one madd by a
// vector holding each row's scale in its quarter scales a sub-block of all four rows. The block's sums of
// the four rows meet in one vector, so converting and scaling them is one operation for four rows too.
// Per block and row this is ~45 vector operations where k4_block takes ~70, and the scales are decoded
// in SIMD, two rows at a time. On Zen 3 (ab.sh, weights in L2, one thread) the four-row dot takes 0.74 of
// the time of four k4_block rows for q4_K, 0.79 for q5_K.
// Both dots reduce a row's block to exact integers (Σ sc·Σu·y, Σ m·Σy), then per row and block in float:
// acc += Σ·(d·dy), accm += Σm·(dmin·dy), the result acc − accm: the one-row dot does the same operations
// in the same order, so a row gets the same result from either.

// Two rows' packed scales and mins decoded as bonsai_k4_scale_words does, in SIMD: in each 128-bit half, one
// row's (sc0-3, sc4-7, m0-3, m4-7). Reads 16 bytes at each row's 12 (the block goes on past them). In
// scalar words, four rows' decoding took a fifth of the four-row dot's instructions.
KERNEL_ISA static inline __m256i KERNEL(k4_scale_words2)(const char *s0, const char *s1) {
    const __m256i u = _mm256_loadu2_m128i((const __m128i *)s1, (const __m128i *)s0);   // words u0 u1 u2 per half
    const __m256i low = _mm256_and_si256(   // (u0, u2, u1, u2 >> 4) & (6, 4, 6, 4 bits a byte)
        _mm256_srlv_epi32(_mm256_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0)), _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4)),
        _mm256_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    const __m256i high = _mm256_and_si256(   // bits 6, 7 of u0's (u1's) bytes to bits 4, 5 of words 1 (3)
        _mm256_srli_epi32(_mm256_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0)), 2),
        _mm256_setr_epi32(0, 0x30303030, 0, 0x30303030, 0, 0x30303030, 0, 0x30303030));
    return _mm256_or_si256(low, high);
}

// Sub-block s's scale of each row in the i16 lanes of that row's quarter (rows 0, 1 low half, 2, 3 high
// half), from the four rows' scales of sub-blocks 0-3 (sc4[0]) or 4-7 (sc4[1]), byte 4(s mod 4) + r there.
#define K4_ROW_SCALES(sc4, s)                                                                                      \
    _mm256_shuffle_epi8(_mm256_broadcastsi128_si256((sc4)[(s) / 4]),                                              \
                        _mm256_setr_epi8(4 * ((s) % 4), -1, 4 * ((s) % 4), -1, 4 * ((s) % 4), -1, 4 * ((s) % 4), -1, \
                                         4 * ((s) % 4) + 1, -1, 4 * ((s) % 4) + 1, -1, 4 * ((s) % 4) + 1, -1, 4 * ((s) % 4) + 1, -1, \
                                         4 * ((s) % 4) + 2, -1, 4 * ((s) % 4) + 2, -1, 4 * ((s) % 4) + 2, -1, 4 * ((s) % 4) + 2, -1, \
                                         4 * ((s) % 4) + 3, -1, 4 * ((s) % 4) + 3, -1, 4 * ((s) % 4) + 3, -1, 4 * ((s) % 4) + 3, -1))

// 8-byte word k of four 32-byte vectors, one vector per k: out[k] = (q0.k, q1.k | q2.k, q3.k).
KERNEL_ISA static inline void KERNEL(words4)(const __m256i q[4], __m256i out[4]) {
    const __m256i t0 = _mm256_unpacklo_epi64(q[0], q[1]), t1 = _mm256_unpackhi_epi64(q[0], q[1]);
    const __m256i t2 = _mm256_unpacklo_epi64(q[2], q[3]), t3 = _mm256_unpackhi_epi64(q[2], q[3]);
    out[0] = _mm256_permute2x128_si256(t0, t2, 0x20);
    out[1] = _mm256_permute2x128_si256(t1, t3, 0x20);
    out[2] = _mm256_permute2x128_si256(t0, t2, 0x31);
    out[3] = _mm256_permute2x128_si256(t1, t3, 0x31);
}

// Four rows, w_stride bytes apart. qh_off ≥ 0 (q5_K): each block's qh, as k4_block reads it.
KERNEL_ISA static inline __attribute__((always_inline)) void KERNEL(dot4_k4)(
        int64_t n, const void *w, size_t w_stride, size_t block_bytes, long qh_off, const void *a, float out[4]) {
    const block_q8_K *y = a;
    const size_t sc_off = offsetof(block_q4_K, scales), qs_off = qh_off >= 0 ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const char *b[4];
        uint32_t dm[4];   // per row: d and dmin (f16, the block's first 4 bytes)
        for (int r = 0; r < 4; r++) {
            b[r] = (const char *)w + (size_t)r * w_stride + (size_t)i * block_bytes;
            prefetch_block(b[r], block_bytes);
            memcpy(&dm[r], b[r], 4);
        }
        const __m256i w01 = KERNEL(k4_scale_words2)(b[0] + sc_off, b[1] + sc_off);
        const __m256i w23 = KERNEL(k4_scale_words2)(b[2] + sc_off, b[3] + sc_off);
        __m128i sc4[2];   // the scales as bytes 4s + r: sub-blocks 0-3, 4-7
        {
            const __m128i a = _mm_unpacklo_epi8(_mm256_castsi256_si128(w01), _mm256_extracti128_si256(w01, 1));
            const __m128i c = _mm_unpacklo_epi8(_mm256_castsi256_si128(w23), _mm256_extracti128_si256(w23, 1));
            sc4[0] = _mm_unpacklo_epi16(a, c);
            sc4[1] = _mm_unpackhi_epi16(a, c);
        }
        __m256i hw[4];   // q5_K: word k of each row's qh
        if (qh_off >= 0) {
            __m256i h[4];
            for (int r = 0; r < 4; r++) h[r] = _mm256_loadu_si256((const __m256i *)(b[r] + qh_off));
            KERNEL(words4)(h, hw);
        }
        __m256i isum = _mm256_setzero_si256();
#pragma clang loop unroll(full)
        for (int j = 0; j < 4; j++) {   // 64 elements: sub-block 2j (low nibbles), 2j + 1 (high)
            __m256i q[4], v[4];
            for (int r = 0; r < 4; r++) q[r] = _mm256_loadu_si256((const __m256i *)(b[r] + qs_off + 32 * j));
            KERNEL(words4)(q, v);
            __m256i plo = _mm256_setzero_si256(), phi = _mm256_setzero_si256();
#pragma clang loop unroll(full)
            for (int k = 0; k < 4; k++) {   // elements 8k .. 8k + 7 of both sub-blocks
                __m256i lo = _mm256_and_si256(v[k], low4), hi = _mm256_and_si256(_mm256_srli_epi16(v[k], 4), low4);
                if (qh_off >= 0) {   // bits 2j, 2j+1 of qh to bit 4, as k4_block
                    lo = _mm256_or_si256(lo, _mm256_and_si256(j <= 2 ? _mm256_slli_epi16(hw[k], 4 - 2 * j) : _mm256_srli_epi16(hw[k], 2 * j - 4), bit4));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(j <= 1 ? _mm256_slli_epi16(hw[k], 3 - 2 * j) : _mm256_srli_epi16(hw[k], 2 * j - 3), bit4));
                }
                int64_t ylo, yhi;
                memcpy(&ylo, y[i].qs + 64 * j + 8 * k, 8);
                memcpy(&yhi, y[i].qs + 64 * j + 32 + 8 * k, 8);
                plo = _mm256_add_epi16(plo, _mm256_maddubs_epi16(lo, _mm256_set1_epi64x(ylo)));
                phi = _mm256_add_epi16(phi, _mm256_maddubs_epi16(hi, _mm256_set1_epi64x(yhi)));
            }
            isum = PAIRS_SCALED(isum, plo, K4_ROW_SCALES(sc4, 2 * j));
            isum = PAIRS_SCALED(isum, phi, K4_ROW_SCALES(sc4, 2 * j + 1));
        }
        // Row r's min sum Σ_s m_s (bsums[2s] + bsums[2s+1]), as k4_block
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const __m256i pairs = _mm256_broadcastsi128_si256(_mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1)));
        // each half's mins (its bytes 8-15) as i16 times the pairs: rows 0 | 1 and 2 | 3, then summed by row
        const __m256i m01 = _mm256_madd_epi16(_mm256_unpackhi_epi8(w01, _mm256_setzero_si256()), pairs);
        const __m256i m23 = _mm256_madd_epi16(_mm256_unpackhi_epi8(w23, _mm256_setzero_si256()), pairs);
        const __m256i mh = _mm256_hadd_epi32(_mm256_hadd_epi32(m01, m23), _mm256_setzero_si256());   // (r0 r2 . . | r1 r3 . .)
        const __m128i msums = _mm_unpacklo_epi32(_mm256_castsi256_si128(mh), _mm256_extracti128_si256(mh, 1));
        kmin_accumulate4(dm, y[i].d, isum, msums, &acc, &accm);
    }
    _mm_storeu_ps(out, _mm_sub_ps(acc, accm));
}

// One row, the same float steps per block as dot4_k4 (its integer sums from k4_block).
KERNEL_ISA static inline __attribute__((always_inline)) float KERNEL(dot_k4)(
        int64_t n, const void *w, size_t block_bytes, long qh_off, const void *a) {
    const block_q8_K *y = a;
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const char *blk = (const char *)w + (size_t)i * block_bytes;
        prefetch_block(blk, block_bytes);
        const block_q4_K *x = (const block_q4_K *)blk;   // d, dmin, scales: where q5_K has them too
        __m256i isum;
        __m128i msum;
        KERNEL(k4_block)(x->scales, qh_off >= 0 ? ((const block_q5_K *)blk)->qs : x->qs,
                         qh_off >= 0 ? (const uint8_t *)blk + qh_off : NULL, &y[i], &isum, &msum);
        uint32_t dm;
        memcpy(&dm, blk, 4);
        kmin_accumulate(dm, y[i].d, hsum_epi32(isum), hsum_epi32_128(msum), &acc, &accm);
    }
    return _mm_cvtss_f32(_mm_sub_ss(acc, accm));
}

KERNEL_ISA static float KERNEL(dot_q4_K_q8_K)(int64_t n, const void *w, const void *a) {
    return KERNEL(dot_k4)(n, w, sizeof(block_q4_K), -1, a);
}
KERNEL_ISA static void KERNEL(dot4_q4_K_q8_K)(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {
    KERNEL(dot4_k4)(n, w, w_stride, sizeof(block_q4_K), -1, a, out);
}
KERNEL_ISA static float KERNEL(dot_q5_K_q8_K)(int64_t n, const void *w, const void *a) {
    return KERNEL(dot_k4)(n, w, sizeof(block_q5_K), (long)offsetof(block_q5_K, qh), a);
}
KERNEL_ISA static void KERNEL(dot4_q5_K_q8_K)(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {
    KERNEL(dot4_k4)(n, w, w_stride, sizeof(block_q5_K), (long)offsetof(block_q5_K, qh), a, out);
}

// ---- q2_K: four rows at once, through 8-byte words, as q4_K
// Row by row, each 16-element sub-block costs a spread of its scale, a madd and an add (k16_half); with
// the four rows' 32-byte chunks transposed by 8-byte words, two words make a sub-block of all four rows
// (row r in quarter r), and one madd by the four rows' scales (K4_ROW_SCALES) scales it. Both dots
// reduce a row's block to exact integers (Σ sc·Σu·y and Σ m·Σy) and take dot4_k4's float steps, so a
// row gets the same result from either.

// One row's Σ_s m_s Σ y by pairs of sub-blocks, 8 i32 lanes (the mins are the scales' high nibbles).
KERNEL_ISA static inline __m256i KERNEL(q2_K_min_pairs)(const block_q2_K *x, __m256i bsums) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)x->scales);
    return _mm256_madd_epi16(bsums, _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f))));
}

KERNEL_ISA static inline __attribute__((always_inline)) void KERNEL(dot4_k2)(
        int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {
    const block_q8_K *y = a;
    const __m256i three = _mm256_set1_epi8(3);
    const __m128i low4 = _mm_set1_epi8(0x0f);
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const block_q2_K *b[4];
        uint32_t dm[4];   // per row: d and dmin (f16)
        for (int r = 0; r < 4; r++) {
            b[r] = (const block_q2_K *)((const char *)w + (size_t)r * w_stride) + i;
            prefetch_block(b[r], sizeof(block_q2_K));
            memcpy(&dm[r], &b[r]->d, 4);
        }
        __m128i sc4[4];   // the scales as bytes 4(s mod 4) + r of sc4[s / 4]
        {
            __m128i s[4];
            for (int r = 0; r < 4; r++) s[r] = _mm_and_si128(_mm_loadu_si128((const __m128i *)b[r]->scales), low4);
            const __m128i a0 = _mm_unpacklo_epi8(s[0], s[1]), a1 = _mm_unpackhi_epi8(s[0], s[1]);
            const __m128i c0 = _mm_unpacklo_epi8(s[2], s[3]), c1 = _mm_unpackhi_epi8(s[2], s[3]);
            sc4[0] = _mm_unpacklo_epi16(a0, c0);
            sc4[1] = _mm_unpackhi_epi16(a0, c0);
            sc4[2] = _mm_unpacklo_epi16(a1, c1);
            sc4[3] = _mm_unpackhi_epi16(a1, c1);
        }
        __m256i isum = _mm256_setzero_si256();
#pragma clang loop unroll(full)
        for (int h = 0; h < 2; h++) {   // 128 elements: group k is bits 2k, 2k+1 of qs[32h + l]
            __m256i q[4], v[4];
            for (int r = 0; r < 4; r++) q[r] = _mm256_loadu_si256((const __m256i *)(b[r]->qs + 32 * h));
            KERNEL(words4)(q, v);   // v[j]: bytes 8j .. 8j + 7 of each row: elements l = 8j .. of every group
#pragma clang loop unroll(full)
            for (int k = 0; k < 4; k++) {   // sub-blocks 8h + 2k (l < 16: words 0, 1) and 8h + 2k + 1 (words 2, 3)
                __m256i p[2];
                for (int half = 0; half < 2; half++) {
                    p[half] = _mm256_setzero_si256();
                    for (int j = 2 * half; j < 2 * half + 2; j++) {
                        int64_t y8;
                        memcpy(&y8, y[i].qs + 128 * h + 32 * k + 8 * j, 8);
                        const __m256i u = _mm256_and_si256(_mm256_srli_epi16(v[j], 2 * k), three);
                        p[half] = _mm256_add_epi16(p[half], _mm256_maddubs_epi16(u, _mm256_set1_epi64x(y8)));
                    }
                }
                isum = PAIRS_SCALED(isum, p[0], K4_ROW_SCALES(sc4, 8 * h + 2 * k));
                isum = PAIRS_SCALED(isum, p[1], K4_ROW_SCALES(sc4, 8 * h + 2 * k + 1));
            }
        }
        __m256i m[4];   // the four rows' min sums by pairs, then summed by row: (r0 r1 r2 r3) in exact i32
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        for (int r = 0; r < 4; r++) m[r] = KERNEL(q2_K_min_pairs)(b[r], bs);
        const __m256i mh = _mm256_hadd_epi32(_mm256_hadd_epi32(m[0], m[1]), _mm256_hadd_epi32(m[2], m[3]));
        const __m128i msums = _mm_add_epi32(_mm256_castsi256_si128(mh), _mm256_extracti128_si256(mh, 1));
        kmin_accumulate4(dm, y[i].d, isum, msums, &acc, &accm);
    }
    _mm_storeu_ps(out, _mm_sub_ps(acc, accm));
}

// One row: q2_K_sums' integer sums reduced exactly, then dot4_k2's float steps.
KERNEL_ISA static float KERNEL(dot_q2_K_q8_K)(int64_t n, const void *w, const void *a) {
    const block_q8_K *y = a;
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const block_q2_K *x = (const block_q2_K *)w + i;
        prefetch_block(x, sizeof(block_q2_K));
        __m256i isum;
        __m128i msum;
        KERNEL(q2_K_sums)(x, &y[i], &isum, &msum);
        uint32_t dm;
        memcpy(&dm, &x->d, 4);
        kmin_accumulate(dm, y[i].d, hsum_epi32(isum), hsum_epi32_128(msum), &acc, &accm);
    }
    return _mm_cvtss_f32(_mm_sub_ss(acc, accm));
}
KERNEL_ISA static void KERNEL(dot4_q2_K_q8_K)(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {
    KERNEL(dot4_k2)(n, w, w_stride, a, out);
}

// ---- the types with an offset: a block's sums as one i32 vector, then step, dot and four-row dot

// q3_K: u = the 2 low bits (bits 2k..2k+1 of qs[32h + l]) | 4 · the high bit (bit 4h + k of hmask[l]);
// w = d·(sc − 32)·(u − 4), with sixteen 6-bit scales packed in 12 bytes. u ≤ 7.
KERNEL_ISA static inline __m256i KERNEL(q3_K_sums)(const void *blk, const block_q8_K *y) {
    const block_q3_K *x = blk;
    int8_t sc[16];
    bonsai_q3_K_scales(x->scales, sc);
    const __m256i s16 = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc)), _mm256_set1_epi16(32));
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    const __m256i hm = _mm256_loadu_si256((const __m256i *)x->hmask);
    __m256i sum = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * h));
        __m256i g[4];
        for (int k = 0; k < 4; k++) {
            const int bit = 4 * h + k;   // moved to bit 2 (16-bit shifts: what crosses bytes is masked off)
            const __m256i high = bit >= 2 ? _mm256_srli_epi16(hm, bit - 2) : _mm256_slli_epi16(hm, 2 - bit);
            g[k] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * k), three), _mm256_and_si256(high, four));
        }
        sum = KERNEL(k16_half)(sum, g, s16, h, y->qs + 128 * h);
    }
    const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), s16), 2);   // 4 Σ sc·Σy
    return _mm256_sub_epi32(sum, corr);
}

// q6_K: in each half, the low 4 bits of group k come from ql (bytes 64h .. 64h + 63, low or high nibble)
// and the top 2 from qh (bits 2k, 2k + 1 of qh[32h + l]); w = d·sc·(u − 32), int8 scales. u ≤ 63.
KERNEL_ISA static inline __m256i KERNEL(q6_K_sums)(const void *blk, const block_q8_K *y) {
    const block_q6_K *x = blk;
    const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
    const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    __m256i sum = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h));
        const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32));
        const __m256i hb = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
        // the two high bits of group k sit at bits 2k, 2k+1 of hb's bytes: shifted to bits 4, 5
        // (16-bit shifts: whatever crosses between bytes is masked off)
        const __m256i g[4] = {
            _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), bits45)),
            _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), bits45)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(hb, bits45)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits45))};
        sum = KERNEL(k16_half)(sum, g, s16, h, y->qs + 128 * h);
    }
    const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), s16), 5);   // 32 Σ sc·Σy
    return _mm256_sub_epi32(sum, corr);
}

KERNEL_ISA static inline __attribute__((always_inline)) __m256 KERNEL(koff_step)(
        __m256 acc, const char *blk, size_t block_bytes, size_t d_off, __m256i (*block_sums)(const void *, const block_q8_K *),
        const block_q8_K *y) {
    prefetch_block(blk, block_bytes);
    uint16_t d;
    memcpy(&d, blk + d_off, 2);
    return _mm256_fmadd_ps(_mm256_set1_ps(h2f(d) * y->d), _mm256_cvtepi32_ps(block_sums(blk, y)), acc);
}

KERNEL_ISA static inline __attribute__((always_inline)) float KERNEL(dot_koff)(
        int64_t n, const void *w, size_t block_bytes, size_t d_off, __m256i (*block_sums)(const void *, const block_q8_K *),
        const void *a) {
    const block_q8_K *y = a;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / BONSAI_QKK; i++)
        acc = KERNEL(koff_step)(acc, (const char *)w + i * block_bytes, block_bytes, d_off, block_sums, &y[i]);
    return hsum_ps(acc);
}

KERNEL_ISA static inline __attribute__((always_inline)) void KERNEL(dot4_koff)(
        int64_t n, const void *w, size_t w_stride, size_t block_bytes, size_t d_off,
        __m256i (*block_sums)(const void *, const block_q8_K *), const void *a, float out[4]) {
    const block_q8_K *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / BONSAI_QKK; i++)
#ifdef KERNEL_REGS32   // with 32 vector registers the four rows' steps unroll and their sums stay in registers
                       // (Zen 4: q6_K, q3_K 7-11% faster); with 16 the loop stays rolled
#pragma clang loop unroll(full)
#endif
        for (int r = 0; r < 4; r++)
            acc[r] = KERNEL(koff_step)(acc[r], (const char *)w + (size_t)r * w_stride + i * block_bytes, block_bytes, d_off, block_sums, &y[i]);
    for (int r = 0; r < 4; r++) out[r] = hsum_ps(acc[r]);
}

// Each K type's dot and four-row dot.
#define K_DOTS(type, family, sums)                                                                                  \
    KERNEL_ISA static float KERNEL(dot_##type##_q8_K)(int64_t n, const void *w, const void *a) {                     \
        return KERNEL(dot_##family)(n, w, sizeof(block_##type), offsetof(block_##type, d), KERNEL(sums), a);         \
    }                                                                                                               \
    KERNEL_ISA static void KERNEL(dot4_##type##_q8_K)(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) { \
        KERNEL(dot4_##family)(n, w, w_stride, sizeof(block_##type), offsetof(block_##type, d), KERNEL(sums), a, out); \
    }
K_DOTS(q3_K, koff, q3_K_sums)
K_DOTS(q6_K, koff, q6_K_sums)

// iq4_xs: 8 sub-blocks of 32 signed levels, each with a scale −32 … 31; no offset. Two sub-blocks at a
// time: one 32-byte load holds both's nibbles (sub-block 2k in the low 128 bits, 2k+1 in the high), so
// the low nibbles are elements 0..15 of each and the high nibbles 16..31, against the activation's
// halves gathered the same way (yl, yh: two lane permutes). |pair| ≤ 2·127·127 fits i16.
KERNEL_ISA static inline __m256i KERNEL(iq4_xs_pair)(__m256i sum, const uint8_t qs[32], __m256i table, __m256i yl,
                                                    __m256i yh, __m256i scale) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), q = _mm256_loadu_si256((const __m256i *)qs);
    const __m256i wl = _mm256_shuffle_epi8(table, _mm256_and_si256(q, low4));
    const __m256i wh = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(q, 4), low4));
    sum = PAIRS_SCALED(sum, _mm256_maddubs_epi16(_mm256_sign_epi8(wl, wl), _mm256_sign_epi8(yl, wl)), scale);
    return PAIRS_SCALED(sum, _mm256_maddubs_epi16(_mm256_sign_epi8(wh, wh), _mm256_sign_epi8(yh, wh)), scale);
}

KERNEL_ISA static inline void KERNEL(iq4_xs_halves)(const block_q8_K *y, int k, __m256i *yl, __m256i *yh) {
    const __m256i ya = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * k));
    const __m256i yb = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * k + 32));
    *yl = _mm256_permute2x128_si256(ya, yb, 0x20);
    *yh = _mm256_permute2x128_si256(ya, yb, 0x31);
}

KERNEL_ISA static inline __m256i KERNEL(iq4_xs_sums)(const void *blk, const block_q8_K *y) {
    const block_iq4_xs *x = blk;
    const __m256i sc = iq4_xs_scales(x), table = iq4_table();
    __m256i sum = _mm256_setzero_si256(), yl, yh;
    for (int k = 0; k < 4; k++) {
        KERNEL(iq4_xs_halves)(y, k, &yl, &yh);
        sum = KERNEL(iq4_xs_pair)(sum, x->qs + 32 * k, table, yl, yh, K_SPREAD16(sc, k));
    }
    return sum;
}

// iq4_xs's one-row dot is a K type's (koff); its four-row dot gathers each pair of sub-blocks' activation
// halves once for the four rows, with the same integer sums and float steps as the one-row dot.
KERNEL_ISA static float KERNEL(dot_iq4_xs_q8_K)(int64_t n, const void *w, const void *a) {
    return KERNEL(dot_koff)(n, w, sizeof(block_iq4_xs), offsetof(block_iq4_xs, d), KERNEL(iq4_xs_sums), a);
}

KERNEL_ISA static void KERNEL(dot4_iq4_xs_q8_K)(int64_t n, const void *w, size_t w_stride, const void *a, float out[4]) {
    const block_q8_K *y = a;
    const __m256i table = iq4_table();
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / BONSAI_QKK; i++) {
        const block_iq4_xs *x[4];
        __m256i sc[4], sum[4], yl, yh;
        for (int r = 0; r < 4; r++) {
            x[r] = (const block_iq4_xs *)((const char *)w + (size_t)r * w_stride) + i;
            prefetch_block(x[r], sizeof(block_iq4_xs));
            sc[r] = iq4_xs_scales(x[r]);
            sum[r] = _mm256_setzero_si256();
        }
        for (int k = 0; k < 4; k++) {
            KERNEL(iq4_xs_halves)(&y[i], k, &yl, &yh);
            for (int r = 0; r < 4; r++) sum[r] = KERNEL(iq4_xs_pair)(sum[r], x[r]->qs + 32 * k, table, yl, yh, K_SPREAD16(sc[r], k));
        }
        for (int r = 0; r < 4; r++) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[r]->d) * y[i].d), _mm256_cvtepi32_ps(sum[r]), acc[r]);
    }
    for (int r = 0; r < 4; r++) out[r] = hsum_ps(acc[r]);
}

// This level's kernels into the dispatch tables (cpu.c).
static void KERNEL(register_int8)(bonsai_vec_dot_fn dot[BONSAI_TYPE_COUNT], bonsai_vec_dot4_fn dot4[BONSAI_TYPE_COUNT],
                                  bonsai_gemm4x4_fn gemm4x4[BONSAI_TYPE_COUNT],
                                  bonsai_gemm_unpacked_fn gemm[BONSAI_UNPACKED_KINDS]) {
    dot[BONSAI_TYPE_Q4_0] = KERNEL(dot_q4_0_act8);
    dot4[BONSAI_TYPE_Q4_0] = KERNEL(dot4_q4_0_act8);
    dot[BONSAI_TYPE_Q5_0] = KERNEL(dot_q5_0_act8);
    dot4[BONSAI_TYPE_Q5_0] = KERNEL(dot4_q5_0_act8);
    dot[BONSAI_TYPE_Q4_1] = KERNEL(dot_q4_1_act8);
    dot4[BONSAI_TYPE_Q4_1] = KERNEL(dot4_q4_1_act8);
    dot[BONSAI_TYPE_Q5_1] = KERNEL(dot_q5_1_act8);
    dot4[BONSAI_TYPE_Q5_1] = KERNEL(dot4_q5_1_act8);
    dot[BONSAI_TYPE_Q8_0] = KERNEL(dot_q8_0_q8_0);
    dot4[BONSAI_TYPE_Q8_0] = KERNEL(dot4_q8_0_q8_0);
    dot[BONSAI_TYPE_IQ4_NL] = KERNEL(dot_iq4_nl_act8);
    dot4[BONSAI_TYPE_IQ4_NL] = KERNEL(dot4_iq4_nl_act8);
    gemm4x4[BONSAI_TYPE_Q8_0] = KERNEL(gemm4x4_q8_0);
#define K_REGISTER(type, TYPE) dot[BONSAI_TYPE_##TYPE] = KERNEL(dot_##type##_q8_K), dot4[BONSAI_TYPE_##TYPE] = KERNEL(dot4_##type##_q8_K)
    K_REGISTER(q2_K, Q2_K);
    K_REGISTER(q3_K, Q3_K);
    K_REGISTER(q4_K, Q4_K);
    K_REGISTER(q5_K, Q5_K);
    K_REGISTER(q6_K, Q6_K);
    K_REGISTER(iq4_xs, IQ4_XS);
#undef K_REGISTER
    gemm[BONSAI_UNPACKED_U8] = KERNEL(gemm_u8);
    gemm[BONSAI_UNPACKED_U8_HALVES] = KERNEL(gemm_u8h);
    gemm[BONSAI_UNPACKED_S8] = KERNEL(gemm_s8);
#ifdef PAIRS_I32
    bonsai_s8_unpack_extras = BONSAI_S8_SUMS;
#else
    bonsai_s8_unpack_extras = BONSAI_S8_MAGNITUDES;
#endif
}

#undef KERNEL_ISA
#undef KERNEL
#undef PAIRS_ADD
#undef PAIRS_WIDEN
#undef PAIRS_DOT
#undef PAIRS_I32
#undef PAIRS_SCALED
#undef K_SPREAD32
#undef K_SPREAD16
#undef K4_ROW_SCALES
#undef K_DOTS
#undef KERNEL_REGS32
#undef X0_DOTS
