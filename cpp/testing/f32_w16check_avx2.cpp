// Test-only: the dwconv (NHWC and CHW), pool and eltwise templates instantiated with
// simd_avx2x2.inc (16-lane vectors made of two AVX2 halves), so the width-16 logic that
// AVX-512 runs is tested on AVX2-only machines. Never placed in the dispatch table;
// reached only through _core.testing with isa="avx2w16".
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2w16 {
namespace {
#include "../kernels/common/simd_avx2x2.inc"
#include "../kernels/common/vmath_impl.inc"
#include "../kernels/f32_dwconv/f32_dwconv_impl.inc"
#include "../kernels/f32_dwconv2d_chw/f32_dwconv2d_chw_impl.inc"
#include "../kernels/f32_pool/f32_pool_impl.inc"
#include "../kernels/f32_eltwise/f32_eltwise_impl.inc"
#include "../kernels/f32_spmm/f32_spmm_impl.inc"
}  // namespace
}  // namespace avx2w16

// Declared in cpp/testing/kern_testing_util.h.
void register_all__avx2w16_testing(KernelTable& t) {
  t.f32_dwconv = DwConvConfig{"f32_dwconv__avx2w16", 64, avx2w16::dw_packed_bytes,
                              avx2w16::dw_pack, avx2w16::dw_run};
  t.f32_dwconv2d_chw = DwConvChwConfig{"f32_dwconv2d_chw__avx2w16", 64, avx2w16::dwc_packed_bytes,
                                       avx2w16::dwc_pack, avx2w16::dwc_scratch_floats,
                                       avx2w16::dwc_run};
  t.f32_pool = PoolConfig{"f32_pool__avx2w16", avx2w16::maxpool, avx2w16::avgpool,
                      avx2w16::global_avgpool};
  t.f32_eltwise = EltwiseConfig{"f32_eltwise__avx2w16", avx2w16::add, avx2w16::activation,
                            avx2w16::epilogue, avx2w16::softmax};
  t.f32_spmm = SpmmConfig{"f32_spmm__avx2w16", int32_t(avx2w16::kMt), 64, f32_spmm_packed_bytes,
                          f32_spmm_pack, avx2w16::spmv, avx2w16::spmm,
                          int32_t(avx2w16::V::W), avx2w16::spmm_nhwc};
}

}  // namespace pyrt
