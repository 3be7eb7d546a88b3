// qs8_qc8w_gemm for AVX-VNNI (vpdpbusd on ymm, VEX encoded; no AVX-512 needed): each
// int32 lane accumulates 4 consecutive k of one column, u8 A (broadcast) times s8
// weights packed [K/4][16 columns][4 k]. A 6 x 16 tile: 12 accumulators. The algorithm
// is qs8_qc8w_gemm_impl.inc.
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

struct Q : QY {
  using BT = int8_t;
  static constexpr int kCpv = 8;
  static inline I bcast_val(int32_t v) { return _mm256_set1_epi32(v); }
  static inline I bcast(const uint8_t* p) { return _mm256_set1_epi32(load32(p)); }
  static inline I dot(I acc, I a, const void* b) {
    return _mm256_dpbusd_avx_epi32(acc, a, _mm256_loadu_si256(static_cast<const __m256i*>(b)));
  }
  static inline I fold(I x, I) { return x; }  // unused: one lane per column
};

constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr ptrdiff_t kMc = 126;
constexpr int kAccBudget = 12;
constexpr const char* kName = "qs8_qc8w_gemm_6x16__avxvnni";

#include "qs8_qc8w_gemm_impl.inc"

}  // namespace
}  // namespace qgemm
}  // namespace avxvnni

void register_qs8_qc8w_gemm__avxvnni(KernelTable& t) { t.qs8_qc8w_gemm = avxvnni::qgemm::config(); }

}  // namespace pyrt
