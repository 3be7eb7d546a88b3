// f32 depthwise conv on NCHW planes for avx512: the shared template
// f32_dwconv2d_chw_impl.inc instantiated with the avx512 vector traits (simd_avx512.inc).
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
#include "f32_dwconv2d_chw_impl.inc"
}  // namespace
}  // namespace avx512

void register_f32_dwconv2d_chw__avx512(KernelTable& t) {
  t.f32_dwconv2d_chw = DwConvChwConfig{"f32_dwconv2d_chw__avx512", 64, avx512::dwc_packed_bytes,
                                       avx512::dwc_pack, avx512::dwc_scratch_floats, avx512::dwc_run};
}

}  // namespace pyrt
