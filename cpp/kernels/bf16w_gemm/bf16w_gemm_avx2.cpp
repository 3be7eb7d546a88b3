// bf16w_gemm for AVX2 + FMA: bf16 weights widened exactly by a 16-bit shift, f32_gemm's
// 6 x 16 tile and epilogue. A packed row holds the 16 columns as 8 32-bit lanes, column
// j in the low half of lane j and column 8 + j in the high half, so one load widens to
// two vectors with one shift and one AND. The algorithm is the shared 16-bit weight
// template common/w16_gemm_impl.inc.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace bf16w {
namespace {

#include "../common/gemm_vec_avx2.inc"
#include "../common/half_convert.inc"

struct BW {
  static inline uint16_t narrow(float x) { return f32_to_bf16_rne(x); }
  static inline int slot(int j) { return j < 8 ? 2 * j : 2 * (j - 8) + 1; }
  static inline void widen(const uint16_t* p, __m256* out) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    out[0] = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
    out[1] = _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
};

constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr ptrdiff_t kKc = 256;  // as f32_gemm_6x16: a 16 KiB widened slice in L1
constexpr ptrdiff_t kMc = 96;
constexpr ptrdiff_t kNc = 8;
constexpr const char* kName = "bf16w_gemm_6x16__avx2";

#include "../common/w16_gemm_impl.inc"

}  // namespace
}  // namespace bf16w
}  // namespace avx2

void register_bf16w_gemm__avx2(KernelTable& t) { t.bf16w_gemm = avx2::bf16w::config(); }

}  // namespace pyrt
