// Kernel-level test entry points for gemm: not written yet (skeleton).
#include "bindings.h"

namespace pyrt {
void bind_testing_gemm(pybind11::module_& testing) { (void)testing; }
}  // namespace pyrt
