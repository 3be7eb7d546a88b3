// f32 sparse x dense, portable: the reference and fallback of the f32_spmm entry.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace scalar {
namespace {

#include "f32_spmm_packed.inc"

template <class Idx>
void spmv_t(const Packed& p, const float* x, float* y, ptrdiff_t g0, ptrdiff_t g1) {
  const int64_t* ptr = p.ptr;
  const Idx* idx = reinterpret_cast<const Idx*>(p.idx);
  const float* val = p.val;
  const ptrdiff_t R = p.h.R;
  float acc[16];
  for (ptrdiff_t g = g0; g < g1; ++g) {
    for (ptrdiff_t r = 0; r < R; ++r) acc[r] = 0.0f;
    for (int64_t b = ptr[g]; b < ptr[g + 1]; ++b) {
      const float xv = x[idx[b]];
      for (ptrdiff_t r = 0; r < R; ++r) acc[r] += xv * val[b * R + r];
    }
    for (ptrdiff_t r = 0; r < R && g * R + r < p.h.N; ++r) y[g * R + r] = acc[r];
  }
}

void spmv(const float* x, const void* packed, float* y, ptrdiff_t g0, ptrdiff_t g1) {
  const Packed p = open_packed(packed);
  if (p.h.idx_bytes == 2)
    spmv_t<uint16_t>(p, x, y, g0, g1);
  else
    spmv_t<int32_t>(p, x, y, g0, g1);
}

constexpr ptrdiff_t kMt = 16;

template <class Idx>
void spmm_t(const Packed& p, const float* At, ptrdiff_t cols, float* Ct, ptrdiff_t g0,
            ptrdiff_t g1) {
  const int64_t* ptr = p.ptr;
  const Idx* idx = reinterpret_cast<const Idx*>(p.idx);
  const float* val = p.val;
  const ptrdiff_t R = p.h.R;
  for (ptrdiff_t g = g0; g < g1; ++g) {
    float* out = Ct + (g - g0) * R * kMt;
    for (ptrdiff_t i = 0; i < R * kMt; ++i) out[i] = 0.0f;
    for (int64_t b = ptr[g]; b < ptr[g + 1]; ++b) {
      const float* a = At + ptrdiff_t(idx[b]) * kMt;
      for (ptrdiff_t r = 0; r < R; ++r) {
        const float w = val[b * R + r];
        for (ptrdiff_t j = 0; j < cols; ++j) out[r * kMt + j] += w * a[j];
      }
    }
  }
}

void spmm(const float* At, ptrdiff_t cols, const void* packed, float* Ct, ptrdiff_t g0,
          ptrdiff_t g1) {
  const Packed p = open_packed(packed);
  if (p.h.idx_bytes == 2)
    spmm_t<uint16_t>(p, At, cols, Ct, g0, g1);
  else
    spmm_t<int32_t>(p, At, cols, Ct, g0, g1);
}

}  // namespace
}  // namespace scalar

void register_f32_spmm__scalar(KernelTable& t) {
  t.f32_spmm = SpmmConfig{"f32_spmm__scalar", int32_t(scalar::kMt), 64, f32_spmm_packed_bytes,
                          f32_spmm_pack, scalar::spmv, scalar::spmm, 0, nullptr};
}

}  // namespace pyrt
