// Kernel-level test entry points for pool: not written yet (skeleton).
#include "bindings.h"

namespace pyrt {
void bind_testing_pool(pybind11::module_& testing) { (void)testing; }
}  // namespace pyrt
