// qs8_qc8w_gemm, portable scalar version: the reference and the fallback.
//
// Packed B: panels of kNr columns, each [colsum int32 [kNr]][ceil(K / 4)][kNr][4] int8
// (the VNNI layout of the SIMD files, zero padded past K and past N), so the SIMD
// kernels' shape is mirrored here without their instructions. Accumulation is exact in
// int32 (products of u8 and s8 summed in wrapping uint32 arithmetic: the sum fits
// int32 whenever the true one does, and there is no undefined overflow on the way).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace {

constexpr int kMr = 4;
constexpr int kNr = 8;

ptrdiff_t num_panels(ptrdiff_t N) { return (N + kNr - 1) / kNr; }
ptrdiff_t groups(ptrdiff_t K) { return (K + 3) / 4; }
size_t panel_bytes(ptrdiff_t K) { return size_t(kNr) * 4 + size_t(groups(K)) * kNr * 4; }

size_t packed_bytes(ptrdiff_t K, ptrdiff_t N) {
  if (K < 0 || N <= 0) return 0;
  return size_t(num_panels(N)) * panel_bytes(K);
}

void pack(ptrdiff_t K, ptrdiff_t N, const int8_t* B, ptrdiff_t ldb, void* out) {
  unsigned char* base = static_cast<unsigned char*>(out);
  const ptrdiff_t np = num_panels(N), kg = groups(K);
  for (ptrdiff_t p = 0; p < np; ++p) {
    unsigned char* panel = base + size_t(p) * panel_bytes(K);
    int32_t sums[kNr] = {};
    int8_t* w = reinterpret_cast<int8_t*>(panel + kNr * 4);
    for (ptrdiff_t g = 0; g < kg; ++g)
      for (int c = 0; c < kNr; ++c)
        for (int j = 0; j < 4; ++j) {
          const ptrdiff_t k = 4 * g + j, col = p * kNr + c;
          const int8_t v = (k < K && col < N) ? B[k * ldb + col] : int8_t(0);
          w[(g * kNr + c) * 4 + j] = v;
          sums[c] += v;
        }
    std::memcpy(panel, sums, sizeof sums);
  }
}

#include "../common/scalar_act.inc"  // act_scalar

// x * inv rounded half to even plus zp, clamped to [0, 255]; the float clamp first keeps
// the conversion defined for huge or NaN values.
inline uint8_t quantize_one(float x, float inv, int32_t zp) {
  float t = x * inv;
  t = t > 512.0f ? 512.0f : t;
  t = t < -512.0f ? -512.0f : t;
  if (t != t) t = 512.0f;  // NaN: as the SIMD kernels' min/max (an undefined value)
  const int32_t q = static_cast<int32_t>(std::nearbyint(t)) + zp;
  return static_cast<uint8_t>(q < 0 ? 0 : (q > 255 ? 255 : q));
}

// One output element through the epilogue (QGemmEpilogue in kernels.h).
void finish(int32_t acc, int32_t colsum, ptrdiff_t m, ptrdiff_t n, const QGemmEpilogue* ep,
            void* C, ptrdiff_t ldc) {
  const ptrdiff_t ar = m * ep->a_stride;
  const int32_t x = static_cast<int32_t>(static_cast<uint32_t>(acc) -
                                         static_cast<uint32_t>(ep->a_zp[ar]) * static_cast<uint32_t>(colsum));
  const float s = ep->a_scale[ar] * ep->w_scale[n];
  const bool res_late = ep->residual_after_act && ep->act != Act::None;
  if (ep->out_u8 && !ep->residual && !(ep->residual_u8 && res_late) &&
      (ep->act == Act::None || ep->act == Act::Relu || ep->act == Act::Clip)) {
    // As the SIMD kernels (kernels.h): one FMA to the quantized value plus the zero
    // point, clamped there to the activation's bounds within [0, 255] (NaN: the lower).
    const float inv = 1.0f / ep->out_scale, z = float(ep->out_zp);
    float lo = 0.0f, hi = 255.0f;
    if (ep->act == Act::Relu) lo = lo > z ? lo : z;
    if (ep->act == Act::Clip) {
      const float cl = ep->lo * inv + z, ch = ep->hi * inv + z;
      lo = lo > cl ? lo : cl;
      hi = hi < ch ? hi : ch;
    }
    const float rsi = ep->res_scale * inv;
    const float b = (ep->bias ? ep->bias[n] * inv : 0.0f) + z -
                    (ep->residual_u8 ? float(ep->res_zp) * rsi : 0.0f);
    float t = std::fma(static_cast<float>(x), s * inv, b);
    if (ep->residual_u8) t = std::fma(float(ep->residual_u8[m * ep->ldr + n]), rsi, t);
    t = t > lo ? t : lo;
    t = t < hi ? t : hi;
    static_cast<uint8_t*>(C)[m * ldc + n] = static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(t)));
    return;
  }
  float v = static_cast<float>(x) * s;
  if (ep->bias) v += ep->bias[n];
  const bool has_res = ep->residual || ep->residual_u8;
  // a uint8 residual: its zero point subtracted exactly, then scaled
  const float r = ep->residual      ? ep->residual[m * ep->ldr + n]
                  : ep->residual_u8 ? float(int32_t(ep->residual_u8[m * ep->ldr + n]) - ep->res_zp) * ep->res_scale
                                    : 0.0f;
  if (has_res && !ep->residual_after_act) v += r;
  v = act_scalar(v, ep->act, ep->lo, ep->hi);
  if (has_res && ep->residual_after_act) v += r;
  if (ep->out_u8)
    static_cast<uint8_t*>(C)[m * ldc + n] = quantize_one(v, 1.0f / ep->out_scale, ep->out_zp);
  else
    static_cast<float*>(C)[m * ldc + n] = v;
}

