// bf16w_gemm for AVX-512F + AVX512-BF16: vdpbf16ps tiles (two multiply-adds of bf16
// pairs per fp32 lane) for batches above one row tile, exact fp32 tiles for one row tile
// or less.
//
// Packed B: panels of 32 columns, [ceil(N / 32)][ceil(K / 2)][32][2] bf16: the weights
// of k = 2j and 2j + 1 of a column side by side in one 32-bit lane (vdpbf16ps's pair),
// an odd K padded with a zero row, and the columns in two 16-lane vectors per k pair.
//
// Where the activations are rounded (the extra error of this variant):
//  * M > kMr (12): each M x K block of A is rounded to bf16 (vcvtne2ps2bf16, round to
//    nearest even) into a stack buffer once per call, and a 12 x 32 tile multiplies
//    broadcast pairs of it with the packed pairs. Each activation a then carries a
//    relative error |bf16(a) - a| <= 2^-8 |a| (bf16 keeps 8 significant bits: half an
//    ulp is 2^-8 of the value; a bound of 2^-9 fails already at K = 1); the products of
//    bf16 values are exact in fp32 and vdpbf16ps adds them with fp32 rounding, so the
//    result is within 2^-8 sum_k |a_k b_k| plus the fp32 accumulation error of any fp32
//    GEMM (about (K + 1) 2^-24 sum_k |a_k b_k|) of the exact product of A with the bf16
//    weights (tests/test_kernels_gemm16.py holds it to that bound).
//    vdpbf16ps also treats subnormal inputs as zero and flushes subnormal results (an
//    absolute error below 2^-126 per term: activations or weights under 1.2e-38), and
//    activations past the largest bf16 (|a| >= 0x1.ff8p127) round to inf.
//  * M <= kMr (GEMV, small batches) and an in-place residual with K > kKc: the weights
//    are widened exactly (a 16-bit shift for the even k of a pair, an AND for the odd)
//    and multiplied with the fp32 activations by fp32 FMAs: the same result as the
//    plain AVX-512 kernel (bf16w_gemm_avx512.cpp), at memory speed for a batch of one.
// The epilogue is f32_gemm's (f32_gemm_impl.inc, included in namespace f32).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR105593, see f32_gemm_avx512.cpp

