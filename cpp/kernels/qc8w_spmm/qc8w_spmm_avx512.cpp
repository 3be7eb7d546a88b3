// f32 activations x int8 sparse weights for avx512: the shared template qc8w_spmm_impl.inc
// instantiated with the avx512 vector traits.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx512 {
namespace {
#include "../common/simd_avx512.inc"
inline V::T load_i8(const int8_t* p) {  // 16 values
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
#include "qc8w_spmm_impl.inc"
}  // namespace
}  // namespace avx512

void register_qc8w_spmm__avx512(KernelTable& t) {
  t.qc8w_spmm = QSpmmConfig{"qc8w_spmm__avx512", 64, qc8w_spmm_packed_bytes, qc8w_spmm_pack,
                            avx512::spmv};
}

}  // namespace pyrt
