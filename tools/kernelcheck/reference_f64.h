// float64 reference of every kernel family, for `kernel_check scalar`: the scalar table
// is the reference the SIMD tables are held to, so it is held to plain double loops
// written here from the definitions in cpp/include/pyrt/kernels.h (independent of the
// kernels' code). Each result comes with a bound on the float32 error a correct kernel
// may make: `Ref` holds the double value and that tolerance per element.
//
// Error model (eps = 2^-24, the float32 unit roundoff): a float32 sum of K products is
// within about K * eps * sum|a_k b_k| of the exact one, in any order, with or without
// FMA; each later float32 operation (bias, residual, division) adds eps * |its
// operands|; an activation scales the error of its input by at most its largest slope
// and adds its own few ulp (libm, vector math).
#pragma once
#include <cmath>
#include <cstddef>
#include <vector>

#include "pyrt/kernels.h"

namespace kref {

using pyrt::Act;
using pyrt::Epilogue;

constexpr double kEps = 1.0 / 16777216.0;  // 2^-24

struct Ref {
  std::vector<double> v;    // exact (double) result
  std::vector<double> tol;  // allowed |float32 result - v|
  explicit Ref(size_t n) : v(n, 0.0), tol(n, 0.0) {}
};

inline double act(double x, Act a, double lo, double hi) {
  switch (a) {
    case Act::None: return x;
    case Act::Relu: return x < 0 ? 0.0 : x;  // NaN stays NaN
    case Act::Clip:
      if (std::isnan(x)) return x;
      if (lo > hi) return hi;  // np.clip / ONNX: every element is max
      return x < lo ? lo : (x > hi ? hi : x);
    case Act::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case Act::Tanh: return std::tanh(x);
    case Act::Gelu:
      if (x == -INFINITY) return 0.0;  // the limit
      return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440));
  }
  return NAN;
}

// Largest |d act / dx|: how much an error of the input can grow.
inline double slope(Act a) {
  switch (a) {
    case Act::Sigmoid: return 0.25;
    case Act::Gelu: return 1.13;
    default: return 1.0;
  }
}

// The activation's own error: a few ulp of the result, and an absolute floor for the
// libm/vector-math approximations near zero crossings and in gelu's far-left tail.
inline double act_tol(Act a, double y) {
  if (a == Act::None || a == Act::Relu || a == Act::Clip) return 0.0;
  return 1e-6 + 8.0 * kEps * std::fabs(y);
}

// Applies the epilogue at output (row, col) to an accumulator `acc` whose error bound is
// `err`; writes the value and tolerance.
inline void finish(double acc, double err, ptrdiff_t row, ptrdiff_t col, const Epilogue& ep,
                   double* out, double* tol) {
  double v = acc;
  if (ep.bias) {
    v += ep.bias[col];
    err += kEps * (std::fabs(acc) + std::fabs(ep.bias[col]));
  }
  const float* res = ep.residual;
  if (res && !ep.residual_after_act) {
    const double r = res[row * ep.ldr + col];
    err += kEps * (std::fabs(v) + std::fabs(r));
    v += r;
  }
  v = act(v, ep.act, ep.lo, ep.hi);
  err = slope(ep.act) * err + act_tol(ep.act, v) + kEps * std::fabs(v);
  if (res && ep.residual_after_act) {
    const double r = res[row * ep.ldr + col];
    err += kEps * (std::fabs(v) + std::fabs(r));
    v += r;
  }
  *out = v;
  *tol = err + kEps * std::fabs(v);
}

// Error bound of a float32 dot product of length k whose |terms| sum to mag.
inline double dot_err(ptrdiff_t k, double mag) { return 2.0 * double(k + 1) * kEps * mag; }

// C[M, N] = ep(A @ B): A row stride lda, B [K, N] dense, C row stride ldc.
inline Ref gemm(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float* A, ptrdiff_t lda,
                const float* B, ptrdiff_t ldc, const Epilogue& ep) {
  Ref r(static_cast<size_t>((M - 1) * ldc + N));
  for (ptrdiff_t i = 0; i < M; ++i)
    for (ptrdiff_t j = 0; j < N; ++j) {
      double s = 0, mag = 0;
      for (ptrdiff_t k = 0; k < K; ++k) {
        const double t = double(A[i * lda + k]) * double(B[k * N + j]);
        s += t;
        mag += std::fabs(t);
      }
      finish(s, dot_err(K, mag), i, j, ep, &r.v[i * ldc + j], &r.tol[i * ldc + j]);
    }
  return r;
}

// Depthwise conv, one NHWC image, weights in the ONNX layout [C][KH][KW].
inline Ref dwconv(const pyrt::DwConvArgs& a, const float* w_onnx, const Epilogue& ep) {
  const ptrdiff_t C = a.C;
  Ref r(static_cast<size_t>(a.OH * a.OW * C));
  for (ptrdiff_t oh = 0; oh < a.OH; ++oh)
    for (ptrdiff_t ow = 0; ow < a.OW; ++ow)
      for (ptrdiff_t c = 0; c < C; ++c) {
        double s = 0, mag = 0;
        ptrdiff_t taps = 0;
        for (ptrdiff_t kh = 0; kh < a.KH; ++kh) {
          const ptrdiff_t ih = oh * a.sh - a.pt + kh * a.dh;
          if (ih < 0 || ih >= a.H) continue;
          for (ptrdiff_t kw = 0; kw < a.KW; ++kw) {
            const ptrdiff_t iw = ow * a.sw - a.pl + kw * a.dw;
            if (iw < 0 || iw >= a.W) continue;
            const double t = double(a.x[(ih * a.W + iw) * C + c]) *
                             double(w_onnx[(c * a.KH + kh) * a.KW + kw]);
            s += t;
            mag += std::fabs(t);
            ++taps;
          }
        }
        const ptrdiff_t pix = oh * a.OW + ow;
        finish(s, dot_err(taps, mag), pix, c, ep, &r.v[pix * C + c], &r.tol[pix * C + c]);
      }
  return r;
}

