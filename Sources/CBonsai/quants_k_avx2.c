// quants_k_avx2.c — the K quantizers' lane searches (quants_k_lanes.h) compiled for AVX2: the 8 lanes in
// one register where the baseline build uses two SSE2 halves. cpu.c chooses these where the CPU has AVX2;
// the bytes are the same either way (the same IEEE operations, no FMA: contraction is off, as in quants_k.c).
#pragma STDC FP_CONTRACT OFF

#include "bonsai.h"
#include "simd.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#define LANES_NAME(name) name##_avx2
#include "quants_k_lanes.h"
#pragma clang attribute pop
#endif
