// kscales.h — internal: how the K types pack their sub-block scales (ggml's layout). One decoding for the
// reference dequantizers (quants.c), the int8 dot kernels (matmul_avx2.c) and the unpacker (unpacked.c).
#ifndef BONSAI_KSCALES_H
#define BONSAI_KSCALES_H

#include <stdint.h>
#include <string.h>

// q4_K/q5_K: eight 6-bit (scale, min) pairs in 12 bytes.
static inline void bonsai_k4_scales(const uint8_t q[12], uint8_t sc[8], uint8_t m[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = q[j] & 63;
        m[j] = q[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        m[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
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
