// f32 elementwise ops, plain scalar: the reference and fallback.
#include <cmath>

#include "pyrt/kernels.h"

namespace pyrt {
namespace scalar {
namespace {

#include "../common/scalar_act.inc"

void add(ptrdiff_t n, const float* a, ptrdiff_t sa, const float* b, ptrdiff_t sb, float* y) {
  for (ptrdiff_t i = 0; i < n; ++i) y[i] = a[i * sa] + b[i * sb];
}

void activation(ptrdiff_t n, const float* x, float* y, Act act, float lo, float hi) {
  for (ptrdiff_t i = 0; i < n; ++i) y[i] = act_scalar(x[i], act, lo, hi);
}

void epilogue(ptrdiff_t rows, ptrdiff_t cols, float* y, ptrdiff_t ld, const Epilogue* ep) {
  if (!ep) return;
  for (ptrdiff_t r = 0; r < rows; ++r)
    epilogue_strip_scalar(y + r * ld, cols, 0, ep->residual ? ep->residual + r * ep->ldr : nullptr,
                          *ep);
}

// Numerically stable: exp(x - rowmax). A row holding NaN or +inf gives NaN (as numpy).
void softmax(ptrdiff_t rows, ptrdiff_t cols, const float* x, float* y) {
  for (ptrdiff_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float m = -__builtin_inff();
    for (ptrdiff_t i = 0; i < cols; ++i) m = xr[i] > m ? xr[i] : m;
    float s = 0.0f;
    for (ptrdiff_t i = 0; i < cols; ++i) {
      const float e = std::exp(xr[i] - m);
      yr[i] = e;
      s += e;
    }
    const float inv = 1.0f / s;
    for (ptrdiff_t i = 0; i < cols; ++i) yr[i] *= inv;
  }
}

}  // namespace
}  // namespace scalar

void register_f32_eltwise__scalar(KernelTable& t) {
  t.f32_eltwise = EltwiseConfig{"f32_eltwise__scalar", scalar::add, scalar::activation,
                            scalar::epilogue, scalar::softmax};
}

}  // namespace pyrt
