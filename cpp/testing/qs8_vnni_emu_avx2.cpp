// Test-only: the AVX-VNNI int8 GEMM (qs8_qc8w_gemm_vnni_ymm.inc, its 6 x 16 tile and
// [K/4][16][4] packing) with vpdpbusd emulated exactly in AVX2, so that kernel's code
// runs on every AVX2 machine (few CPUs have AVX-VNNI without AVX-512: Intel's client
// cores since Alder Lake). Never placed in the dispatch table; reached by name through
// _core.testing (variant="qs8_qc8w_gemm_6x16__avxvnni_emu") and tools/kernelcheck.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avxvnni_emu {
namespace qgemm {
namespace {

#include "../kernels/qs8_qc8w_gemm/qs8_traits_ymm.inc"

// vpdpbusd: per int32 lane, acc + a[4i..4i+3] (zero-extended) . b[4i..4i+3] (signed).
// The even and odd bytes of each 16-bit half widen to int16 separately; vpmaddwd then
// adds the two products of a lane's even (odd) bytes in int32: no step saturates.
inline __m256i dpbusd(__m256i acc, __m256i a, __m256i b) {
  const __m256i lo = _mm256_set1_epi16(0x00FF);
  const __m256i a_even = _mm256_and_si256(a, lo), a_odd = _mm256_srli_epi16(a, 8);
  const __m256i b_even = _mm256_srai_epi16(_mm256_slli_epi16(b, 8), 8);
  const __m256i b_odd = _mm256_srai_epi16(b, 8);
  return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(a_even, b_even),
                                                _mm256_madd_epi16(a_odd, b_odd)));
}
constexpr const char* kName = "qs8_qc8w_gemm_6x16__avxvnni_emu";

#include "../kernels/qs8_qc8w_gemm/qs8_qc8w_gemm_vnni_ymm.inc"

}  // namespace
}  // namespace qgemm
}  // namespace avxvnni_emu

// Declared in cpp/testing/kern_testing_util.h.
QGemmConfig qs8_qc8w_gemm_avxvnni_emu_testing() { return avxvnni_emu::qgemm::config(); }

}  // namespace pyrt
