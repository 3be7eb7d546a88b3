// f32 sparse x dense for avx2: the shared template f32_spmm_impl.inc instantiated with the
// avx2 vector traits.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace {
#include "../common/simd_avx2.inc"
#include "f32_spmm_impl.inc"
}  // namespace
}  // namespace avx2

void register_f32_spmm__avx2(KernelTable& t) {
  t.f32_spmm = SpmmConfig{"f32_spmm__avx2", int32_t(avx2::kMt), 64, f32_spmm_packed_bytes,
                          f32_spmm_pack, avx2::spmv, avx2::spmm,
                          int32_t(avx2::V::W), avx2::spmm_nhwc};
}

}  // namespace pyrt
