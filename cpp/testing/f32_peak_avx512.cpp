// AVX-512 version of the peak probe (see f32_peak_avx2.cpp).
#include <immintrin.h>

#include <cstdint>

namespace pyrt {

// Performs iters * 24 * 16 * 2 floating-point operations: 24 independent FMA chains,
// three times the 8 that two FMA ports with 4-cycle latency need. The loops are fully
// unrolled so the chains live in zmm registers: without the pragmas GCC 12 kept the
// array in memory and the probe measured store forwarding, half the FMA peak.
float f32_peak_fma__avx512(int64_t iters) {
  __m512 a[24];
#pragma GCC unroll 24
  for (int i = 0; i < 24; ++i) a[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
#pragma GCC unroll 24
  for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

}  // namespace pyrt
