// The one packer of f32_spmm (layout: SpmmHeader in pyrt/kernels.h). Plain C++: every
// ISA's kernels read the same bytes.
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

SpmmHeader layout(ptrdiff_t K, ptrdiff_t N, int32_t R, int64_t nnzb) {
  SpmmHeader h{};
  h.K = K;
  h.N = N;
  h.R = R;
  h.G = (N + R - 1) / R;
  h.nnzb = nnzb;
  h.idx_bytes = K <= 65536 ? 2 : 4;
  h.off_ptr = int64_t(up(sizeof(SpmmHeader)));
  h.off_idx = h.off_ptr + int64_t(up(size_t(h.G + 1) * sizeof(int64_t)));
  h.off_val = h.off_idx + int64_t(up(size_t(nnzb) * size_t(h.idx_bytes)));
  return h;
}

}  // namespace

int64_t f32_spmm_count_pairs(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, int32_t R,
                             int64_t* ptr) {
  return spmm_count_pairs(K, N, B, ldb, R, ptr);
}

size_t f32_spmm_packed_bytes(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, int32_t R) {
  const SpmmHeader h = layout(K, N, R, f32_spmm_count_pairs(K, N, B, ldb, R, nullptr));
  return size_t(h.off_val) + up(size_t(h.nnzb) * size_t(R) * sizeof(float));
}

void f32_spmm_pack(ptrdiff_t K, ptrdiff_t N, const float* B, ptrdiff_t ldb, int32_t R,
                   void* packed) {
  char* base = static_cast<char*>(packed);
  int64_t* ptr = reinterpret_cast<int64_t*>(base + up(sizeof(SpmmHeader)));
  const SpmmHeader h = layout(K, N, R, f32_spmm_count_pairs(K, N, B, ldb, R, ptr));
  std::memcpy(base, &h, sizeof h);
  uint16_t* i16 = reinterpret_cast<uint16_t*>(base + h.off_idx);
  int32_t* i32 = reinterpret_cast<int32_t*>(base + h.off_idx);
  float* val = reinterpret_cast<float*>(base + h.off_val);
  // Row by row, each group's next slot: indices come out sorted within a group.
  std::vector<int64_t> next(ptr, ptr + h.G);
  for (ptrdiff_t k = 0; k < K; ++k) {
    const float* row = B + k * ldb;
    for (ptrdiff_t g = 0; g < h.G; ++g) {
      const ptrdiff_t c0 = g * R, c1 = c0 + R < N ? c0 + R : N;
      if (!spmm_stored(row, c0, c1)) continue;
      const int64_t b = next[size_t(g)]++;
      if (h.idx_bytes == 2)
        i16[b] = static_cast<uint16_t>(k);
      else
        i32[b] = static_cast<int32_t>(k);
      for (ptrdiff_t r = 0; r < R; ++r) val[b * R + r] = c0 + r < c1 ? row[c0 + r] : 0.0f;
    }
  }
}

}  // namespace pyrt
