// f32 GEMM for AVX2 + FMA: a 6 x 16 register tile (12 accumulators, 2 B vectors, one
// broadcast of A). The algorithm is the shared template in f32_gemm_impl.inc; this
// file only supplies the blocking constants (three times: the second and third
// instances mirror the AVX-512 tile shapes for tests); the 8-float vector traits are
// common/gemm_vec_avx2.inc.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx2 {
namespace {

#include "../common/gemm_vec_avx2.inc"

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
