// qs8_qc8w_gemm for AVX2 without VNNI: exact int32 accumulation with vpmaddwd on int16
// pairs (no vpmaddubsw, whose 16-bit pair sums saturate: 255 * 127 * 2 > 32767). A's 4
// bytes of a group are broadcast and zero-extended to 16 words; the packer stores the
// weights as int16, [K/4][16 columns][4 k], so one ymm holds 4 columns x 4 k and
// vpmaddwd gives each column two partial sums (k 0-1, k 2-3), folded at the end.
// A 3 x 16 tile: 12 accumulators. The algorithm is qs8_qc8w_gemm_impl.inc.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace qgemm {
namespace {

#include "qs8_traits_ymm.inc"

struct Q : QY {
  using BT = int16_t;
  static constexpr int kCpv = 4;
  static inline I bcast_val(int32_t v) { return _mm256_cvtepu8_epi16(_mm_set1_epi32(v)); }
  // vbroadcastss from memory is a load alone (no shuffle uop beside vpmovzxbw's).
  static inline I bcast(const uint8_t* p) {
    return _mm256_cvtepu8_epi16(_mm_castps_si128(_mm_broadcast_ss(reinterpret_cast<const float*>(p))));
  }
  static inline I dot(I acc, I a, const void* b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, _mm256_loadu_si256(static_cast<const __m256i*>(b))));
  }
  // x: columns 0-3, y: columns 4-7, two partial sums per column in adjacent lanes.
  static inline I fold(I x, I y) {
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(x, y), 0xD8);  // c0c1 c4c5 | c2c3 c6c7
  }
};

constexpr int kMr = 3;
constexpr int kNr = 16;
constexpr ptrdiff_t kMc = 129;
constexpr int kAccBudget = 12;
constexpr const char* kName = "qs8_qc8w_gemm_3x16__avx2";

#include "qs8_qc8w_gemm_impl.inc"

}  // namespace
}  // namespace qgemm
}  // namespace avx2

void register_qs8_qc8w_gemm__avx2(KernelTable& t) { t.qs8_qc8w_gemm = avx2::qgemm::config(); }

}  // namespace pyrt
