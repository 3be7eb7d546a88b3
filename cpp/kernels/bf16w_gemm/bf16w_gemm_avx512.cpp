// bf16w_gemm for AVX-512F: bf16 weights widened exactly by a 16-bit shift, f32_gemm's
// 12 x 32 tile and epilogue, fp32 activations (no rounding of them: on CPUs with
// AVX512-BF16 the table takes bf16w_gemm_avx512bf16.cpp instead, which does). A packed
// row holds the 32 columns as 16 32-bit lanes, column j in the low half of lane j and
// column 16 + j in the high half, so one load widens to two vectors with one shift
// (low halves) and one AND (high halves). The algorithm is the shared 16-bit weight
// template common/w16_gemm_impl.inc.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR105593, see f32_gemm_avx512.cpp

namespace pyrt {
namespace avx512 {
namespace bf16w {
namespace {

#include "../common/gemm_vec_avx512.inc"
#include "../common/half_convert.inc"

struct BW {
  static inline uint16_t narrow(float x) { return f32_to_bf16_rne(x); }
  static inline int slot(int j) { return j < 16 ? 2 * j : 2 * (j - 16) + 1; }
  static inline void widen(const uint16_t* p, __m512* out) {
    const __m512i x = _mm512_loadu_si512(p);
    out[0] = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
    out[1] = _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
};

constexpr int kMr = 12;
constexpr int kNr = 32;
constexpr ptrdiff_t kKc = 512;  // the widened K slice: 64 KiB of stack, in L2
constexpr ptrdiff_t kMc = 96;
constexpr ptrdiff_t kNc = 8;
constexpr const char* kName = "bf16w_gemm_12x32__avx512";

#include "../common/w16_gemm_impl.inc"

}  // namespace
}  // namespace bf16w
}  // namespace avx512

void register_bf16w_gemm__avx512(KernelTable& t) { t.bf16w_gemm = avx512::bf16w::config(); }

}  // namespace pyrt
