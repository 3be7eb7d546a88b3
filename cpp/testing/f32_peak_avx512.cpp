// AVX-512 version of the peak probe (see f32_peak_avx2.cpp).
#include <immintrin.h>

#include <cstdint>

namespace pyrt {

// 16 named accumulators, so they stay in registers: with an array of 24 GCC kept them
// on the stack (load, FMA, store per chain), which capped the probe near half the FMA
// rate; a Zen 4 then printed a 139 GFLOP/s "peak" under a 182 GFLOP/s GEMM. 16 chains
// cover 2 FMA pipes x 4-5 cycles of latency with room to spare.
// Performs iters * 16 * 16 * 2 floating-point operations.
float f32_peak_fma__avx512(int64_t iters) {
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#define PYRT_ACC(i) __m512 a##i = _mm512_set1_ps(0.001f * (i));
  PYRT_ACC(0) PYRT_ACC(1) PYRT_ACC(2) PYRT_ACC(3) PYRT_ACC(4) PYRT_ACC(5) PYRT_ACC(6)
  PYRT_ACC(7) PYRT_ACC(8) PYRT_ACC(9) PYRT_ACC(10) PYRT_ACC(11) PYRT_ACC(12) PYRT_ACC(13)
  PYRT_ACC(14) PYRT_ACC(15)
#undef PYRT_ACC
  for (int64_t it = 0; it < iters; ++it) {
#define PYRT_FMA(i) a##i = _mm512_fmadd_ps(a##i, m, c);
    PYRT_FMA(0) PYRT_FMA(1) PYRT_FMA(2) PYRT_FMA(3) PYRT_FMA(4) PYRT_FMA(5) PYRT_FMA(6)
    PYRT_FMA(7) PYRT_FMA(8) PYRT_FMA(9) PYRT_FMA(10) PYRT_FMA(11) PYRT_FMA(12) PYRT_FMA(13)
    PYRT_FMA(14) PYRT_FMA(15)
#undef PYRT_FMA
  }
  const __m512 s = _mm512_add_ps(
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                    _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))),
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                    _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
  return _mm512_reduce_add_ps(s);
}

}  // namespace pyrt
