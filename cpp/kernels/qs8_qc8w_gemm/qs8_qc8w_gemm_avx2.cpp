// qs8_qc8w_gemm for AVX2 without VNNI: vpmaddubsw, exact (never saturated), on an s8
// view of the u8 activations. Weights packed int8 [K/4][kNr columns][4 k] like the VNNI
// files; vpmaddwd with 16-bit ones turns vpmaddubsw's pair sums into one int32 4-k dot
// per column lane, as vpdpbusd would.
//
// Each activation a in [0, 255] is taken as a' = a - 128 in [-128, 127], with
// m = (a' < 0 ? 0xFF : 0) and u = |a'| in [0, 128] (vpabsb; 128 read as u8), made once
// per broadcast A group of a row. Per row and weight vector w:
//   vpxor s = w ^ m                     // w, or ~w = -w - 1 where a' < 0
//   vpmaddubsw p = u * s (pairs)         // = a' * w, minus u where a' < 0
//   vpmaddwd, vpaddd                     // pairs -> int32, accumulate
// Pair sums stay in [-2 * 128 * 128, 2 * 127 * 127] = [-32768, 32258]: exact. So the
// accumulator holds sum a' * w - fix, fix = sum over the row's k with a < 128 of
// (128 - a) (the K % 4 tail's zero bytes count as a = 0), the same for every column:
// row_fix() adds it back per tile, and the epilogue subtracts (zp - 128) * colsum
// (kAOffset), since sum a' * w = sum a * w - 128 * colsum.
// Why vpxor and not vpsignb(w, a'): on Zen 4, vpsignb, vpabsb, vpmaddubsw and vpmaddwd
// all issue to the same two pipes, vpxor / vpaddd / vpcmpgtb to all four; with vpsignb
// one 32-MAC step is 3 uops on those two pipes (at most 1.33x the FMA rate of fp32),
// with vpxor 2 (2x), and the weight vector can be vpxor's memory operand.
// The algorithm is qs8_qc8w_gemm_impl.inc.
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

alignas(32) constexpr int8_t kMinus1[32] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                            -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                            -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
alignas(32) constexpr uint8_t k0x80[32] = {
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};

