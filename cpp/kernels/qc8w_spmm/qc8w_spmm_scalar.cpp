// f32 activations x int8 sparse weights, portable: the reference and fallback of the
// qc8w_spmm entry.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace scalar {
namespace {

#include "qc8w_spmm_packed.inc"

template <class Idx>
void spmv_t(const QPacked& p, const float* x, float* y, ptrdiff_t g0, ptrdiff_t g1) {
  const Idx* idx = reinterpret_cast<const Idx*>(p.idx);
  const ptrdiff_t R = p.h.R;
  float acc[16];
  for (ptrdiff_t g = g0; g < g1; ++g) {
    for (ptrdiff_t r = 0; r < R; ++r) acc[r] = 0.0f;
    for (int64_t b = p.ptr[g]; b < p.ptr[g + 1]; ++b) {
      const float xv = x[idx[b]];
      for (ptrdiff_t r = 0; r < R; ++r) acc[r] += xv * float(p.val[b * R + r]);
    }
    for (ptrdiff_t r = 0; r < R && g * R + r < p.h.N; ++r)
      y[g * R + r] = acc[r] * p.scale[g * R + r];
  }
}

void spmv(const float* x, const void* packed, float* y, ptrdiff_t g0, ptrdiff_t g1) {
  const QPacked p = open_qpacked(packed);
  if (p.h.idx_bytes == 2)
    spmv_t<uint16_t>(p, x, y, g0, g1);
  else
    spmv_t<int32_t>(p, x, y, g0, g1);
}

}  // namespace
}  // namespace scalar

void register_qc8w_spmm__scalar(KernelTable& t) {
  t.qc8w_spmm = QSpmmConfig{"qc8w_spmm__scalar", 64, qc8w_spmm_packed_bytes, qc8w_spmm_pack,
                            scalar::spmv};
}

}  // namespace pyrt
