// half.h — internal: f16 → f32, exact, inlined into the loops that convert a scale per block (the
// unpacker, the activation layouts); bonsai_f16_to_f32 is the same function behind the C API.
#ifndef BONSAI_HALF_H
#define BONSAI_HALF_H

#include <stdint.h>
#include <string.h>

static inline float bonsai_half(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {                       // inf / nan
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {                   // normal
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {                  // zero
        bits = sign;
    } else {                                 // subnormal: value = mant * 2^-24
        const float f = (float)mant * 5.9604644775390625e-08f;
        memcpy(&bits, &f, 4);
        bits |= sign;
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

#endif
