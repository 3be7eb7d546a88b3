// f32 GEMM, portable scalar version: the reference and the fallback.
//
// B[K, N] is packed into panels of kNr columns, [ceil(N / kNr)][K][kNr], zero padded
// on the right, so the inner loop reads one contiguous row of kNr weights per k.
// Rows are taken kMr at a time into a small accumulator array that the compiler keeps
// in (baseline SSE) registers. No K blocking: this version favours plain over fast.
#include <cmath>
#include <cstddef>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace {

constexpr int kMr = 4;
constexpr int kNr = 8;

ptrdiff_t num_panels(ptrdiff_t N) { return (N + kNr - 1) / kNr; }

size_t packed_bytes(ptrdiff_t K, ptrdiff_t N) {
  if (K <= 0 || N <= 0) return 0;
  return static_cast<size_t>(num_panels(N)) * static_cast<size_t>(K) * kNr * sizeof(float);
}

void pack(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, void* out) {
  float* packed = static_cast<float*>(out);
  const ptrdiff_t np = num_panels(N);
  for (ptrdiff_t p = 0; p < np; ++p) {
    const ptrdiff_t c0 = p * kNr;
    const ptrdiff_t w = N - c0 < kNr ? N - c0 : kNr;
    for (ptrdiff_t k = 0; k < K; ++k) {
      float* dst = packed + (p * K + k) * kNr;
      const float* src = B + k * ldb + c0;
      for (ptrdiff_t c = 0; c < w; ++c) dst[c] = src[c];
      for (ptrdiff_t c = w; c < kNr; ++c) dst[c] = 0.0f;
    }
  }
}

#include "../common/scalar_act.inc"  // act_scalar: the activations shared by the scalar kernels

// One output element through the epilogue (see Epilogue in kernels.h).
float finish(float acc, ptrdiff_t row, ptrdiff_t col, const Epilogue* ep) {
  if (ep == nullptr) return acc;
  float v = acc;
  if (ep->bias) v += ep->bias[col];
  const float* res = ep->residual;
  if (res && !ep->residual_after_act) v += res[row * ep->ldr + col];
  v = act_scalar(v, ep->act, ep->lo, ep->hi);
  if (res && ep->residual_after_act) v += res[row * ep->ldr + col];
  return v;
}

template <int MR>
void tile(ptrdiff_t i0, ptrdiff_t K, const float* A, ptrdiff_t lda, const float* Bp,
          float* C, ptrdiff_t ldc, ptrdiff_t c0, ptrdiff_t w, const Epilogue* ep) {
  float acc[MR][kNr] = {};
  const float* a = A + i0 * lda;
  for (ptrdiff_t k = 0; k < K; ++k) {
    const float* b = Bp + k * kNr;
    for (int r = 0; r < MR; ++r) {
      const float av = a[r * lda + k];
      for (int c = 0; c < kNr; ++c) acc[r][c] += av * b[c];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (ptrdiff_t c = 0; c < w; ++c)
      C[(i0 + r) * ldc + c0 + c] = finish(acc[r][c], i0 + r, c0 + c, ep);
}

void run(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float* A, ptrdiff_t lda,
         const void* packed_bytes, float* C, ptrdiff_t ldc, const Epilogue* ep, ptrdiff_t n0,
         ptrdiff_t n1) {
  const float* packed = static_cast<const float*>(packed_bytes);
  if (n1 > N) n1 = N;
  if (M <= 0 || n1 <= n0) return;
  for (ptrdiff_t p = n0 / kNr; p * kNr < n1; ++p) {
    const ptrdiff_t c0 = p * kNr;
    const ptrdiff_t w = n1 - c0 < kNr ? n1 - c0 : kNr;
    const float* Bp = packed + p * K * kNr;
    ptrdiff_t i = 0;
    for (; i + kMr <= M; i += kMr) tile<kMr>(i, K, A, lda, Bp, C, ldc, c0, w, ep);
    for (; i < M; ++i) tile<1>(i, K, A, lda, Bp, C, ldc, c0, w, ep);
  }
}

}  // namespace

void register_f32_gemm__scalar(KernelTable& t) {
  t.f32_gemm = GemmConfig{"f32_gemm_4x8__scalar", kMr, kNr, 64, packed_bytes, pack, run, nullptr};
}

}  // namespace pyrt
