// A peak-throughput probe for bench/: independent FMA chains that keep both FMA pipes
// busy, so bench can report kernels as a fraction of this machine's measured peak.
#include <immintrin.h>

#include <cstdint>

namespace pyrt {

// Returns a value derived from the accumulators so the loop cannot be removed.
// Performs iters * 12 * 8 * 2 floating-point operations.
float f32_peak_fma__avx2(int64_t iters) {
  __m256 a[12];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
#pragma GCC unroll 12  // keeps the chains in registers (see f32_peak_avx512.cpp)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  __m256 s = a[0];
#pragma GCC unroll 12
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

}  // namespace pyrt
