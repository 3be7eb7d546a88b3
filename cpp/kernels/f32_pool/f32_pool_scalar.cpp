// f32 pooling, plain scalar: the reference and fallback. NHWC, one image per call.
// Max skips padded taps and propagates NaN; an output whose window holds no image pixel
// is -inf (max) or 0 (avg). Avg divides by the taps inside the image, or by the taps
// inside the padded image when count_include_pad.
#include <cstddef>

#include "pyrt/kernels.h"

namespace pyrt {
namespace scalar {
namespace {

#include "pool_taps.inc"

// Walks output rows [oh0, oh1): for each output pixel, init(yp) once, tap(yp, xp) for
// every window tap inside the image, then finish(yp, taps inside, oh, ow).
template <class Init, class Tap, class Finish>
void for_each_window(const PoolArgs* a, ptrdiff_t oh0, ptrdiff_t oh1, Init init, Tap tap,
                     Finish finish) {
  for (ptrdiff_t oh = oh0; oh < oh1; ++oh) {
    ptrdiff_t kh0, kh1;
    pool_taps(oh, a->sh, a->pt, a->dh, a->KH, a->H, &kh0, &kh1);
    for (ptrdiff_t ow = 0; ow < a->OW; ++ow) {
      ptrdiff_t kw0, kw1;
      pool_taps(ow, a->sw, a->pl, a->dw, a->KW, a->W, &kw0, &kw1);
      float* yp = a->y + (oh * a->OW + ow) * a->C;
      init(yp);
      for (ptrdiff_t kh = kh0; kh < kh1; ++kh) {
        const ptrdiff_t ih = oh * a->sh - a->pt + kh * a->dh;
        for (ptrdiff_t kw = kw0; kw < kw1; ++kw) {
          const ptrdiff_t iw = ow * a->sw - a->pl + kw * a->dw;
          tap(yp, a->x + (ih * a->W + iw) * a->C);
        }
      }
      finish(yp, (kh1 - kh0) * (kw1 - kw0), oh, ow);
    }
  }
}

void maxpool(const PoolArgs* a, ptrdiff_t oh0, ptrdiff_t oh1) {
  const ptrdiff_t C = a->C;
  for_each_window(
      a, oh0, oh1, [C](float* yp) { for (ptrdiff_t c = 0; c < C; ++c) yp[c] = -__builtin_inff(); },
      [C](float* yp, const float* xp) {
        for (ptrdiff_t c = 0; c < C; ++c) {
          const float v = xp[c];
          if (v > yp[c] || v != v) {
            if (yp[c] == yp[c]) yp[c] = v;  // once NaN, stays NaN
          }
        }
      },
      [](float*, ptrdiff_t, ptrdiff_t, ptrdiff_t) {});
}

void avgpool(const PoolArgs* a, ptrdiff_t oh0, ptrdiff_t oh1) {
  const ptrdiff_t C = a->C;
  for_each_window(
      a, oh0, oh1, [C](float* yp) { for (ptrdiff_t c = 0; c < C; ++c) yp[c] = 0.0f; },
      [C](float* yp, const float* xp) { for (ptrdiff_t c = 0; c < C; ++c) yp[c] += xp[c]; },
      [a, C](float* yp, ptrdiff_t inside, ptrdiff_t oh, ptrdiff_t ow) {
        const ptrdiff_t count = a->count_include_pad ? padded_taps(a, oh, ow) : inside;
        if (count == 0) return;  // empty window: 0
        const float inv = 1.0f / static_cast<float>(count);
        for (ptrdiff_t c = 0; c < C; ++c) yp[c] *= inv;
      });
}

void global_avgpool(const float* x, ptrdiff_t HW, ptrdiff_t C, float* y) {
  for (ptrdiff_t c = 0; c < C; ++c) y[c] = 0.0f;
  for (ptrdiff_t p = 0; p < HW; ++p)
    for (ptrdiff_t c = 0; c < C; ++c) y[c] += x[p * C + c];
  if (HW == 0) return;
  const float inv = 1.0f / static_cast<float>(HW);
  for (ptrdiff_t c = 0; c < C; ++c) y[c] *= inv;
}

}  // namespace
}  // namespace scalar

void register_f32_pool__scalar(KernelTable& t) {
  t.f32_pool = PoolConfig{"f32_pool__scalar", scalar::maxpool, scalar::avgpool,
                      scalar::global_avgpool};
}

}  // namespace pyrt
