// f32 eltwise kernels for avx2: not written yet (skeleton).
#include "pyrt/kernels.h"

namespace pyrt {
void register_eltwise__avx2(KernelTable& t) { (void)t; }
}  // namespace pyrt
