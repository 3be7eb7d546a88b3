// 32-bit 2-D transpose with AVX2: full 8x8 tiles transposed in registers (unpack, shuffle,
// lane permute); the last rows of a column strip as a zero-padded tile with masked
// stores; the ragged right edge element by element.
#include <immintrin.h>

#include <cstddef>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace {

// r[0..8) (8 rows of 8) -> o[0..8) (its 8 columns), in registers.
inline void transpose8(const __m256 (&r)[8], __m256 (&o)[8]) {
  // Interleave pairs of rows: t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5] ...
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
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
  o[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  o[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  o[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  o[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  o[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  o[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  o[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  o[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

inline void tile8x8(const float* x, ptrdiff_t ldx, float* y, ptrdiff_t ldy) {
  __m256 r[8], o[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(x + i * ldx);
  transpose8(r, o);
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(y + i * ldy, o[i]);
}

// The last nr < 8 rows of a strip of 8 columns: the missing rows read as zeros and only
// the first nr lanes of each output row are stored. An NCHW image with 3 channels is one
// such strip per 8 pixels (NHWC rows of 3 floats).
inline void tile_rows_x8(int nr, const float* x, ptrdiff_t ldx, float* y, ptrdiff_t ldy) {
  __m256 r[8], o[8];
  for (int i = 0; i < 8; ++i) r[i] = i < nr ? _mm256_loadu_ps(x + i * ldx) : _mm256_setzero_ps();
  transpose8(r, o);
  const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int i = 0; i < 8; ++i) _mm256_maskstore_ps(y + i * ldy, m, o[i]);
}

void transpose(ptrdiff_t rows, ptrdiff_t cols, const float* x, ptrdiff_t ldx, float* y,
               ptrdiff_t ldy) {
  const ptrdiff_t R8 = rows - rows % 8, C8 = cols - cols % 8;
  // Column strips outermost: each output row segment (8 * rows-of-tile floats) is written
  // whole before moving on, while the 8-float reads stream along the input rows.
  for (ptrdiff_t c0 = 0; c0 < C8; c0 += 8) {
    for (ptrdiff_t r0 = 0; r0 < R8; r0 += 8)
      tile8x8(x + r0 * ldx + c0, ldx, y + c0 * ldy + r0, ldy);
    if (R8 < rows) tile_rows_x8(static_cast<int>(rows - R8), x + R8 * ldx + c0, ldx, y + c0 * ldy + R8, ldy);
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
