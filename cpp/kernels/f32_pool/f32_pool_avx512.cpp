// f32 pool kernels for avx512: the shared template f32_pool_impl.inc instantiated with
// the avx512 vector traits (simd_avx512.inc).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx512 {
namespace {
#include "../common/simd_avx512.inc"
#include "../common/vmath_impl.inc"
#include "f32_pool_impl.inc"
}  // namespace
}  // namespace avx512

void register_f32_pool__avx512(KernelTable& t) {
  t.f32_pool = PoolConfig{"f32_pool__avx512", avx512::maxpool, avx512::avgpool, avx512::global_avgpool};
}

}  // namespace pyrt
