// qu8_dwconv for AVX512-VNNI: 3x3 and 5x5 kernels, stride 1 or 2 (the same both ways), no
// dilation, any padding, accumulate in int32 with vpdpbusd (u8 x s8, 4 products per
// 32-bit lane); every other shape runs qu8_dwconv_impl.inc (the float kernel of
// qu8_dwconv__avx512) on the float weights packed beside the int8 ones.
//
// Each int32 lane is one channel and its 4 bytes are 4 kernel rows of one kernel column:
// for an input column iw the kernel builds, per group of 4 kernel rows (3x3: rows 0-2 and
// a zero; 5x5: rows 0-3, then row 4 and three zeros), the interleaved bytes
// (x[r0][iw][c], x[r1][iw][c], x[r2][iw][c], x[r3][iw][c]) of 16 channels per vector:
// vpermd puts the dwords of each row's 64 loaded bytes so that the in-lane byte and word
// unpacks (vpunpck[lh]bw, vpunpck[lh]wd) of the 4 rows give channels in order. An output
// pixel is then sum over kernel columns kw and groups g of vpdpbusd(column[ow * S - pl +
// kw][g], w[g][kw]), with the weights packed once as int8 in the same 4-row groups (zero
// past the kernel). Columns of one output row slide through registers: stride 1 builds
// one new column per output pixel and reuses K - 1, stride 2 builds two. Padding costs no
// branch in the sums: a column or kernel row outside the image is read as bytes equal to
// the zero point, and every accumulator starts at -zp * sum(w) (the tap sums packed per
// channel), so a padded tap adds zp * w - zp * w = 0 and the result is exactly the int32
// sum over the taps inside of (x - zp) * w, as the scalar variant computes. Channels go in
// blocks of 64 (4 vectors), the last block in 1-4 vectors with masked loads and stores;
// the epilogue is qu8_dwconv_impl.inc's (the same float operations as every variant).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx512vnni {
namespace qdw {
namespace {
#include "../common/simd_avx512.inc"
#include "../common/vmath_impl.inc"

#include "qu8_dwconv_qv_avx512.inc"

#include "qu8_dwconv_impl.inc"

constexpr ptrdiff_t kVb = 64;  // channels per block: 4 vectors of 16 int32 lanes
inline ptrdiff_t v_cq(ptrdiff_t C) { return (C + kVb - 1) / kVb * kVb; }
inline bool v_kernel(ptrdiff_t KH, ptrdiff_t KW) { return KH == KW && (KH == 3 || KH == 5); }
inline ptrdiff_t v_groups(ptrdiff_t K) { return (K + 3) / 4; }

// Packed: the float layout of qu8_dwconv_impl.inc (qdw_packed_bytes, a multiple of 64
// bytes), then for 3x3 / 5x5 int8 [G][K][Cq][4] (G groups of 4 kernel rows, K kernel
// columns, Cq = C rounded up to 64; zero past the kernel and past C), int32 [Cq] (each
// channel's sum of its weights), and for 3x3 int8 [K][Cq][4] once more with the rows in
// bytes 1-3 (byte 0 zero).
size_t v_bytes(ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C) {
  if (!v_kernel(KH, KW)) return 0;
  const ptrdiff_t Cq = v_cq(C);
  return static_cast<size_t>(v_groups(KH) * KW * Cq * 4 + Cq * 4 + (KH == 3 ? 3 * Cq * 4 : 0));
}

size_t v_packed_bytes(ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C) {
  return qdw_packed_bytes(KH, KW, C) + v_bytes(KH, KW, C);
}

void v_pack(const int8_t* w_src, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C, void* out) {
  qdw_pack(w_src, KH, KW, C, out);
  if (!v_kernel(KH, KW)) return;
  const ptrdiff_t K = KH, G = v_groups(K), Cq = v_cq(C), KK = K * K;
  int8_t* w8 = static_cast<int8_t*>(out) + qdw_packed_bytes(KH, KW, C);
  for (ptrdiff_t g = 0; g < G; ++g)
    for (ptrdiff_t kw = 0; kw < K; ++kw)
      for (ptrdiff_t c = 0; c < Cq; ++c)
        for (ptrdiff_t r = 0; r < 4; ++r) {
          const ptrdiff_t kh = 4 * g + r;
          w8[((g * K + kw) * Cq + c) * 4 + r] = kh < K && c < C ? w_src[c * KK + kh * K + kw] : 0;
        }
  int32_t* sums = reinterpret_cast<int32_t*>(w8 + G * K * Cq * 4);
  for (ptrdiff_t c = 0; c < Cq; ++c) {
    int32_t s = 0;
    for (ptrdiff_t t = 0; c < C && t < KK; ++t) s += w_src[c * KK + t];
    sums[c] = s;
  }
  if (K != 3) return;
  // 3x3: the weights again one byte up, (0, w[0][kw], w[1][kw], w[2][kw]), for the second
  // of two output rows that share a column of 4 input rows.
  int8_t* w8b = reinterpret_cast<int8_t*>(sums + Cq);
  for (ptrdiff_t kw = 0; kw < K; ++kw)
    for (ptrdiff_t c = 0; c < Cq; ++c)
      for (ptrdiff_t r = 0; r < 4; ++r)
        w8b[(kw * Cq + c) * 4 + r] = r > 0 && c < C ? w_src[c * KK + (r - 1) * K + kw] : 0;
}

// The kernel rows of one output row: row kh at column 0 of the block's first channel, and
// the bytes per input column (ldx), or a row of zero-point bytes with step 0.
struct VRows {
  const uint8_t* p[8];
  ptrdiff_t step[8];
};

// Input column iw for the block's NV vectors: col[g * NV + j] lane l = channel 16 j + l,
// bytes = kernel rows 4g .. 4g + 3 (0 past K). Outside the image: zero-point bytes.
template <int K, int NV, bool FULL>
__attribute__((always_inline)) inline void v_col(const VRows& r, ptrdiff_t iw, ptrdiff_t W, __mmask64 lm, __m512i zpv,
                  __m512i idx, __m512i* col) {
  constexpr int G = (K + 3) / 4;
  if (iw < 0 || iw >= W) {
    for (int i = 0; i < G * NV; ++i) col[i] = zpv;
    return;
  }
#pragma GCC unroll 2
  for (int g = 0; g < G; ++g) {
    __m512i a[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const int kh = 4 * g + q;
      if (kh < K) {
        const uint8_t* p = r.p[kh] + iw * r.step[kh];
        const __m512i b = FULL ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(lm, p);
        // dword 4i + m <- dword 4m + i: after the in-lane unpacks, vector m holds
        // channels 16m .. 16m + 15 in order.
        a[q] = _mm512_permutexvar_epi32(idx, b);
      } else {
        a[q] = _mm512_setzero_si512();
      }
    }
    const __m512i lo01 = _mm512_unpacklo_epi8(a[0], a[1]), hi01 = _mm512_unpackhi_epi8(a[0], a[1]);
    const __m512i lo23 = _mm512_unpacklo_epi8(a[2], a[3]), hi23 = _mm512_unpackhi_epi8(a[2], a[3]);
    col[g * NV + 0] = _mm512_unpacklo_epi16(lo01, lo23);
    if (NV > 1) col[g * NV + 1] = _mm512_unpackhi_epi16(lo01, lo23);
    if (NV > 2) col[g * NV + 2] = _mm512_unpacklo_epi16(hi01, hi23);
    if (NV > 3) col[g * NV + 3] = _mm512_unpackhi_epi16(hi01, hi23);
  }
}

// Epilogue kinds, chosen once per call: EPI_ANY is qdw_finish (every epilogue); EPI_U8 and
// EPI_F32 (uint8 / float output, no residual, act none, relu or clip) are the same float
// operations with the per-channel factors kept in registers across the row: relu and none
// as a clip to [0, inf] and [-inf, inf] (max then min give the same bits, NaN included).
enum { EPI_ANY = 0, EPI_U8 = 1, EPI_F32 = 2 };

// R output rows (R = 2 only for 3x3 stride 1: input rows 0-3 in one column, the first
// output row's weights in bytes 0-2 and the second's in bytes 1-3), channels [c0, c0 + 16
// NV) (the last vector holds `tail` channels when TAIL), every output pixel. r: the input
// rows offset to channel c0.
template <int K, int S, int NV, bool TAIL, int EPI, int R>
void v_block(const VRows& r, const QDwConvArgs& a, const int8_t* w8, ptrdiff_t Cq,
             const int32_t* sums, int32_t zp, const QdwEpi& e, ptrdiff_t pix0, ptrdiff_t c0,
             int tail) {
  static_assert(R == 1 || (K == 3 && S == 1 && R == 2), "two rows: 3x3 stride 1 only");
  constexpr int NR = K + R - 1;  // input rows per column
  constexpr int G = (NR + 3) / 4;
  constexpr bool FULL = NV == 4 && !TAIL;
  const ptrdiff_t W = a.W, pl = a.pl, OW = a.OW;
  const ptrdiff_t nbytes = a.C - c0;
  const __mmask64 lm = nbytes >= 64 ? ~__mmask64(0) : (__mmask64(1) << nbytes) - 1;
  const __m512i zpv = _mm512_set1_epi8(static_cast<char>(zp));
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const V::M m = V::mask(tail);
  __m512i init[NV];
  V::T sc[NV], bi[NV];
  for (int j = 0; j < NV; ++j) {
    init[j] = _mm512_mullo_epi32(_mm512_set1_epi32(-zp), _mm512_load_si512(sums + c0 + 16 * j));
    const bool mj = TAIL && j == NV - 1;
    if (EPI != EPI_ANY) {
      sc[j] = V::mul(e.as, mj ? V::loadm(e.ws + c0 + 16 * j, m) : V::load(e.ws + c0 + 16 * j));
      bi[j] = e.bias ? (mj ? V::loadm(e.bias + c0 + 16 * j, m) : V::load(e.bias + c0 + 16 * j))
                     : V::zero();
    }
  }
  const bool has_bias = e.bias != nullptr;
  const V::T lo = e.act == Act::Clip ? e.lo : e.act == Act::Relu ? V::zero() : V::set1(-__builtin_huge_valf());
  const V::T hi = e.act == Act::Clip ? e.hi : V::set1(__builtin_huge_valf());
  const int8_t* wb = w8 + c0 * 4;
  const __m512i ozp16 = _mm512_set1_epi16(static_cast<int16_t>(e.ozp));
  const __mmask64 sm = lm;  // output bytes of the block (C - c0 below 64)
  const int8_t* wb2 = reinterpret_cast<const int8_t*>(sums + Cq) + c0 * 4;  // R == 2
  __m512i col[K][G * NV];
#pragma GCC unroll 4
  for (int k = 0; k < K - S; ++k) v_col<NR, NV, FULL>(r, k - pl, W, lm, zpv, idx, col[k]);
  for (ptrdiff_t ow = 0; ow < OW; ++ow) {
    const ptrdiff_t base = ow * S - pl;
#pragma GCC unroll 2
    for (int k = K - S; k < K; ++k) v_col<NR, NV, FULL>(r, base + k, W, lm, zpv, idx, col[k]);
    __m512i acc[R][NV];
    for (int rr = 0; rr < R; ++rr)
      for (int j = 0; j < NV; ++j) acc[rr][j] = init[j];
#pragma GCC unroll 5
    for (int k = 0; k < K; ++k)
#pragma GCC unroll 2
      for (int g = 0; g < G; ++g)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) {
          acc[0][j] = _mm512_dpbusd_epi32(
              acc[0][j], col[k][g * NV + j],
              _mm512_load_si512(wb + ((g * K + k) * Cq + 16 * j) * 4));
          if (R == 2)
            acc[R - 1][j] = _mm512_dpbusd_epi32(
                acc[R - 1][j], col[k][g * NV + j],
                _mm512_load_si512(wb2 + (k * Cq + 16 * j) * 4));
        }
#pragma GCC unroll 2
    for (int rr = 0; rr < R; ++rr) {
    const ptrdiff_t pix = pix0 + rr * OW + ow;
    char* yp = e.y + pix * e.ldy_bytes;
    __m512i q[4];  // EPI_U8: each vector's int32 round(t) (zero point added after packing)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const bool mj = TAIL && j == NV - 1;
      const V::T f = _mm512_cvtepi32_ps(acc[rr][j]);
      if (EPI == EPI_ANY) {
        if (mj) qdw_finish<true>(e, f, pix, c0 + 16 * j, tail, m);
        else qdw_finish<false>(e, f, pix, c0 + 16 * j, V::W, m);
        continue;
      }
      // qdw_finish's operations, in its order. The _round_ forms are builtins, not vector
      // arithmetic, so the compiler cannot contract them into an FMA (with has_bias
      // unswitched out of the loop, plain V::mul and V::add would sit side by side).
      V::T v = _mm512_mul_round_ps(f, sc[j], _MM_FROUND_CUR_DIRECTION);
      if (has_bias) v = _mm512_add_round_ps(v, bi[j], _MM_FROUND_CUR_DIRECTION);
      v = V::min(hi, V::max(lo, v));
      if (EPI == EPI_U8) {
        // t = min(v * inv, 512) (NaN -> 512) as qdw_finish; its max(-512, .) is left out:
        // below -512 (or past int32, where vcvtps2dq gives INT32_MIN) the byte is 0 either way
        q[j] = _mm512_cvtps_epi32(V::min(V::mul(v, e.inv), V::set1(512.0f)));
      } else {
        float* yf = reinterpret_cast<float*>(yp) + c0 + 16 * j;
        if (mj) V::storem(yf, m, v);
        else V::store(yf, v);
      }
    }
    if (EPI == EPI_U8) {
      // Saturating packs: int32 -> int16 (exact for [-512, 512], INT32_MIN -> -32768), + zp
      // with int16 saturation, -> uint8 clamped to [0, 255]: clamp(round(t) + zp, 0, 255).
      // The in-lane packs leave vector j's lane l at dword 4 l + j; vpermd puts it back.
      for (int j = NV; j < 4; ++j) q[j] = _mm512_setzero_si512();
      const __m512i w01 = _mm512_adds_epi16(_mm512_packs_epi32(q[0], q[1]), ozp16);
      const __m512i w23 = _mm512_adds_epi16(_mm512_packs_epi32(q[2], q[3]), ozp16);
      const __m512i b = _mm512_permutexvar_epi32(idx, _mm512_packus_epi16(w01, w23));
      uint8_t* yb = reinterpret_cast<uint8_t*>(yp) + c0;
      if (FULL) _mm512_storeu_si512(yb, b);
      else _mm512_mask_storeu_epi8(yb, sm, b);
    }
    }
#pragma GCC unroll 4
    for (int k = 0; k < K - S; ++k)
      for (int i = 0; i < G * NV; ++i) col[k][i] = col[k + S][i];
  }
}

