// f32 gemm kernels for scalar: not written yet (skeleton).
#include "pyrt/kernels.h"

namespace pyrt {
void register_gemm__scalar(KernelTable& t) { (void)t; }
}  // namespace pyrt