template <int MR>
void tile(ptrdiff_t i0, ptrdiff_t K, const uint8_t* A, ptrdiff_t lda, const unsigned char* panel,
          void* C, ptrdiff_t ldc, ptrdiff_t c0, ptrdiff_t w, const QGemmEpilogue* ep) {
  uint32_t acc[MR][kNr] = {};
  int32_t colsum[kNr];
  std::memcpy(colsum, panel, sizeof colsum);
  const int8_t* b = reinterpret_cast<const int8_t*>(panel + kNr * 4);
  for (ptrdiff_t k = 0; k < K; ++k) {
    const int8_t* bk = b + (k / 4) * kNr * 4 + (k % 4);
    for (int r = 0; r < MR; ++r) {
      const uint32_t a = A[(i0 + r) * lda + k];
      for (int c = 0; c < kNr; ++c) acc[r][c] += a * static_cast<uint32_t>(int32_t(bk[c * 4]));
    }
  }
  for (int r = 0; r < MR; ++r)
    for (ptrdiff_t c = 0; c < w; ++c)
      finish(static_cast<int32_t>(acc[r][c]), colsum[c], i0 + r, c0 + c, ep, C, ldc);
}

void run(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const uint8_t* A, ptrdiff_t lda,
         const void* packed, void* C, ptrdiff_t ldc, const QGemmEpilogue* ep, ptrdiff_t n0,
         ptrdiff_t n1) {
  if (n1 > N) n1 = N;
  if (M <= 0 || n1 <= n0 || K < 0) return;
  const unsigned char* base = static_cast<const unsigned char*>(packed);
  for (ptrdiff_t p = n0 / kNr; p * kNr < n1; ++p) {
    const ptrdiff_t c0 = p * kNr;
    const ptrdiff_t w = n1 - c0 < kNr ? n1 - c0 : kNr;
    const unsigned char* panel = base + size_t(p) * panel_bytes(K);
    ptrdiff_t i = 0;
    for (; i + kMr <= M; i += kMr) tile<kMr>(i, K, A, lda, panel, C, ldc, c0, w, ep);
    for (; i < M; ++i) tile<1>(i, K, A, lda, panel, C, ldc, c0, w, ep);
  }
}

void quantize_rows(ptrdiff_t M, ptrdiff_t K, const float* A, ptrdiff_t lda, uint8_t* Q,
                   ptrdiff_t ldq, float* scale, int32_t* zp) {
  for (ptrdiff_t m = 0; m < M; ++m) {
    const float* x = A + m * lda;
    float lo = 0.0f, hi = 0.0f;
    for (ptrdiff_t k = 0; k < K; ++k) {
      lo = x[k] < lo ? x[k] : lo;
      hi = x[k] > hi ? x[k] : hi;
    }
    const float s = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    const float z = std::nearbyint(-lo / s);
    const int32_t zi = !(z >= 0.0f) ? 0 : (z > 255.0f ? 255 : static_cast<int32_t>(z));
    const float inv = 1.0f / s;
    for (ptrdiff_t k = 0; k < K; ++k) Q[m * ldq + k] = quantize_one(x[k], inv, zi);
    scale[m] = s;
    zp[m] = zi;
  }
}

void quantize(ptrdiff_t M, ptrdiff_t K, const float* A, ptrdiff_t lda, uint8_t* Q,
              ptrdiff_t ldq, float scale, int32_t zp) {
  const float inv = 1.0f / scale;
  for (ptrdiff_t m = 0; m < M; ++m)
    for (ptrdiff_t k = 0; k < K; ++k) Q[m * ldq + k] = quantize_one(A[m * lda + k], inv, zp);
}

}  // namespace

void register_qs8_qc8w_gemm__scalar(KernelTable& t) {
  t.qs8_qc8w_gemm = QGemmConfig{"qs8_qc8w_gemm_4x8__scalar", kMr, kNr, 64, packed_bytes, pack,
                                run, quantize_rows, quantize};
}

}  // namespace pyrt
