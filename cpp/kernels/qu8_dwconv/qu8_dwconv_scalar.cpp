// qu8_dwconv, plain scalar: the reference and fallback for every shape and kernel size.
// Packed weights are int8 [KH*KW][C]; accumulation is exact in int32 (wrapping uint32
// arithmetic, so a sum past int32 is no undefined behaviour), then the QGemmEpilogue in
// the operation order of the SIMD variants.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace scalar {
namespace {

#include "../common/scalar_act.inc"

size_t qdw_packed_bytes(ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C) {
  return static_cast<size_t>(KH * KW * C);
}

void qdw_pack(const int8_t* w_src, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C, void* out) {
  int8_t* packed = static_cast<int8_t*>(out);
  const ptrdiff_t KK = KH * KW;
  for (ptrdiff_t c = 0; c < C; ++c)
    for (ptrdiff_t t = 0; t < KK; ++t) packed[t * C + c] = w_src[c * KK + t];
}

// x * inv rounded half to even plus zp, clamped to [0, 255] (as qs8_qc8w_gemm).
inline uint8_t quantize_one(float x, float inv, int32_t zp) {
  float t = x * inv;
  t = t > 512.0f ? 512.0f : t;
  t = t < -512.0f ? -512.0f : t;
  if (t != t) t = 512.0f;
  const int32_t q = static_cast<int32_t>(std::nearbyint(t)) + zp;
  return static_cast<uint8_t>(q < 0 ? 0 : (q > 255 ? 255 : q));
}

constexpr ptrdiff_t kChunk = 64;  // channels accumulated at once (on the stack)

void qdw_run(const QDwConvArgs* ap, ptrdiff_t oh0, ptrdiff_t oh1) {
  const QDwConvArgs& a = *ap;
  const QGemmEpilogue& ep = *a.ep;
  const int8_t* w = static_cast<const int8_t*>(a.w);
  const uint32_t zp = static_cast<uint32_t>(ep.a_zp[0]);
  const float as = ep.a_scale[0];
  const float inv = ep.out_u8 ? 1.0f / ep.out_scale : 0.0f;
  const ptrdiff_t C = a.C;
  for (ptrdiff_t oh = oh0; oh < oh1; ++oh) {
    for (ptrdiff_t ow = 0; ow < a.OW; ++ow) {
      const ptrdiff_t pix = oh * a.OW + ow;
      for (ptrdiff_t c0 = 0; c0 < C; c0 += kChunk) {
        const ptrdiff_t n = C - c0 < kChunk ? C - c0 : kChunk;
        uint32_t acc[kChunk] = {};
        for (ptrdiff_t kh = 0; kh < a.KH; ++kh) {
          const ptrdiff_t ih = oh * a.sh - a.pt + kh * a.dh;
          if (ih < 0 || ih >= a.H) continue;
          for (ptrdiff_t kw = 0; kw < a.KW; ++kw) {
            const ptrdiff_t iw = ow * a.sw - a.pl + kw * a.dw;
            if (iw < 0 || iw >= a.W) continue;
            const uint8_t* xp = a.x + (ih * a.W + iw) * a.ldx + c0;
            const int8_t* wp = w + (kh * a.KW + kw) * C + c0;
            for (ptrdiff_t j = 0; j < n; ++j)
              acc[j] += (uint32_t(xp[j]) - zp) * static_cast<uint32_t>(int32_t(wp[j]));
          }
        }
        const float* res = ep.residual ? ep.residual + pix * ep.ldr + c0 : nullptr;
        for (ptrdiff_t j = 0; j < n; ++j) {
          const ptrdiff_t c = c0 + j;
          float v = static_cast<float>(static_cast<int32_t>(acc[j])) * (as * ep.w_scale[c]);
          if (ep.bias) v += ep.bias[c];
          if (res && !ep.residual_after_act) v += res[j];
          v = act_scalar(v, ep.act, ep.lo, ep.hi);
          if (res && ep.residual_after_act) v += res[j];
          if (ep.out_u8)
            static_cast<uint8_t*>(a.y)[pix * a.ldy + c] = quantize_one(v, inv, ep.out_zp);
          else
            static_cast<float*>(a.y)[pix * a.ldy + c] = v;
        }
      }
    }
  }
}

}  // namespace
}  // namespace scalar

void register_qu8_dwconv__scalar(KernelTable& t) {
  t.qu8_dwconv = QDwConvConfig{"qu8_dwconv__scalar", 64, 0, scalar::qdw_packed_bytes,
                               scalar::qdw_pack, scalar::qdw_run};
}

}  // namespace pyrt
