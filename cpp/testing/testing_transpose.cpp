// Kernel-level test entry point: _core.testing.transpose(x2d, isa) -> x2d.T, computed by
// the table's transpose kernel with the GIL released; optional padded output stride.
#include "../bindings/bindings.h"
#include "kern_testing_util.h"

namespace pyrt {

namespace {
using namespace kt;

py::array transpose(farray x, std::optional<std::string> isa, ptrdiff_t pad) {
  const KernelTable& t = table(isa);
  if (x.ndim() != 2) raise("ShapeError", "transpose: expected a 2-D array, got shape " + shape_str(x));
  if (pad < 0) raise("InputError", "transpose: pad must be >= 0");
  const ptrdiff_t rows = x.shape(0), cols = x.shape(1), ldy = rows + pad;
  // Padded output: the kernel writes [cols, rows] with row stride ldy; the pad columns
  // hold a sentinel the caller can check is untouched.
  farray y(std::vector<py::ssize_t>{cols, ldy});
  float* yp = y.mutable_data();
  for (ptrdiff_t i = 0; i < cols * ldy; ++i) yp[i] = -12345.0f;
  const float* xp = x.data();
  {
    py::gil_scoped_release nogil;
    t.x32_transpose.transpose(rows, cols, xp, cols, yp, ldy);
  }
  return std::move(y);
}

}  // namespace

void bind_testing_transpose(py::module_& testing) {
  testing.def("transpose", &transpose, py::arg("x"), py::arg("isa") = py::none(),
              py::arg("pad") = 0);
}

}  // namespace pyrt
