// f32 dwconv kernels for scalar: not written yet (skeleton).
#include "pyrt/kernels.h"

namespace pyrt {
void register_dwconv__scalar(KernelTable& t) { (void)t; }
}  // namespace pyrt
