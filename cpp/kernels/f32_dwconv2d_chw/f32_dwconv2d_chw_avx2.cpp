// f32 depthwise conv on NCHW planes for avx2: the shared template
// f32_dwconv2d_chw_impl.inc instantiated with the avx2 vector traits (simd_avx2.inc).
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
#include "f32_dwconv2d_chw_impl.inc"
}  // namespace
}  // namespace avx2

void register_f32_dwconv2d_chw__avx2(KernelTable& t) {
  t.f32_dwconv2d_chw = DwConvChwConfig{"f32_dwconv2d_chw__avx2", 64, avx2::dwc_packed_bytes,
                                       avx2::dwc_pack, avx2::dwc_scratch_floats, avx2::dwc_run};
}

}  // namespace pyrt
