// f32 pool kernels for scalar: not written yet (skeleton).
#include "pyrt/kernels.h"

namespace pyrt {
void register_pool__scalar(KernelTable& t) { (void)t; }
}  // namespace pyrt