template <int K, int S, int NV, bool TAIL, int R>
void v_block_epi(int epi, const VRows& r, const QDwConvArgs& a, const int8_t* w8, ptrdiff_t Cq,
                 const int32_t* sums, int32_t zp, const QdwEpi& e, ptrdiff_t pix0, ptrdiff_t c0,
                 int tail) {
  if (epi == EPI_U8) v_block<K, S, NV, TAIL, EPI_U8, R>(r, a, w8, Cq, sums, zp, e, pix0, c0, tail);
  else if (epi == EPI_F32) v_block<K, S, NV, TAIL, EPI_F32, R>(r, a, w8, Cq, sums, zp, e, pix0, c0, tail);
  else v_block<K, S, NV, TAIL, EPI_ANY, R>(r, a, w8, Cq, sums, zp, e, pix0, c0, tail);
}

// Output rows [oh, oh + R) of every channel block.
template <int K, int S, int R>
void v_rows_at(const QDwConvArgs& a, ptrdiff_t oh, int epi, const uint8_t* zrow, const int8_t* w8,
               ptrdiff_t Cq, const int32_t* sums, int32_t zp, const QdwEpi& e) {
  constexpr int NR = K + R - 1;
  const ptrdiff_t C = a.C;
  VRows rows;
  for (int kh = 0; kh < NR; ++kh) {
    const ptrdiff_t ih = oh * S - a.pt + kh;
    const bool in = ih >= 0 && ih < a.H;
    rows.p[kh] = in ? a.x + ih * a.W * a.ldx : zrow;
    rows.step[kh] = in ? a.ldx : 0;
  }
  const ptrdiff_t pix0 = oh * a.OW;
  auto at = [&](ptrdiff_t c) {
    VRows rb = rows;
    for (int kh = 0; kh < NR; ++kh) rb.p[kh] += rb.step[kh] ? c : 0;
    return rb;
  };
  ptrdiff_t c0 = 0;
  for (; c0 + kVb <= C; c0 += kVb)
    v_block_epi<K, S, 4, false, R>(epi, at(c0), a, w8, Cq, sums, zp, e, pix0, c0, 16);
  const ptrdiff_t rem = C - c0;
  if (rem <= 0) return;
  const int nv = static_cast<int>((rem + 15) / 16), tail = static_cast<int>(rem - (nv - 1) * 16);
  const VRows rb = at(c0);
  if (tail == 16) {
    switch (nv) {
      case 1: v_block_epi<K, S, 1, false, R>(epi, rb, a, w8, Cq, sums, zp, e, pix0, c0, 16); break;
      case 2: v_block_epi<K, S, 2, false, R>(epi, rb, a, w8, Cq, sums, zp, e, pix0, c0, 16); break;
      default: v_block_epi<K, S, 3, false, R>(epi, rb, a, w8, Cq, sums, zp, e, pix0, c0, 16); break;
    }
  } else {
    switch (nv) {
      case 1: v_block_epi<K, S, 1, true, R>(epi, rb, a, w8, Cq, sums, zp, e, pix0, c0, tail); break;
      case 2: v_block_epi<K, S, 2, true, R>(epi, rb, a, w8, Cq, sums, zp, e, pix0, c0, tail); break;
      case 3: v_block_epi<K, S, 3, true, R>(epi, rb, a, w8, Cq, sums, zp, e, pix0, c0, tail); break;
      default: v_block_epi<K, S, 4, true, R>(epi, rb, a, w8, Cq, sums, zp, e, pix0, c0, tail); break;
    }
  }
}

