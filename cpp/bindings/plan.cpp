// The compiled plan binding: not written yet (skeleton).
#include "bindings.h"

namespace pyrt {
void bind_plan(pybind11::module_& m) { (void)m; }
}  // namespace pyrt
