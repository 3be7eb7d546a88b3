// f32 eltwise kernels for avx512: the shared template f32_eltwise_impl.inc instantiated with
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
#include "f32_eltwise_impl.inc"
}  // namespace
}  // namespace avx512

void register_f32_eltwise__avx512(KernelTable& t) {
  t.f32_eltwise = EltwiseConfig{"f32_eltwise__avx512", avx512::add, avx512::activation, avx512::epilogue,
                            avx512::softmax};
}

}  // namespace pyrt
