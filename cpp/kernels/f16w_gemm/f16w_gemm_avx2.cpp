// f16w_gemm for AVX2 + FMA + F16C: f16 weights widened by vcvtph2ps (8 per instruction,
// exact), f32_gemm's 6 x 16 tile and epilogue. The algorithm is the shared 16-bit
// weight template common/w16_gemm_impl.inc; this file supplies the f16 widening and
// the blocking constants.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace f16w {
namespace {

#include "../common/gemm_vec_avx2.inc"
#include "../common/half_convert.inc"

struct BW {
  static inline uint16_t narrow(float x) { return f32_to_f16_rne(x); }
  static inline int slot(int j) { return j; }
  static inline void widen(const uint16_t* p, __m256* out) {
    out[0] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    out[1] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
  }
};

constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr ptrdiff_t kKc = 256;  // as f32_gemm_6x16: a 16 KiB widened slice in L1
constexpr ptrdiff_t kMc = 96;
constexpr ptrdiff_t kNc = 8;
constexpr const char* kName = "f16w_gemm_6x16__avx2";

#include "../common/w16_gemm_impl.inc"

}  // namespace
}  // namespace f16w
}  // namespace avx2

void register_f16w_gemm__avx2(KernelTable& t) { t.f16w_gemm = avx2::f16w::config(); }

}  // namespace pyrt
