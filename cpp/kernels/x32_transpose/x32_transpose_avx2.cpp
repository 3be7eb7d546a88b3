// 32-bit 2-D transpose with AVX2: full 8x8 tiles transposed in registers (unpack, shuffle,
// lane permute); the ragged right/bottom edges element by element.
#include <immintrin.h>

#include <cstddef>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace {

inline void tile8x8(const float* x, ptrdiff_t ldx, float* y, ptrdiff_t ldy) {
  const __m256 r0 = _mm256_loadu_ps(x + 0 * ldx), r1 = _mm256_loadu_ps(x + 1 * ldx);
  const __m256 r2 = _mm256_loadu_ps(x + 2 * ldx), r3 = _mm256_loadu_ps(x + 3 * ldx);
  const __m256 r4 = _mm256_loadu_ps(x + 4 * ldx), r5 = _mm256_loadu_ps(x + 5 * ldx);
  const __m256 r6 = _mm256_loadu_ps(x + 6 * ldx), r7 = _mm256_loadu_ps(x + 7 * ldx);
  // Interleave pairs of rows: t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5] ...
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  // Gather 4-row columns within each 128-bit lane.
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  // Join rows 0-3 (low lanes) with rows 4-7: output row j = input column j.
  _mm256_storeu_ps(y + 0 * ldy, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(y + 1 * ldy, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(y + 2 * ldy, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(y + 3 * ldy, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(y + 4 * ldy, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(y + 5 * ldy, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(y + 6 * ldy, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(y + 7 * ldy, _mm256_permute2f128_ps(u3, u7, 0x31));
}

void transpose(ptrdiff_t rows, ptrdiff_t cols, const float* x, ptrdiff_t ldx, float* y,
               ptrdiff_t ldy) {
  const ptrdiff_t R8 = rows - rows % 8, C8 = cols - cols % 8;
  // Column strips outermost: each output row segment (8 * rows-of-tile floats) is written
  // whole before moving on, while the 8-float reads stream along the input rows.
  for (ptrdiff_t c0 = 0; c0 < C8; c0 += 8) {
    for (ptrdiff_t r0 = 0; r0 < R8; r0 += 8)
      tile8x8(x + r0 * ldx + c0, ldx, y + c0 * ldy + r0, ldy);
    for (ptrdiff_t c = c0; c < c0 + 8; ++c)
      for (ptrdiff_t r = R8; r < rows; ++r) y[c * ldy + r] = x[r * ldx + c];
  }
  for (ptrdiff_t c = C8; c < cols; ++c)
    for (ptrdiff_t r = 0; r < rows; ++r) y[c * ldy + r] = x[r * ldx + c];
}

}  // namespace
}  // namespace avx2

void register_x32_transpose__avx2(KernelTable& t) {
  t.x32_transpose = TransposeConfig{"x32_transpose_8x8__avx2", avx2::transpose};
}

}  // namespace pyrt
