// f32 depthwise conv for avx512: the shared template f32_dwconv_impl.inc instantiated with
// the avx512 vector traits (simd_avx512.inc). 3x3 / 5x5 stride 1 / 2 specialised inside.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx512 {
namespace {
#include "../common/simd_avx512.inc"
#include "../common/vmath_impl.inc"
#include "f32_dwconv_impl.inc"
}  // namespace
}  // namespace avx512

void register_f32_dwconv__avx512(KernelTable& t) {
  t.f32_dwconv = DwConvConfig{"f32_dwconv__avx512", 64, avx512::dw_packed_bytes, avx512::dw_pack,
                              avx512::dw_run};
}

}  // namespace pyrt
