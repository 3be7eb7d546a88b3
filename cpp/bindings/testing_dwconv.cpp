// Kernel-level test entry points for dwconv: not written yet (skeleton).
#include "bindings.h"

namespace pyrt {
void bind_testing_dwconv(pybind11::module_& testing) { (void)testing; }
}  // namespace pyrt
