// f32 pool kernels for avx2: not written yet (skeleton).
#include "pyrt/kernels.h"

namespace pyrt {
void register_pool__avx2(KernelTable& t) { (void)t; }
}  // namespace pyrt