template <int K, int S>
void v_rows(const QDwConvArgs& a, ptrdiff_t oh0, ptrdiff_t oh1) {
  constexpr int G = (K + 3) / 4;
  const QdwEpi e = qdw_epi(a);
  const int32_t zp = a.ep->a_zp[0];
  const bool plain = e.res == nullptr && (e.act == Act::None || e.act == Act::Relu || e.act == Act::Clip);
  const int epi = !plain ? EPI_ANY : e.u8 ? EPI_U8 : EPI_F32;
  alignas(64) uint8_t zrow[64];
  std::memset(zrow, zp, sizeof(zrow));
  const ptrdiff_t Cq = v_cq(a.C);
  const int8_t* w8 = static_cast<const int8_t*>(a.w) + qdw_packed_bytes(K, K, a.C);
  const int32_t* sums = reinterpret_cast<const int32_t*>(w8 + G * K * Cq * 4);
  ptrdiff_t oh = oh0;
  if (K == 3 && S == 1)  // two output rows per pass: each column of 4 input rows used twice
    for (; oh + 2 <= oh1; oh += 2) v_rows_at<K, S, (K == 3 && S == 1) ? 2 : 1>(a, oh, epi, zrow, w8, Cq, sums, zp, e);
  for (; oh < oh1; ++oh) v_rows_at<K, S, 1>(a, oh, epi, zrow, w8, Cq, sums, zp, e);
}

void v_run(const QDwConvArgs* ap, ptrdiff_t oh0, ptrdiff_t oh1) {
  const QDwConvArgs& a = *ap;
  if (v_kernel(a.KH, a.KW) && a.sh == a.sw && a.dh == 1 && a.dw == 1) {
    if (a.KH == 3 && a.sh == 1) return v_rows<3, 1>(a, oh0, oh1);
    if (a.KH == 3 && a.sh == 2) return v_rows<3, 2>(a, oh0, oh1);
    if (a.KH == 5 && a.sh == 1) return v_rows<5, 1>(a, oh0, oh1);
    if (a.KH == 5 && a.sh == 2) return v_rows<5, 2>(a, oh0, oh1);
  }
  qdw_run(ap, oh0, oh1);
}

}  // namespace
}  // namespace qdw
}  // namespace avx512vnni

void register_qu8_dwconv__avx512vnni(KernelTable& t) {
  t.qu8_dwconv = QDwConvConfig{"qu8_dwconv__avx512vnni", 64, kQDwMaxTaps,
                               avx512vnni::qdw::v_packed_bytes, avx512vnni::qdw::v_pack,
                               avx512vnni::qdw::v_run};
}

}  // namespace pyrt
