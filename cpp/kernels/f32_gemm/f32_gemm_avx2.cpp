// f32 GEMM for AVX2 + FMA: a 6 x 16 register tile (12 accumulators, 2 B vectors, one
// broadcast of A). The algorithm is the shared template in f32_gemm_impl.inc; this
// file only supplies the 8-float vector traits and the blocking constants (three times:
// the second and third instances mirror the AVX-512 tile shapes for tests).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace {

struct V {
  using reg = __m256;
  static constexpr int W = 8;
  static inline reg zero() { return _mm256_setzero_ps(); }
  static inline reg load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, reg x) { _mm256_storeu_ps(p, x); }
  // Lanes [0, n) set, 0 < n < 8: a window into 8 x -1 followed by 8 x 0.
  static inline __m256i mask(int n) {
    static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + 8 - n));
  }
  static inline reg load_part(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static inline void store_part(float* p, reg x, int n) { _mm256_maskstore_ps(p, mask(n), x); }
  static inline reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static inline reg set1(float x) { return _mm256_set1_ps(x); }
  static inline reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static inline reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static inline reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static inline reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
};

}  // namespace

// The kernel in the table.
namespace tile6x16 {
namespace {
constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr ptrdiff_t kKc = 256;   // a panel's 16 KiB B slice stays in L1
constexpr ptrdiff_t kMc = 96;    // 96 rows x kKc of A (96 KiB) stay in L2 across panels
                                 // (with kKc 1024, 240 rows streamed A from L3: Zen3
                                 // 54 -> 70 GFLOP/s, 1 thread)
constexpr ptrdiff_t kNc = 8;     // panels per N chunk: its C block (96 x 128) leaves A in L2
                                 // (all N at once evicted A: Zen3 1 thread 52 -> 71 GFLOP/s)
constexpr const char* kName = "f32_gemm_6x16__avx2";
#include "f32_gemm_impl.inc"
}  // namespace
}  // namespace tile6x16

// For tests only: the AVX-512 kernel's shape (12 rows, two vectors per row, the same K
// and M blocks) built from AVX2 vectors, so every template path the AVX-512 kernel
// takes (tiles of 7..12 rows included) runs on machines without AVX-512. It spills
// accumulators; it is never put in a kernel table (only in the avx2w16 test table).
namespace tile12x16 {
namespace {
constexpr int kMr = 12;
constexpr int kNr = 16;
constexpr ptrdiff_t kKc = 1024;
constexpr ptrdiff_t kMc = 96;
constexpr ptrdiff_t kNc = 8;
constexpr const char* kName = "f32_gemm_12x16__avx2";
#include "f32_gemm_impl.inc"
}  // namespace
}  // namespace tile12x16

// For tests only: the AVX-512 narrow kernel's shape (14 rows, one vector per row), the
// narrow kernel of tile12x16.
namespace tile14x8 {
namespace {
constexpr int kMr = 14;
constexpr int kNr = 8;
constexpr ptrdiff_t kKc = 1024;
constexpr ptrdiff_t kMc = 98;
constexpr ptrdiff_t kNc = 16;
constexpr const char* kName = "f32_gemm_14x8__avx2";
#include "f32_gemm_impl.inc"
}  // namespace
}  // namespace tile14x8

namespace {
constexpr GemmConfig kNarrow14x8 = tile14x8::config(nullptr);
}  // namespace
}  // namespace avx2

// 6x16 has no narrow kernel: N = 8 is the one width it half fills.
void register_f32_gemm__avx2(KernelTable& t) { t.f32_gemm = avx2::tile6x16::config(nullptr); }
void register_f32_gemm_12x16__avx2(KernelTable& t) {
  t.f32_gemm = avx2::tile12x16::config(&avx2::kNarrow14x8);
}

}  // namespace pyrt
