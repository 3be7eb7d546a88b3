// f32 depthwise conv for avx2: the shared template f32_dwconv_impl.inc instantiated with
// the avx2 vector traits (simd_avx2.inc). 3x3 / 5x5 stride 1 / 2 specialised inside.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace {
#include "../common/simd_avx2.inc"
#include "../common/vmath_impl.inc"
#include "f32_dwconv_impl.inc"
}  // namespace
}  // namespace avx2

void register_f32_dwconv__avx2(KernelTable& t) {
  t.f32_dwconv = DwConvConfig{"f32_dwconv__avx2", 64, avx2::dw_packed_bytes, avx2::dw_pack,
                              avx2::dw_run};
}

}  // namespace pyrt
