// f32 pool kernels for avx512: not written yet (skeleton).
#include "pyrt/kernels.h"

namespace pyrt {
void register_pool__avx512(KernelTable& t) { (void)t; }
}  // namespace pyrt
