// qu8_dwconv for AVX-512: qu8_dwconv_impl.inc with the AVX-512 float traits
// (simd_avx512.inc) and the uint8 loads/stores below (masked byte loads for tails,
// vpmovusdb stores).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx512 {
namespace {
#include "../common/simd_avx512.inc"
#include "../common/vmath_impl.inc"

struct QV {
  static inline V::T u8load(const uint8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  // n in [1, 16): exactly n bytes (masked lanes never touch memory).
  static inline V::T u8load_n(const uint8_t* p, int n) {
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p)));
  }
  static inline void u8store(uint8_t* p, V::T t, int32_t zp, V::M m, int n) {
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(t), _mm512_set1_epi32(zp));
    q = _mm512_max_epi32(q, _mm512_setzero_si512());  // vpmovusdb saturates above 255
    if (n == 16) _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtusepi32_epi8(q));
    else _mm512_mask_cvtusepi32_storeu_epi8(p, m, q);
  }
};

#include "qu8_dwconv_impl.inc"
}  // namespace
}  // namespace avx512

void register_qu8_dwconv__avx512(KernelTable& t) {
  t.qu8_dwconv = QDwConvConfig{"qu8_dwconv__avx512", 64, kQDwMaxTaps, avx512::qdw_packed_bytes,
                               avx512::qdw_pack, avx512::qdw_run};
}

}  // namespace pyrt
