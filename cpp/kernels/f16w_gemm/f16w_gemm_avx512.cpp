// f16w_gemm for AVX-512F (+F16C): f16 weights widened by vcvtph2ps (16 per
// instruction, exact), f32_gemm's 12 x 32 tile and epilogue. The algorithm is the
// shared 16-bit weight template common/w16_gemm_impl.inc; this file supplies the f16
// widening and the blocking constants.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR105593, see f32_gemm_avx512.cpp

namespace pyrt {
namespace avx512 {
namespace f16w {
namespace {

#include "../common/gemm_vec_avx512.inc"
#include "../common/half_convert.inc"

struct BW {
  static inline uint16_t narrow(float x) { return f32_to_f16_rne(x); }
  static inline int slot(int j) { return j; }
  static inline void widen(const uint16_t* p, __m512* out) {
    out[0] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    out[1] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)));
  }
};

constexpr int kMr = 12;
constexpr int kNr = 32;
constexpr ptrdiff_t kKc = 512;  // the widened K slice: 64 KiB of stack, in L2 (1024: same speed)
constexpr ptrdiff_t kMc = 96;
constexpr ptrdiff_t kNc = 8;
constexpr const char* kName = "f16w_gemm_12x32__avx512";

#include "../common/w16_gemm_impl.inc"

}  // namespace
}  // namespace f16w
}  // namespace avx512

void register_f16w_gemm__avx512(KernelTable& t) { t.f16w_gemm = avx512::f16w::config(); }

}  // namespace pyrt
