// f32 GEMM for AVX-512F: a 12 x 32 register tile (24 accumulators, 2 B vectors, one
// broadcast of A), and a 14 x 16 one for narrow outputs. The algorithm is the shared
// template in f32_gemm_impl.inc (tested on AVX2); this file only supplies the blocking
// constants (the 16-float vector traits: common/gemm_vec_avx512.inc).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside _mm512_max_ps/_mm512_min_ps
// (their `__Y = __Y` undefined-vector idiom, GCC PR105593). The same template compiled
// in f32_gemm_avx2.cpp keeps the warning on for our own code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace pyrt {
namespace avx512 {
namespace {

#include "../common/gemm_vec_avx512.inc"

}  // namespace

// The kernel in the table.
namespace tile12x32 {
namespace {
// tile12x16 in f32_gemm_avx2.cpp mirrors this shape for tests: keep kMr, kKc, kMc and
// two vectors per row in step with it.
constexpr int kMr = 12;
constexpr int kNr = 32;
constexpr ptrdiff_t kKc = 1024;  // B panel of up to 128 KiB, kept in L2
constexpr ptrdiff_t kMc = 96;    // 96 rows x kKc of A (384 KiB) + the B panel fit a 1 MiB
                                 // L2 (Zen 4, Skylake-SP); 240 rows (960 KiB) overflow it.
                                 // Sapphire Rapids (2 MiB L2), 256x1024x1024, 96 vs 240:
                                 // 1.00x on 1 and on 2 threads (paired rounds)
constexpr ptrdiff_t kNc = 8;     // panels per N chunk (C block 96 x 256 beside A in L2)
constexpr const char* kName = "f32_gemm_12x32__avx512";

#include "f32_gemm_impl.inc"
}  // namespace
}  // namespace tile12x32

// Its narrow-output kernel (GemmConfig::narrow): one vector per row, so N = 16 (the
// 16-channel projection of MobileNetV2's first block) fills every lane instead of half
// a 12x32 tile. 14 rows: 14 accumulator chains hide the FMA latency; 112-pixel rows are
// 8 whole tiles. tile14x8 in f32_gemm_avx2.cpp mirrors it for tests.
namespace tile14x16 {
namespace {
constexpr int kMr = 14;
constexpr int kNr = 16;
constexpr ptrdiff_t kKc = 1024;
constexpr ptrdiff_t kMc = 98;
constexpr ptrdiff_t kNc = 16;  // the same 256 columns per N chunk as the wide kernel
constexpr const char* kName = "f32_gemm_14x16__avx512";

#include "f32_gemm_impl.inc"
}  // namespace
}  // namespace tile14x16

namespace {
constexpr GemmConfig kNarrow = tile14x16::config(nullptr);
}  // namespace
}  // namespace avx512

void register_f32_gemm__avx512(KernelTable& t) {
  t.f32_gemm = avx512::tile12x32::config(&avx512::kNarrow);
}

}  // namespace pyrt
