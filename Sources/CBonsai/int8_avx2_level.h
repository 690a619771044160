// int8_avx2_level.h — internal: int8_x86.h's level macros for AVX2 (what int8_x86.h asks its includer
// for, except KERNEL(name)). AVX2 sums u8 × s8 products by pairs in i16 (maddubs), which stays exact within
// each kernel's bound, and widens them to i32 (madd with ones); VNNI does both in one instruction
// (matmul_vnni.c). Included before each inclusion of int8_x86.h, which undefines them at its end:
// matmul_avx2.c once, benchmarks/kernels/ab.c once per version it times.
#define KERNEL_ISA AVX2
#define PAIRS_ADD(p, u, s) _mm256_add_epi16((p), _mm256_maddubs_epi16((u), (s)))
#define PAIRS_WIDEN(acc, p) _mm256_add_epi32((acc), _mm256_madd_epi16((p), _mm256_set1_epi16(1)))
#define PAIRS_DOT(acc, u, s) PAIRS_WIDEN((acc), _mm256_maddubs_epi16((u), (s)))
#define PAIRS_SCALED(acc, p, s) _mm256_add_epi32((acc), _mm256_madd_epi16((p), (s)))