namespace pyrt {
namespace avx512bf16 {
namespace {

#include "../common/gemm_vec_avx512.inc"
#include "../common/half_convert.inc"

constexpr int kMr = 12;
constexpr int kNr = 32;
constexpr ptrdiff_t kKc = 512;  // even: K blocks start on a pair; A block 96 x 512 bf16
constexpr ptrdiff_t kMc = 96;   // (96 KiB of stack) beside a 32 KiB B slice
constexpr ptrdiff_t kNc = 8;
constexpr const char* kName = "bf16w_gemm_12x32__avx512bf16";
static_assert(kKc % 2 == 0, "K blocks must start on a k pair");

namespace f32 {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"  // only its tiles' epilogue is used
#include "../f32_gemm/f32_gemm_impl.inc"
#pragma GCC diagnostic pop
}  // namespace f32

using reg = __m512;
using f32::TileArgs;
constexpr ptrdiff_t kPairRow = 2 * kNr;  // uint16 per packed k pair

inline ptrdiff_t num_panels(ptrdiff_t N) { return (N + kNr - 1) / kNr; }
inline ptrdiff_t num_pairs(ptrdiff_t K) { return (K + 1) / 2; }

size_t packed_bytes(ptrdiff_t K, ptrdiff_t N) {
  if (K <= 0 || N <= 0) return 0;
  return static_cast<size_t>(num_panels(N)) * static_cast<size_t>(num_pairs(K)) * kPairRow *
         sizeof(uint16_t);
}

void pack(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, void* out) {
  uint16_t* packed = static_cast<uint16_t*>(out);
  const ptrdiff_t np = num_panels(N), kp = num_pairs(K);
  for (ptrdiff_t p = 0; p < np; ++p) {
    const ptrdiff_t c0 = p * kNr;
    const ptrdiff_t w = N - c0 < kNr ? N - c0 : kNr;
    for (ptrdiff_t j = 0; j < kp; ++j) {
      uint16_t* dst = packed + (p * kp + j) * kPairRow;
      for (int h = 0; h < 2; ++h) {  // h: k = 2j + h, the low (0) or high (1) half
        const ptrdiff_t k = 2 * j + h;
        for (int c = 0; c < kNr; ++c)
          dst[2 * c + h] = k < K && c < w ? f32_to_bf16_rne(B[k * ldb + c0 + c]) : 0;
      }
    }
  }
}

// ------------------------------------------------ exact tiles (weights widened)

// The four fp32 vectors of one packed k pair: w[h][v] = B[2j + h][v * 16 .. + 16).
static inline __attribute__((always_inline)) void widen_pair(const uint16_t* p, reg (&w)[2][2]) {
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
#pragma GCC unroll 2
  for (int v = 0; v < 2; ++v) {
    const __m512i x = _mm512_loadu_si512(p + v * kNr);
    w[0][v] = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
    w[1][v] = _mm512_castsi512_ps(_mm512_and_si512(x, hi));
  }
}

// Rows [0, MR) of a tile over all of K (t.kc = K); b: the packed panel. Even and odd k
// accumulate apart (two chains per output vector), summed at the end.
template <int MR>
__attribute__((noinline)) void tile_exact(const TileArgs& t, const uint16_t* b) {
  reg acc[2][MR][2];
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h)
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) acc[h][r][0] = acc[h][r][1] = V::zero();
  const float* a = t.a;
  const ptrdiff_t lda = t.lda, K = t.kc;
  ptrdiff_t j = 0;
  for (; 2 * j + 1 < K; ++j) {
    reg w[2][2];
    widen_pair(b + j * kPairRow, w);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h)
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const reg av = V::bcast(a + r * lda + 2 * j + h);
        acc[h][r][0] = V::fma(av, w[h][0], acc[h][r][0]);
        acc[h][r][1] = V::fma(av, w[h][1], acc[h][r][1]);
      }
  }
  if (2 * j < K) {  // odd K: the last k alone (A has no k + 1 to read)
    reg w[2][2];
    widen_pair(b + j * kPairRow, w);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const reg av = V::bcast(a + r * lda + 2 * j);
      acc[0][r][0] = V::fma(av, w[0][0], acc[0][r][0]);
      acc[0][r][1] = V::fma(av, w[0][1], acc[0][r][1]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    acc[0][r][0] = V::add(acc[0][r][0], acc[1][r][0]);
    acc[0][r][1] = V::add(acc[0][r][1], acc[1][r][1]);
  }
  if (t.ncols == kNr)
    f32::finish_tile<MR, true>(acc[0], t);
  else
    f32::finish_tile<MR, false>(acc[0], t);
}

// One row, two panels per pass (8 FMA chains, two weight streams).
__attribute__((noinline)) void gemv_pair(const TileArgs& t0, const uint16_t* b0,
                                         const TileArgs& t1, const uint16_t* b1) {
  reg acc0[2][2], acc1[2][2];
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) acc0[h][0] = acc0[h][1] = acc1[h][0] = acc1[h][1] = V::zero();
  const float* a = t0.a;
  const ptrdiff_t K = t0.kc;
  ptrdiff_t j = 0;
  for (; 2 * j + 1 < K; ++j) {
    reg w0[2][2], w1[2][2];
    widen_pair(b0 + j * kPairRow, w0);
    widen_pair(b1 + j * kPairRow, w1);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const reg av = V::bcast(a + 2 * j + h);
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v) {
        acc0[h][v] = V::fma(av, w0[h][v], acc0[h][v]);
        acc1[h][v] = V::fma(av, w1[h][v], acc1[h][v]);
      }
    }
  }
  if (2 * j < K) {
    reg w0[2][2], w1[2][2];
    widen_pair(b0 + j * kPairRow, w0);
    widen_pair(b1 + j * kPairRow, w1);
    const reg av = V::bcast(a + 2 * j);
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      acc0[0][v] = V::fma(av, w0[0][v], acc0[0][v]);
      acc1[0][v] = V::fma(av, w1[0][v], acc1[0][v]);
    }
  }
  reg r0[1][2], r1[1][2];
