// The one packer of qc8w_spmm (layout: QSpmmHeader in pyrt/kernels.h). Plain C++: every
// ISA's kernels read the same bytes. The grouping is f32_spmm's: a group stores the
// inputs k where any of its R channels is nonzero, R int8 values each.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "pyrt/kernels.h"

namespace pyrt {
namespace {

constexpr size_t kAlign = 64;
size_t up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

#include "../common/spmm_pairs.inc"

QSpmmHeader layout(ptrdiff_t K, ptrdiff_t N, int32_t R, int64_t nnzb) {
  QSpmmHeader q{};
  SpmmHeader& h = q.s;
  h.K = K;
  h.N = N;
  h.R = R;
  h.G = (N + R - 1) / R;
  h.nnzb = nnzb;
  h.idx_bytes = K <= 65536 ? 2 : 4;
  h.off_ptr = int64_t(up(sizeof(QSpmmHeader)));
  h.off_idx = h.off_ptr + int64_t(up(size_t(h.G + 1) * sizeof(int64_t)));
  // Values are read in whole vectors of up to 16 bytes: 64 bytes of slack past the last.
  h.off_val = h.off_idx + int64_t(up(size_t(nnzb) * size_t(h.idx_bytes)));
  q.off_scale = h.off_val + int64_t(up(size_t(nnzb) * size_t(R)) + kAlign);
  return q;
}

}  // namespace

size_t qc8w_spmm_packed_bytes(ptrdiff_t K, ptrdiff_t N, const int8_t* B, ptrdiff_t ldb,
                              int32_t R) {
  const QSpmmHeader q = layout(K, N, R, spmm_count_pairs(K, N, B, ldb, R, nullptr));
  return size_t(q.off_scale) + up(size_t(q.s.G) * size_t(R) * sizeof(float));
}

void qc8w_spmm_pack(ptrdiff_t K, ptrdiff_t N, const int8_t* B, ptrdiff_t ldb, const float* scale,
                    int32_t R, void* packed) {
  char* base = static_cast<char*>(packed);
  int64_t* ptr = reinterpret_cast<int64_t*>(base + up(sizeof(QSpmmHeader)));
  const QSpmmHeader q = layout(K, N, R, spmm_count_pairs(K, N, B, ldb, R, ptr));
  const SpmmHeader& h = q.s;
  std::memcpy(base, &q, sizeof q);
  uint16_t* i16 = reinterpret_cast<uint16_t*>(base + h.off_idx);
  int32_t* i32 = reinterpret_cast<int32_t*>(base + h.off_idx);
  int8_t* val = reinterpret_cast<int8_t*>(base + h.off_val);
  std::memset(val, 0, size_t(q.off_scale - h.off_val));  // the slack reads zeros
  float* sc = reinterpret_cast<float*>(base + q.off_scale);
  for (ptrdiff_t c = 0; c < h.G * R; ++c) sc[c] = c < N ? scale[c] : 0.0f;
  std::vector<int64_t> next(ptr, ptr + h.G);
  for (ptrdiff_t k = 0; k < K; ++k) {
    const int8_t* row = B + k * ldb;
    for (ptrdiff_t g = 0; g < h.G; ++g) {
      const ptrdiff_t c0 = g * R, c1 = c0 + R < N ? c0 + R : N;
      if (!spmm_stored(row, c0, c1)) continue;
      const int64_t b = next[size_t(g)]++;
      if (h.idx_bytes == 2)
        i16[b] = static_cast<uint16_t>(k);
      else
        i32[b] = static_cast<int32_t>(k);
      for (ptrdiff_t r = 0; r < R; ++r) val[b * R + r] = c0 + r < c1 ? row[c0 + r] : int8_t(0);
    }
  }
}

}  // namespace pyrt
