// f32 dwconv kernels for avx512: not written yet (skeleton).
#include "pyrt/kernels.h"

namespace pyrt {
void register_dwconv__avx512(KernelTable& t) { (void)t; }
}  // namespace pyrt
