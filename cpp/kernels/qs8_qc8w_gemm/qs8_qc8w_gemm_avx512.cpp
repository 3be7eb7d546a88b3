// qs8_qc8w_gemm for AVX-512 without VNNI: exact vpmaddwd on A zero-extended to int16
// (int16 weights [K/4][32 columns][4 k], 8 columns x 4 k per vector, two partial sums
// per column folded at the end). A 6 x 32 tile: 24 accumulators. The algorithm is
// qs8_qc8w_gemm_impl.inc.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx512 {
namespace qgemm {
namespace {

#include "qs8_traits_zmm.inc"

struct Q : QZ {
  using BT = int16_t;
  static constexpr int kCpv = 8;
  static inline I bcast_val(int32_t v) { return _mm512_cvtepu8_epi16(_mm256_set1_epi32(v)); }
  static inline I bcast(const uint8_t* p) { return bcast_val(load32(p)); }
  static inline I dot(I acc, I a, const void* b) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, _mm512_loadu_si512(b)));
  }
  // x: columns 0-7, y: columns 8-15, lanes 2c and 2c + 1 the two partial sums of c.
  static inline I fold(I x, I y) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_add_epi32(_mm512_permutex2var_epi32(x, even, y), _mm512_permutex2var_epi32(x, odd, y));
  }
};

constexpr int kMr = 6;
constexpr int kNr = 32;
constexpr ptrdiff_t kMc = 126;
constexpr int kAccBudget = 24;
constexpr const char* kName = "qs8_qc8w_gemm_6x32__avx512";

#include "qs8_qc8w_gemm_impl.inc"

}  // namespace
}  // namespace qgemm
}  // namespace avx512

void register_qs8_qc8w_gemm__avx512(KernelTable& t) { t.qs8_qc8w_gemm = avx512::qgemm::config(); }

}  // namespace pyrt
