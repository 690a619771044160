// kscales.h — internal: how the K types pack their sub-block scales (ggml's layout). One decoding for the
// reference dequantizers (quants.c), the int8 dot kernels (matmul_avx2.c, matmul_neon.c) and the unpacker
// (unpacked.c).
#ifndef BONSAI_KSCALES_H
#define BONSAI_KSCALES_H

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kscales.h decodes the packed scales as little-endian words"
#endif

// q4_K/q5_K: eight 6-bit (scale, min) pairs in 12 bytes. Scales 0..3 and mins 0..3 are the low 6 bits of
// bytes 0..3 and 4..7; scales 4..7 take their low 4 bits from bytes 8..11 and their top 2 from bits 6..7
// of bytes 0..3, mins 4..7 the high nibbles of bytes 8..11 and bits 6..7 of bytes 4..7. Decoded four
// bytes at a time (as the q3_K decoder below, on little-endian words): w = the bytes of sc[0..3],
// sc[4..7], m[0..3], m[4..7] — which the AVX2 dot loads into one vector as they are.
static inline void bonsai_k4_scale_words(const uint8_t q[12], uint32_t w[4]) {
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t u[3];
    memcpy(u, q, 12);
    w[0] = u[0] & m6;
    w[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    w[2] = u[1] & m6;
    w[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
}

static inline void bonsai_k4_scales(const uint8_t q[12], uint8_t sc[8], uint8_t m[8]) {
    uint32_t w[4];
    bonsai_k4_scale_words(q, w);
    memcpy(sc, w, 8);
    memcpy(m, w + 2, 8);
}

// q3_K: sixteen 6-bit scales in 12 bytes (low 4 bits in bytes 0..7, high 2 bits in bytes 8..11), biased:
// sub-block j's scale is out[j] − 32.
static inline void bonsai_q3_K_scales(const uint8_t s[12], int8_t out[16]) {
    const uint32_t m2 = 0x03030303, m4 = 0x0f0f0f0f;
    uint32_t aux[4];
    memcpy(aux, s, 12);
    const uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & m4) | (((tmp >> 4) & m2) << 4);
    aux[3] = ((aux[1] >> 4) & m4) | (((tmp >> 6) & m2) << 4);
    aux[0] = (aux[0] & m4) | (((tmp >> 0) & m2) << 4);
    aux[1] = (aux[1] & m4) | (((tmp >> 2) & m2) << 4);
    memcpy(out, aux, 16);
}

#endif
