// f32 pool kernels for avx2: the shared template f32_pool_impl.inc instantiated with
// the avx2 vector traits (simd_avx2.inc).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace {
#include "../common/simd_avx2.inc"
#include "../common/vmath_impl.inc"
#include "f32_pool_impl.inc"
}  // namespace
}  // namespace avx2

void register_f32_pool__avx2(KernelTable& t) {
  t.f32_pool = PoolConfig{"f32_pool__avx2", avx2::maxpool, avx2::avgpool, avx2::global_avgpool};
}

}  // namespace pyrt
