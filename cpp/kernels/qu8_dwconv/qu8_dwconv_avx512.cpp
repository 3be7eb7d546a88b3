// qu8_dwconv for AVX-512: qu8_dwconv_impl.inc with the AVX-512 float traits
// (simd_avx512.inc) and the uint8 loads/stores of qu8_dwconv_qv_avx512.inc (masked byte
// loads for tails, vpmovusdb stores). Where the CPU has AVX512-VNNI the table takes
// qu8_dwconv__avx512vnni instead (integer 3x3 / 5x5, this code for the rest).
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

#include "qu8_dwconv_qv_avx512.inc"

#include "qu8_dwconv_impl.inc"
}  // namespace
}  // namespace avx512

void register_qu8_dwconv__avx512(KernelTable& t) {
  t.qu8_dwconv = QDwConvConfig{"qu8_dwconv__avx512", 64, kQDwMaxTaps, avx512::qdw_packed_bytes,
                               avx512::qdw_pack, avx512::qdw_run};
}

}  // namespace pyrt