#pragma GCC unroll 2
  for (int v = 0; v < 2; ++v) {
    r0[0][v] = V::add(acc0[0][v], acc0[1][v]);
    r1[0][v] = V::add(acc1[0][v], acc1[1][v]);
  }
  f32::finish_tile<1, true>(r0, t0);
  if (t1.ncols == kNr)
    f32::finish_tile<1, true>(r1, t1);
  else
    f32::finish_tile<1, false>(r1, t1);
}

// -------------------------------------------------------- vdpbf16ps tiles

// Rounds rows [0, rows) x columns [0, kc) of A to bf16 into abuf (row stride ldp
// pairs; an odd kc's last pair gets a zero high half). Masked loads: nothing past
// column kc - 1 of a row is read.
void round_block(const float* A, ptrdiff_t lda, ptrdiff_t rows, ptrdiff_t kc, uint32_t* abuf,
                 ptrdiff_t ldp) {
  for (ptrdiff_t i = 0; i < rows; ++i) {
    const float* a = A + i * lda;
    uint32_t* dst = abuf + i * ldp;
    for (ptrdiff_t k = 0; k < kc; k += 32) {
      const ptrdiff_t n = kc - k;
      __m512 lo, hi;
      if (n >= 32) {
        lo = _mm512_loadu_ps(a + k);
        hi = _mm512_loadu_ps(a + k + 16);
      } else {
        const __mmask16 mlo = static_cast<__mmask16>(n >= 16 ? 0xffffu : (1u << n) - 1u);
        const __mmask16 mhi = static_cast<__mmask16>(n <= 16 ? 0u : (1u << (n - 16)) - 1u);
        lo = _mm512_maskz_loadu_ps(mlo, a + k);
        hi = _mm512_maskz_loadu_ps(mhi, a + k + 16);
      }
      const __m512bh h = _mm512_cvtne2ps_pbh(hi, lo);  // elements k .. k + 31 in order
      const ptrdiff_t pairs = (n >= 32 ? 32 : n + 1) / 2;
      const __mmask16 ms = static_cast<__mmask16>(pairs >= 16 ? 0xffffu : (1u << pairs) - 1u);
      _mm512_mask_storeu_epi32(dst + k / 2, ms, reinterpret_cast<const __m512i&>(h));
    }
  }
}

struct DpArgs {
  const uint32_t* a;  // rounded A pairs at (tile row 0, pair 0 of the block)
  ptrdiff_t ldp;      // its row stride in pairs
  const uint16_t* b;  // the packed panel at the block's first pair
  ptrdiff_t pairs;    // k pairs in the block
};

template <int MR>
__attribute__((noinline)) void tile_dp(const DpArgs& d, const TileArgs& t) {
  reg acc[MR][2];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = V::zero();
  const uint32_t* a = d.a;
  const uint16_t* b = d.b;
  const ptrdiff_t ldp = d.ldp;
#pragma GCC unroll 2
  for (ptrdiff_t j = 0; j < d.pairs; ++j) {
    const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + j * kPairRow));
    const __m512bh b1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + j * kPairRow + kNr));
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[r * ldp + j])));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  if (t.ncols == kNr)
    f32::finish_tile<MR, true>(acc, t);
  else
    f32::finish_tile<MR, false>(acc, t);
}

#define PYRT_BF16_TILE(n)                          \
  case n:                                          \
    if (dp) tile_dp<n>(*dp, t); else tile_exact<n>(t, b); \
    return;

static void run_tile(int m, const TileArgs& t, const DpArgs* dp, const uint16_t* b) {
  switch (m) {
    PYRT_BF16_TILE(1) PYRT_BF16_TILE(2) PYRT_BF16_TILE(3) PYRT_BF16_TILE(4)
    PYRT_BF16_TILE(5) PYRT_BF16_TILE(6) PYRT_BF16_TILE(7) PYRT_BF16_TILE(8)
    PYRT_BF16_TILE(9) PYRT_BF16_TILE(10) PYRT_BF16_TILE(11) PYRT_BF16_TILE(12)
    default: return;
  }
}
#undef PYRT_BF16_TILE
static_assert(kMr == 12, "run_tile dispatches up to 12 rows");

