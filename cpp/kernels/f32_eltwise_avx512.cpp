// f32 eltwise kernels for avx512: not written yet (skeleton).
#include "pyrt/kernels.h"

namespace pyrt {
void register_eltwise__avx512(KernelTable& t) { (void)t; }
}  // namespace pyrt
