// f32 depthwise conv, plain scalar: the reference and fallback for every shape.
// NHWC, channel multiplier 1; packed weights are [KH*KW][C] (no padding).
#include <cmath>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace scalar {
namespace {

#include "../common/scalar_act.inc"

size_t dw_packed_bytes(ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C) {
  return static_cast<size_t>(KH * KW * C) * sizeof(float);
}

void dw_pack(const float* w_src, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C, void* out) {
  float* packed = static_cast<float*>(out);
  for (ptrdiff_t c = 0; c < C; ++c)
    for (ptrdiff_t t = 0; t < KH * KW; ++t) packed[t * C + c] = w_src[c * KH * KW + t];
}

void dw_run(const DwConvArgs* a, ptrdiff_t oh0, ptrdiff_t oh1) {
  const ptrdiff_t C = a->C;
  const Epilogue none{};
  const Epilogue& ep = a->ep ? *a->ep : none;  // nullptr = no epilogue
  for (ptrdiff_t oh = oh0; oh < oh1; ++oh) {
    for (ptrdiff_t ow = 0; ow < a->OW; ++ow) {
      const ptrdiff_t pix = oh * a->OW + ow;
      float* yp = a->y + pix * C;
      for (ptrdiff_t c = 0; c < C; ++c) yp[c] = 0.0f;
      for (ptrdiff_t kh = 0; kh < a->KH; ++kh) {
        const ptrdiff_t ih = oh * a->sh - a->pt + kh * a->dh;
        if (ih < 0 || ih >= a->H) continue;
        for (ptrdiff_t kw = 0; kw < a->KW; ++kw) {
          const ptrdiff_t iw = ow * a->sw - a->pl + kw * a->dw;
          if (iw < 0 || iw >= a->W) continue;
          const float* xp = a->x + (ih * a->W + iw) * C;
          const float* wp = static_cast<const float*>(a->w) + (kh * a->KW + kw) * C;
          for (ptrdiff_t c = 0; c < C; ++c) yp[c] += xp[c] * wp[c];
        }
      }
      epilogue_strip_scalar(yp, C, 0, ep.residual ? ep.residual + pix * ep.ldr : nullptr, ep);
    }
  }
}

}  // namespace
}  // namespace scalar

void register_f32_dwconv__scalar(KernelTable& t) {
  t.f32_dwconv = DwConvConfig{"f32_dwconv__scalar", 64, scalar::dw_packed_bytes, scalar::dw_pack,
                              scalar::dw_run};
}

}  // namespace pyrt
