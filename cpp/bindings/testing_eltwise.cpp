// Kernel-level test entry points for eltwise: not written yet (skeleton).
#include "bindings.h"

namespace pyrt {
void bind_testing_eltwise(pybind11::module_& testing) { (void)testing; }
}  // namespace pyrt
