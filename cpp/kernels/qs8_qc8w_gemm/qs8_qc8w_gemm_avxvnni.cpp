// qs8_qc8w_gemm for AVX-VNNI (vpdpbusd on ymm, VEX encoded; no AVX-512 needed): the
// 6 x 16 tile of qs8_qc8w_gemm_vnni_ymm.inc on the instruction itself.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avxvnni {
namespace qgemm {
namespace {

#include "qs8_traits_ymm.inc"

inline __m256i dpbusd(__m256i acc, __m256i a, __m256i b) {
  return _mm256_dpbusd_avx_epi32(acc, a, b);
}
constexpr const char* kName = "qs8_qc8w_gemm_6x16__avxvnni";

#include "qs8_qc8w_gemm_vnni_ymm.inc"

}  // namespace
}  // namespace qgemm
}  // namespace avxvnni

void register_qs8_qc8w_gemm__avxvnni(KernelTable& t) { t.qs8_qc8w_gemm = avxvnni::qgemm::config(); }

}  // namespace pyrt
