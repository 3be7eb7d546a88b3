// Probes for bench/: the peak FMA rate (independent FMA chains that keep every FMA pipe
// busy) and the memory read rate, so bench can report kernels against bounds measured
// on the machine.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace pyrt {

// 12 named accumulators (of 16 ymm registers; 2 hold the constants), enough for 2 FMA
// pipes x 4-5 cycles of latency. Returns a value derived from them so the loop stays.
// Performs iters * 12 * 8 * 2 floating-point operations.
float f32_peak_fma__avx2(int64_t iters) {
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
#define PYRT_ACC(i) __m256 a##i = _mm256_set1_ps(0.001f * (i));
  PYRT_ACC(0) PYRT_ACC(1) PYRT_ACC(2) PYRT_ACC(3) PYRT_ACC(4) PYRT_ACC(5)
  PYRT_ACC(6) PYRT_ACC(7) PYRT_ACC(8) PYRT_ACC(9) PYRT_ACC(10) PYRT_ACC(11)
#undef PYRT_ACC
  for (int64_t it = 0; it < iters; ++it) {
#define PYRT_FMA(i) a##i = _mm256_fmadd_ps(a##i, m, c);
    PYRT_FMA(0) PYRT_FMA(1) PYRT_FMA(2) PYRT_FMA(3) PYRT_FMA(4) PYRT_FMA(5)
    PYRT_FMA(6) PYRT_FMA(7) PYRT_FMA(8) PYRT_FMA(9) PYRT_FMA(10) PYRT_FMA(11)
#undef PYRT_FMA
  }
  const __m256 s = _mm256_add_ps(
      _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                    _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7))),
      _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

// Sums n floats (n a multiple of 64) with 8 independent accumulators: a read stream
// with nothing else in the way, the most a kernel reading that memory could get.
float f32_read_sum__avx2(const float* p, ptrdiff_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
  for (ptrdiff_t i = 0; i < n; i += 64) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + i + 24));
    s4 = _mm256_add_ps(s4, _mm256_loadu_ps(p + i + 32));
    s5 = _mm256_add_ps(s5, _mm256_loadu_ps(p + i + 40));
    s6 = _mm256_add_ps(s6, _mm256_loadu_ps(p + i + 48));
    s7 = _mm256_add_ps(s7, _mm256_loadu_ps(p + i + 56));
  }
  const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)),
                                 _mm256_add_ps(_mm256_add_ps(s4, s5), _mm256_add_ps(s6, s7)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

}  // namespace pyrt
