// f32 sparse x dense for avx512: the shared template f32_spmm_impl.inc instantiated with the
// avx512 vector traits.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx512 {
namespace {
#include "../common/simd_avx512.inc"
#include "f32_spmm_impl.inc"
}  // namespace
}  // namespace avx512

void register_f32_spmm__avx512(KernelTable& t) {
  t.f32_spmm = SpmmConfig{"f32_spmm__avx512", int32_t(avx512::kMt), 64, f32_spmm_packed_bytes,
                          f32_spmm_pack, avx512::spmv, avx512::spmm,
                          int32_t(avx512::V::W), avx512::spmm_nhwc};
}

}  // namespace pyrt
