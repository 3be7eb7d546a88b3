// bf16w_gemm, portable scalar version: bf16 weights widened in software (exact), fp32
// accumulation; the reference and the fallback. The algorithm is
// common/w16_gemm_scalar_impl.inc, shared with the other 16-bit weight type.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "pyrt/kernels.h"

namespace pyrt {
namespace {

#include "../common/half_convert.inc"
#include "../common/scalar_act.inc"

inline uint16_t to_w16(float x) { return f32_to_bf16_rne(x); }
inline float from_w16(uint16_t h) { return bf16_to_f32(h); }
constexpr const char* kName = "bf16w_gemm_4x8__scalar";

#include "../common/w16_gemm_scalar_impl.inc"

}  // namespace

void register_bf16w_gemm__scalar(KernelTable& t) { t.bf16w_gemm = config(); }

}  // namespace pyrt