void run(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float* A, ptrdiff_t lda,
         const void* packed_in, float* C, ptrdiff_t ldc, const Epilogue* ep, ptrdiff_t n0,
         ptrdiff_t n1) {
  const uint16_t* packed = static_cast<const uint16_t*>(packed_in);
  if (n1 > N) n1 = N;
  if (M <= 0 || n1 <= n0 || K < 0) return;
  Epilogue none{};
  if (ep == nullptr) ep = &none;
  const ptrdiff_t p0 = n0 / kNr, p1 = num_panels(n1), kp = num_pairs(K);

  TileArgs t;
  t.lda = lda;
  t.ldc = ldc;
  t.ldr = ep->ldr;
  t.ep = ep;
  t.pf = nullptr;
  t.b = nullptr;
  t.first = t.last = true;
  auto set_tile = [&](ptrdiff_t i, ptrdiff_t p, ptrdiff_t k0) {
    const ptrdiff_t c0 = p * kNr;
    t.a = A + i * lda + k0;
    t.c = C + i * ldc + c0;
    t.ncols = static_cast<int>(n1 - c0 < kNr ? n1 - c0 : kNr);
    t.bias = ep->bias ? ep->bias + c0 : nullptr;
    t.res = ep->residual ? ep->residual + i * ep->ldr + c0 : nullptr;
  };
  auto panel = [&](ptrdiff_t p) { return packed + p * kp * kPairRow; };

  const bool in_place = ep->residual && f32::ranges_overlap(C, ldc, ep->residual, ep->ldr, M, n1);
  if (M <= kMr || (in_place && K > kKc)) {  // exact fp32 tiles, all of K at once
    t.kc = K;
    if (M == 1) {
      ptrdiff_t p = p0;
      for (; p + 1 < p1; p += 2) {
        set_tile(0, p, 0);
        const TileArgs first = t;
        set_tile(0, p + 1, 0);
        gemv_pair(first, panel(p), t, panel(p + 1));
      }
      if (p < p1) {
        set_tile(0, p, 0);
        run_tile(1, t, nullptr, panel(p));
      }
      return;
    }
    for (ptrdiff_t p = p0; p < p1; ++p)
      for (ptrdiff_t i = 0; i < M; i += kMr) {
        set_tile(i, p, 0);
        run_tile(static_cast<int>(M - i < kMr ? M - i : kMr), t, nullptr, panel(p));
      }
    return;
  }

  alignas(64) uint32_t abuf[kMc * (kKc / 2)];
  constexpr ptrdiff_t ldp = kKc / 2;
  ptrdiff_t kc = K;
  if (K > kKc) {
    const ptrdiff_t nblocks = (K + kKc - 1) / kKc;
    kc = (K + nblocks - 1) / nblocks;
    kc += kc & 1;  // even, <= kKc since kKc is even
  }
  DpArgs d;
  d.ldp = ldp;
  for (ptrdiff_t q0 = p0; q0 < p1; q0 += kNc) {
    const ptrdiff_t q1 = p1 - q0 < kNc ? p1 : q0 + kNc;
    for (ptrdiff_t m0 = 0; m0 < M; m0 += kMc) {
      const ptrdiff_t m1 = M - m0 < kMc ? M : m0 + kMc;
      ptrdiff_t k0 = 0;
      do {
        const ptrdiff_t kcur = K - k0 < kc ? K - k0 : kc;
        round_block(A + m0 * lda + k0, lda, m1 - m0, kcur, abuf, ldp);
        t.kc = kcur;
        t.first = k0 == 0;
        t.last = k0 + kcur >= K;
        d.pairs = (kcur + 1) / 2;
        for (ptrdiff_t p = q0; p < q1; ++p) {
          d.b = panel(p) + (k0 / 2) * kPairRow;
          for (ptrdiff_t i = m0; i < m1; i += kMr) {
            set_tile(i, p, k0);
            d.a = abuf + (i - m0) * ldp;
            run_tile(static_cast<int>(m1 - i < kMr ? m1 - i : kMr), t, &d, nullptr);
          }
        }
        k0 += kcur;
      } while (k0 < K);
    }
  }
}

}  // namespace
}  // namespace avx512bf16

void register_bf16w_gemm__avx512bf16(KernelTable& t) {
  t.bf16w_gemm = GemmConfig{avx512bf16::kName, avx512bf16::kMr, avx512bf16::kNr, 64,
                            avx512bf16::packed_bytes, avx512bf16::pack, avx512bf16::run, nullptr};
}

}  // namespace pyrt
