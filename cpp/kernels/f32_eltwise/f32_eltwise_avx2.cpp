// f32 eltwise kernels for avx2: the shared template f32_eltwise_impl.inc instantiated with
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
#include "f32_eltwise_impl.inc"
}  // namespace
}  // namespace avx2

void register_f32_eltwise__avx2(KernelTable& t) {
  t.f32_eltwise = EltwiseConfig{"f32_eltwise__avx2", avx2::add, avx2::activation, avx2::epilogue,
                            avx2::softmax};
}

}  // namespace pyrt
