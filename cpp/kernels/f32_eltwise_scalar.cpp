// f32 eltwise kernels for scalar: not written yet (skeleton).
#include "pyrt/kernels.h"

namespace pyrt {
void register_eltwise__scalar(KernelTable& t) { (void)t; }
}  // namespace pyrt
