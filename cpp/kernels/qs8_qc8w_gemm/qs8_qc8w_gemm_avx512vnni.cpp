// qs8_qc8w_gemm for AVX512-VNNI (vpdpbusd on zmm): each int32 lane accumulates 4
// consecutive k of one column, u8 A (broadcast) times s8 weights packed [K/4][32
// columns][4 k]. An 8 x 32 tile: 16 accumulators (12 x 32 measured 0.55x of it at
// 256x1024x1024, Sapphire Rapids, 1 thread). The algorithm is
// qs8_qc8w_gemm_impl.inc.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace avx512vnni {
namespace qgemm {
namespace {

#include "qs8_traits_zmm.inc"

struct Q : QZ {
  using BT = int8_t;
  static constexpr int kCpv = 16;
  static inline I bcast_val(int32_t v) { return _mm512_set1_epi32(v); }
  static inline I bcast(const uint8_t* p) { return _mm512_set1_epi32(load32(p)); }
  // In place through asm: with the intrinsic GCC 12 copied every accumulator to another
  // register and back each k group (32 vmovdqa per 16 vpdpbusd in the 8 x 32 tile, two
  // accumulators spilled to the stack). The weights' load stays C, shared by the rows.
  static inline I dot(I acc, I a, const void* b) {
    const I w = _mm512_loadu_si512(b);
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(w));
    return acc;
  }
  static inline I fold(I x, I) { return x; }  // unused: one lane per column
};

constexpr int kMr = 8;
constexpr int kNr = 32;
constexpr ptrdiff_t kMc = 128;
constexpr int kAccBudget = 24;
constexpr const char* kName = "qs8_qc8w_gemm_8x32__avx512vnni";

#include "qs8_qc8w_gemm_impl.inc"

}  // namespace
}  // namespace qgemm
}  // namespace avx512vnni

void register_qs8_qc8w_gemm__avx512vnni(KernelTable& t) {
  t.qs8_qc8w_gemm = avx512vnni::qgemm::config();
}

}  // namespace pyrt
