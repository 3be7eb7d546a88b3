// f32 depthwise conv on NCHW planes, plain scalar: the reference and fallback for every
// shape. Padded taps are skipped (the SIMD kernels add +0 * w; see kernels.h).
#include <cmath>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace scalar {
namespace {

#include "../common/scalar_act.inc"

size_t dwc_packed_bytes(ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C) {
  return static_cast<size_t>(C * KH * KW) * sizeof(float);
}

void dwc_pack(const float* w_src, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t C, void* packed) {
  std::memcpy(packed, w_src, sizeof(float) * static_cast<size_t>(C * KH * KW));
}

size_t dwc_scratch_floats(const DwConvChwArgs*) { return 0; }

void dwc_run(const DwConvChwArgs* a, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t oh0, ptrdiff_t oh1,
             float*) {
  const Epilogue none{};
  const Epilogue& ep = a->ep ? *a->ep : none;
  for (ptrdiff_t p = p0; p < p1; ++p) {
    const ptrdiff_t c = p % a->C;
    const float* x = a->x + p * a->H * a->W;
    const float* w = static_cast<const float*>(a->w) + c * a->KH * a->KW;
    Epilogue e = ep;
    e.bias = nullptr;  // one value per plane: added below
    for (ptrdiff_t oh = oh0; oh < oh1; ++oh) {
      float* y = a->y + (p * a->OH + oh) * a->OW;
      for (ptrdiff_t ow = 0; ow < a->OW; ++ow) {
        float acc = ep.bias ? ep.bias[c] : 0.0f;
        for (ptrdiff_t kh = 0; kh < a->KH; ++kh) {
          const ptrdiff_t ih = oh * a->sh - a->pt + kh * a->dh;
          if (ih < 0 || ih >= a->H) continue;
          for (ptrdiff_t kw = 0; kw < a->KW; ++kw) {
            const ptrdiff_t iw = ow * a->sw - a->pl + kw * a->dw;
            if (iw < 0 || iw >= a->W) continue;
            acc += x[ih * a->W + iw] * w[kh * a->KW + kw];
          }
        }
        y[ow] = acc;
      }
      epilogue_strip_scalar(y, a->OW, 0,
                            ep.residual ? ep.residual + (p * a->OH + oh) * ep.ldr : nullptr, e);
    }
  }
}

}  // namespace
}  // namespace scalar

void register_f32_dwconv2d_chw__scalar(KernelTable& t) {
  t.f32_dwconv2d_chw = DwConvChwConfig{"f32_dwconv2d_chw__scalar", 64,
                                       scalar::dwc_packed_bytes, scalar::dwc_pack,
                                       scalar::dwc_scratch_floats, scalar::dwc_run};
}

}  // namespace pyrt