// Max / average pooling, one NHWC image (PoolArgs semantics in kernels.h): padded
// positions are skipped; a NaN in a max window gives NaN; average divides by the taps
// inside the image, or with count_include_pad by those inside the padded image.
inline Ref pool(const pyrt::PoolArgs& a, bool is_max) {
  const ptrdiff_t C = a.C;
  Ref r(static_cast<size_t>(a.OH * a.OW * C));
  for (ptrdiff_t oh = 0; oh < a.OH; ++oh)
    for (ptrdiff_t ow = 0; ow < a.OW; ++ow)
      for (ptrdiff_t c = 0; c < C; ++c) {
        double s = is_max ? -INFINITY : 0.0, mag = 0;
        bool nan = false;
        ptrdiff_t inside = 0, padded = 0;
        for (ptrdiff_t kh = 0; kh < a.KH; ++kh) {
          const ptrdiff_t ih = oh * a.sh - a.pt + kh * a.dh;
          for (ptrdiff_t kw = 0; kw < a.KW; ++kw) {
            const ptrdiff_t iw = ow * a.sw - a.pl + kw * a.dw;
            if (ih >= -a.pt && ih < a.H + a.pb && iw >= -a.pl && iw < a.W + a.pr) ++padded;
            if (ih < 0 || ih >= a.H || iw < 0 || iw >= a.W) continue;
            const double x = a.x[(ih * a.W + iw) * C + c];
            ++inside;
            if (std::isnan(x)) nan = true;
            if (is_max) s = x > s ? x : s;
            else { s += x; mag += std::fabs(x); }
          }
        }
        const size_t o = static_cast<size_t>((oh * a.OW + ow) * C + c);
        if (is_max) {
          r.v[o] = nan ? NAN : s;  // exact: a max of floats is one of them
          continue;
        }
        const ptrdiff_t n = a.count_include_pad ? padded : inside;
        r.v[o] = s / double(n);
        r.tol[o] = (dot_err(inside, mag) + kEps * mag) / double(n) + kEps * std::fabs(r.v[o]);
      }
  return r;
}

inline Ref global_avgpool(const float* x, ptrdiff_t HW, ptrdiff_t C) {
  Ref r(static_cast<size_t>(C));
  for (ptrdiff_t c = 0; c < C; ++c) {
    double s = 0, mag = 0;
    for (ptrdiff_t p = 0; p < HW; ++p) {
      s += x[p * C + c];
      mag += std::fabs(x[p * C + c]);
    }
    r.v[c] = s / double(HW);
    r.tol[c] = dot_err(HW, mag) / double(HW) + 2.0 * kEps * std::fabs(r.v[c]);
  }
  return r;
}

// y = a + b (one float32 addition: correctly rounded, so within half an ulp).
inline Ref add(ptrdiff_t n, const float* a, ptrdiff_t sa, const float* b, ptrdiff_t sb) {
  Ref r(static_cast<size_t>(n));
  for (ptrdiff_t i = 0; i < n; ++i) {
    r.v[i] = double(a[i * sa]) + double(b[i * sb]);
    r.tol[i] = kEps * std::fabs(r.v[i]);
  }
  return r;
}

// y = act(x): the activation's own error only (the input is exact).
inline Ref activation(ptrdiff_t n, const float* x, Act a, float lo, float hi) {
  Ref r(static_cast<size_t>(n));
  for (ptrdiff_t i = 0; i < n; ++i) {
    r.v[i] = act(x[i], a, lo, hi);
    r.tol[i] = act_tol(a, r.v[i]) + (a == Act::None || a == Act::Relu || a == Act::Clip
                                         ? 0.0 : kEps * std::fabs(r.v[i]));
  }
  return r;
}

// Softmax over rows of a rows x cols block: a row holding NaN or +inf is all NaN.
inline Ref softmax(ptrdiff_t rows, ptrdiff_t cols, const float* x) {
  Ref r(static_cast<size_t>(rows * cols));
  for (ptrdiff_t i = 0; i < rows; ++i) {
    const float* xr = x + i * cols;
    double mx = -INFINITY;
    bool bad = false;
    for (ptrdiff_t j = 0; j < cols; ++j) {
      if (std::isnan(xr[j]) || xr[j] == INFINITY) bad = true;
      mx = xr[j] > mx ? xr[j] : mx;
    }
    double sum = 0;
    for (ptrdiff_t j = 0; j < cols; ++j) sum += std::exp(double(xr[j]) - mx);
    for (ptrdiff_t j = 0; j < cols; ++j) {
      const size_t o = static_cast<size_t>(i * cols + j);
      r.v[o] = bad ? NAN : std::exp(double(xr[j]) - mx) / sum;
      // exp's few ulp, the sum's K * eps, the division's rounding
      r.tol[o] = 1e-7 + (8.0 + 2.0 * double(cols + 1)) * kEps * std::fabs(r.v[o]);
    }
  }
  return r;
}

}  // namespace kref
