// qs8_qc8w_gemm for AVX-512 without VNNI (AVX-512BW: Skylake-SP/X class): the AVX2
// kernel's exact vpmaddubsw scheme (qs8_qc8w_gemm_avx2.cpp) on zmm. Weights packed int8
// [K/4][kNr columns][4 k] like the VNNI files; vpmaddwd with 16-bit ones turns
// vpmaddubsw's pair sums into one int32 4-k dot per column lane, as vpdpbusd would.
//
// a' = a - 128, m = (a' < 0 ? 0xFF : 0), u = |a'| in [0, 128] (u8). Per row and weight
// vector w: s = w ^ m (w, or -w - 1 where a' < 0), vpmaddubsw u * s (pair sums in
// [-32768, 32258]: exact), vpmaddwd ones, vpaddd. The accumulator holds sum a' * w - fix,
// fix = sum over the row's k with a < 128 of (128 - a) (the K % 4 tail's zero bytes as a
// = 0): the accumulators start at the row's fix (kRowFix, once per row block) and the
// epilogue subtracts (zp - 128) * colsum (kAOffset). On the GEMM path each row block of
// A is prepared once (kPrepA: u and m per 4-k group), so a group's A vectors are two
// broadcast loads. The algorithm is qs8_qc8w_gemm_impl.inc.
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
  using BT = int8_t;
  static constexpr int kCpv = 16;
  static constexpr int32_t kAOffset = 128;
  static constexpr bool kRowFix = true;
  struct AV {
    I u;  // |a - 128| (u8)
    I m;  // 0xFF where a < 128
  };
  static inline AV bcast_val(int32_t v) {
    const I a = _mm512_set1_epi32(v);
    const I m = _mm512_movm_epi8(_mm512_cmpgt_epi8_mask(a, _mm512_set1_epi8(-1)));  // a < 128
    return AV{_mm512_abs_epi8(_mm512_xor_si512(a, _mm512_set1_epi8(char(0x80)))), m};
  }
  static inline AV bcast(const uint8_t* p) { return bcast_val(load32(p)); }
  // The loop's steps in asm, as the AVX2 file (fixed order, the weights a memory operand).
  static inline I dot(I acc, const AV& a, const void* b) {
    I t;
    asm("vpxord %[w], %[m], %[t]\n\t"
        "vpmaddubsw %[t], %[u], %[t]\n\t"
        "vpmaddwd %[one], %[t], %[t]\n\t"
        "vpaddd %[t], %[acc], %[acc]"
        : [acc] "+v"(acc), [t] "=&v"(t)
        : [w] "m"(*static_cast<const __m512i*>(b)), [m] "v"(a.m), [u] "v"(a.u),
          [one] "v"(_mm512_set1_epi16(1)));
    return acc;
  }
  static inline I fold(I x, I) { return x; }  // unused: one lane per column
  // sum over the row's 4 * ceil(K / 4) bytes of max(128 - a, 0), tail bytes as a = 0.
  static inline int32_t row_fix(const uint8_t* a, ptrdiff_t K) {
    const __m512i c80 = _mm512_set1_epi8(char(0x80)), z = _mm512_setzero_si512();
    __m512i s = z;
    ptrdiff_t k = 0;
    for (; k + 64 <= K; k += 64)
      s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_subs_epu8(c80, _mm512_loadu_si512(a + k)), z));
    int64_t f = _mm512_reduce_add_epi64(s);
    for (; k < K; ++k) f += a[k] < 128 ? 128 - a[k] : 0;
    return int32_t(f + 128 * ((4 - K % 4) % 4));
  }
  // Prepared A (impl.inc kPrepA): each full group as u (4 bytes) then m (4 bytes).
  static constexpr bool kPrepA = true;
  static constexpr ptrdiff_t kPrepBytes = 8;
  static constexpr ptrdiff_t kPrepBudget = 48 * 1024;
  static inline AV bcast_prep(const uint8_t* p) {
    I u, m;
    asm("vpbroadcastd %[pu], %[u]\n\t"
        "vpbroadcastd %[pm], %[m]"
        : [u] "=v"(u), [m] "=v"(m)
        : [pu] "m"(*reinterpret_cast<const int32_t*>(p)),
          [pm] "m"(*reinterpret_cast<const int32_t*>(p + 4)));
    return AV{u, m};
  }
  // out: the row's K / 4 full groups as above; returns row_fix(a, K).
  static inline int32_t prep_row(const uint8_t* a, ptrdiff_t K, uint8_t* out) {
    const __m512i c80 = _mm512_set1_epi8(char(0x80)), m1 = _mm512_set1_epi8(-1);
    const __m512i i0 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i i1 = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const ptrdiff_t kf = K / 4 * 4;
    ptrdiff_t k = 0;
    for (; k + 64 <= kf; k += 64) {
      const __m512i x = _mm512_loadu_si512(a + k);
      const __m512i m = _mm512_movm_epi8(_mm512_cmpgt_epi8_mask(x, m1));  // a < 128
      const __m512i u = _mm512_abs_epi8(_mm512_xor_si512(x, c80));
      _mm512_storeu_si512(out + 2 * k, _mm512_permutex2var_epi32(u, i0, m));
      _mm512_storeu_si512(out + 2 * k + 64, _mm512_permutex2var_epi32(u, i1, m));
    }
    for (; k < kf; ++k) {
      const int d = int(a[k]) - 128;
      out[2 * k - k % 4] = uint8_t(d < 0 ? -d : d);
      out[2 * k - k % 4 + 4] = d < 0 ? 0xFF : 0;
    }
    return row_fix(a, K);
  }
};

constexpr int kMr = 8;
constexpr int kNr = 32;
constexpr ptrdiff_t kMc = 128;
constexpr int kAccBudget = 24;
constexpr const char* kName = "qs8_qc8w_gemm_8x32__avx512";

#include "qs8_qc8w_gemm_impl.inc"

}  // namespace
}  // namespace qgemm
}  // namespace avx512

void register_qs8_qc8w_gemm__avx512(KernelTable& t) { t.qs8_qc8w_gemm = avx512::qgemm::config(); }

}  // namespace pyrt