struct Q : QY {
  using BT = int8_t;
  static constexpr int kCpv = 8;
  static constexpr int32_t kAOffset = 128;
  static constexpr bool kRowFix = true;
  struct AV {
    I u;  // |a - 128| (u8)
    I m;  // 0xFF where a < 128
  };
  static inline AV bcast_val(int32_t v) {
    const I a = _mm256_set1_epi32(v);
    const I m = _mm256_cmpgt_epi8(a, _mm256_set1_epi8(-1));  // a < 128: s8 view >= 0
    return AV{_mm256_abs_epi8(_mm256_xor_si256(a, _mm256_set1_epi8(char(0x80)))), m};
  }
  // The loop's steps in asm: GCC 12 otherwise copies and spills accumulators of tiles
  // that fit the 16 registers. The two constants here are memory operands (registers
  // go to accumulators); the ones for vpmaddwd stay in a register.
  static inline AV bcast(const uint8_t* p) {
    I u, m;
    asm("vpbroadcastd %[p], %[u]\n\t"
        "vpcmpgtb %[m1], %[u], %[m]\n\t"  // a < 128
        "vpxor %[c80], %[u], %[u]\n\t"    // a'
        "vpabsb %[u], %[u]"
        : [u] "=&x"(u), [m] "=x"(m)
        : [p] "m"(*reinterpret_cast<const int32_t*>(p)),
          [m1] "m"(*reinterpret_cast<const __m256i*>(kMinus1)),
          [c80] "m"(*reinterpret_cast<const __m256i*>(k0x80)));
    return AV{u, m};
  }
  static inline I dot(I acc, const AV& a, const void* b) {
    I t;
    asm("vpxor %[w], %[m], %[t]\n\t"
        "vpmaddubsw %[t], %[u], %[t]\n\t"
        "vpmaddwd %[one], %[t], %[t]\n\t"
        "vpaddd %[t], %[acc], %[acc]"
        : [acc] "+x"(acc), [t] "=&x"(t)
        : [w] "m"(*static_cast<const __m256i*>(b)), [m] "x"(a.m), [u] "x"(a.u),
          [one] "x"(_mm256_set1_epi16(1)));
    return acc;
  }
  // The GEMM path (impl.inc kPrepA): each full group as u (4 bytes) then m (4 bytes),
  // made once per row block, so a group's A vectors are two broadcast loads.
  static constexpr bool kPrepA = true;
  static constexpr ptrdiff_t kPrepBytes = 8;
  static constexpr ptrdiff_t kPrepBudget = 48 * 1024;
  static inline AV bcast_prep(const uint8_t* p) {
    I u, m;
    asm("vpbroadcastd %[pu], %[u]\n\t"
        "vpbroadcastd %[pm], %[m]"
        : [u] "=x"(u), [m] "=x"(m)
        : [pu] "m"(*reinterpret_cast<const int32_t*>(p)),
          [pm] "m"(*reinterpret_cast<const int32_t*>(p + 4)));
    return AV{u, m};
  }
  // out: the row's K / 4 full groups as above; returns row_fix(a, K).
  static inline int32_t prep_row(const uint8_t* a, ptrdiff_t K, uint8_t* out) {
    const __m256i c80 = _mm256_set1_epi8(char(0x80)), m1 = _mm256_set1_epi8(-1);
    const ptrdiff_t kf = K / 4 * 4;
    ptrdiff_t k = 0;
    for (; k + 32 <= kf; k += 32) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + k));
      const __m256i m = _mm256_cmpgt_epi8(x, m1);  // a < 128
      const __m256i u = _mm256_abs_epi8(_mm256_xor_si256(x, c80));
      const __m256i lo = _mm256_unpacklo_epi32(u, m), hi = _mm256_unpackhi_epi32(u, m);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * k), _mm256_permute2x128_si256(lo, hi, 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * k + 32), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    for (; k < kf; ++k) {
      const int d = int(a[k]) - 128;
      out[2 * k - k % 4] = uint8_t(d < 0 ? -d : d);
      out[2 * k - k % 4 + 4] = d < 0 ? 0xFF : 0;
    }
    return row_fix(a, K);
  }
  static inline I fold(I x, I) { return x; }  // unused: one lane per column
  // sum over the row's 4 * ceil(K / 4) bytes of max(128 - a, 0), tail bytes as a = 0.
  static inline int32_t row_fix(const uint8_t* a, ptrdiff_t K) {
    const __m256i c80 = _mm256_set1_epi8(char(0x80)), z = _mm256_setzero_si256();
    __m256i s = z;
    ptrdiff_t k = 0;
    for (; k + 32 <= K; k += 32)
      s = _mm256_add_epi64(s, _mm256_sad_epu8(_mm256_subs_epu8(c80, _mm256_loadu_si256(
                                                  reinterpret_cast<const __m256i*>(a + k))), z));
    const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    int64_t f = _mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1);
    for (; k < K; ++k) f += a[k] < 128 ? 128 - a[k] : 0;
    return int32_t(f + 128 * ((4 - K % 4) % 4));
  }
};

// 3 x 32: 12 accumulators, u, m, the vpmaddubsw temporary and the ones, 16 registers;
// four weight vectors per broadcast amortize its 3 uops (2x32 is about as fast, 4x16 and
// 4x24 slower at 256x1024x1024 on Zen 4).
constexpr int kMr = 3;
constexpr int kNr = 32;
constexpr ptrdiff_t kMc = 129;
constexpr int kAccBudget = 12;
constexpr const char* kName = "qs8_qc8w_gemm_3x32__avx2";

#include "qs8_qc8w_gemm_impl.inc"

}  // namespace
}  // namespace qgemm
}  // namespace avx2

void register_qs8_qc8w_gemm__avx2(KernelTable& t) { t.qs8_qc8w_gemm = avx2::qgemm::config(); }

}  // namespace pyrt
