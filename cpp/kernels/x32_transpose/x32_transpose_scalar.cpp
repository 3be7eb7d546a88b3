// 32-bit 2-D transpose, portable: 8x8 tiles so reads and writes both stay in a few lines.
#include <cstddef>

#include "pyrt/kernels.h"

namespace pyrt {
namespace scalar {
namespace {

void transpose(ptrdiff_t rows, ptrdiff_t cols, const float* x, ptrdiff_t ldx, float* y,
               ptrdiff_t ldy) {
  constexpr ptrdiff_t B = 8;
  for (ptrdiff_t c0 = 0; c0 < cols; c0 += B) {
    const ptrdiff_t c1 = c0 + B < cols ? c0 + B : cols;
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += B) {
      const ptrdiff_t r1 = r0 + B < rows ? r0 + B : rows;
      for (ptrdiff_t c = c0; c < c1; ++c)
        for (ptrdiff_t r = r0; r < r1; ++r) y[c * ldy + r] = x[r * ldx + c];
    }
  }
}

}  // namespace
}  // namespace scalar

void register_x32_transpose__scalar(KernelTable& t) {
  t.x32_transpose = TransposeConfig{"x32_transpose_8x8__scalar", scalar::transpose};
}

}  // namespace pyrt
