// f32 activations x int8 sparse weights for avx2: the shared template qc8w_spmm_impl.inc
// instantiated with the avx2 vector traits.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace {
#include "../common/simd_avx2.inc"
inline V::T load_i8(const int8_t* p) {  // 8 values
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
#include "qc8w_spmm_impl.inc"
}  // namespace
}  // namespace avx2

void register_qc8w_spmm__avx2(KernelTable& t) {
  t.qc8w_spmm = QSpmmConfig{"qc8w_spmm__avx2", 64, qc8w_spmm_packed_bytes, qc8w_spmm_pack,
                            avx2::spmv};
}

}  // namespace pyrt
