// qu8_dwconv for AVX2: qu8_dwconv_impl.inc with the AVX2 float traits (simd_avx2.inc) and
// the uint8 loads/stores below (vpmovzxbd + vcvtdq2ps in, vcvtps2dq + saturating packs out).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace {
#include "../common/simd_avx2.inc"
#include "../common/vmath_impl.inc"

struct QV {
  static inline V::T u8load(const uint8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  // n in [1, 8): 4 or 8 bytes (within the pixel's 4-byte padded stride).
  static inline V::T u8load_n(const uint8_t* p, int n) {
    __m128i b;
    if (n > 4) {
      b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    } else {
      int32_t v;
      std::memcpy(&v, p, 4);
      b = _mm_cvtsi32_si128(v);
    }
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
  }
  // t in [-512, 512]: after adding zp the int32 lanes lie in [-512, 767], which the two
  // saturating packs clamp to [0, 255].
  static inline void u8store(uint8_t* p, V::T t, int32_t zp, V::M, int n) {
    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(t), _mm256_set1_epi32(zp));
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i b = _mm_packus_epi16(w, w);
    if (n == 8) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(p), b);
    } else {
      alignas(16) uint8_t tmp[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b);
      std::memcpy(p, tmp, static_cast<size_t>(n));
    }
  }
};

#include "qu8_dwconv_impl.inc"
}  // namespace
}  // namespace avx2

void register_qu8_dwconv__avx2(KernelTable& t) {
  t.qu8_dwconv = QDwConvConfig{"qu8_dwconv__avx2", 64, kQDwMaxTaps, avx2::qdw_packed_bytes,
                               avx2::qdw_pack, avx2::qdw_run};
}

}  // namespace pyrt
