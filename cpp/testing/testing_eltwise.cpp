// Kernel-level test entry points for elementwise ops: _core.testing.add / activation /
// epilogue / softmax.
#include "../bindings/bindings.h"
#include "kern_testing_util.h"

#include <cstring>
#include <vector>

namespace pyrt {

namespace {
using namespace kt;

const EltwiseConfig& eltwise_of(const std::optional<std::string>& isa) {
  const KernelTable& t = table(isa);
  if (!t.f32_eltwise.add) raise("UnsupportedOpError", std::string("no eltwise kernel for ISA ") + t.isa_name);
  return t.f32_eltwise;
}

// y[i] = a[i*sa] + b[i*sb]; an operand with stride 0 must hold exactly one element.
py::array add(farray a, farray b, ptrdiff_t sa, ptrdiff_t sb, std::optional<std::string> isa,
              std::optional<ptrdiff_t> n_opt) {
  const EltwiseConfig& k = eltwise_of(isa);
  if ((sa != 0 && sa != 1) || (sb != 0 && sb != 1))
    raise("InputError", "add: sa and sb must be 0 (broadcast) or 1, got " + std::to_string(sa) +
                            " and " + std::to_string(sb));
  ptrdiff_t n = sa ? a.size() : sb ? b.size() : n_opt.value_or(1);
  if (n_opt && *n_opt != n) raise("ShapeError", "add: n disagrees with the operand sizes");
  if (n < 0) raise("InputError", "add: n must be >= 0");
  for (auto [arr, st, nm] : {std::tuple<farray*, ptrdiff_t, const char*>{&a, sa, "a"},
                             {&b, sb, "b"}}) {
    const ptrdiff_t want = st ? n : 1;
    if (arr->size() != want)
      raise("ShapeError", std::string("add: ") + nm + " must hold " + std::to_string(want) +
                              " element(s), got shape " + shape_str(*arr));
  }
  farray y(std::vector<py::ssize_t>{n});
  const float *ap = a.data(), *bp = b.data();
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    k.add(n, ap, sa, bp, sb, yp);
  }
  return std::move(y);
}

py::array activation(farray x, const std::string& act_name, float lo, float hi,
                     std::optional<std::string> isa, bool inplace) {
  const EltwiseConfig& k = eltwise_of(isa);
  const Act act = parse_act(act_name);
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  farray y(shape);
  const ptrdiff_t n = x.size();
  const float* xp = x.data();
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    if (inplace) {
      std::memcpy(yp, xp, sizeof(float) * n);
      k.activation(n, yp, yp, act, lo, hi);
    } else {
      k.activation(n, xp, yp, act, lo, hi);
    }
  }
  return std::move(y);
}

// Runs the kernel on padded copies (row stride cols + ld_pad for y, cols + ld_pad + 1 for
// the residual) so strides other than cols are exercised.
py::array epilogue(farray y2d, std::optional<farray> bias, std::optional<farray> residual,
                   const std::string& act_name, float lo, float hi, bool residual_after_act,
                   std::optional<std::string> isa, ptrdiff_t ld_pad) {
  const EltwiseConfig& k = eltwise_of(isa);
  const Act act = parse_act(act_name);
  if (y2d.ndim() != 2) raise("ShapeError", "epilogue: y must be 2-D, got shape " + shape_str(y2d));
  if (ld_pad < 0) raise("InputError", "epilogue: ld_pad must be >= 0");
  const ptrdiff_t rows = y2d.shape(0), cols = y2d.shape(1);
  if (bias && (bias->ndim() != 1 || bias->shape(0) != cols))
    raise("ShapeError", "epilogue: bias must be (cols=" + std::to_string(cols) + ",), got " +
                            shape_str(*bias));
  if (residual && (residual->ndim() != 2 || residual->shape(0) != rows ||
                   residual->shape(1) != cols))
    raise("ShapeError", "epilogue: residual must have y's shape " + shape_str(y2d) + ", got " +
                            shape_str(*residual));
  const ptrdiff_t ld = cols + ld_pad, ldr = cols + ld_pad + 1;
  std::vector<float> ybuf(rows * ld + 1, 12345.0f), rbuf;
  const float* src = y2d.data();
  for (ptrdiff_t r = 0; r < rows; ++r) std::memcpy(&ybuf[r * ld], src + r * cols, 4 * cols);
  if (residual) {
    rbuf.assign(rows * ldr + 1, 0.0f);
    for (ptrdiff_t r = 0; r < rows; ++r)
      std::memcpy(&rbuf[r * ldr], residual->data() + r * cols, 4 * cols);
  }
  Epilogue ep{};
  ep.bias = bias ? bias->data() : nullptr;
  ep.residual = residual ? rbuf.data() : nullptr;
  ep.ldr = ldr;
  ep.act = act;
  ep.lo = lo;
  ep.hi = hi;
  ep.residual_after_act = residual_after_act ? 1 : 0;
  {
    py::gil_scoped_release nogil;
    k.epilogue(rows, cols, ybuf.data(), ld, &ep);
  }
  for (ptrdiff_t r = 0; r < rows; ++r)
    for (ptrdiff_t c = cols; c < ld; ++c)
      if (ybuf[r * ld + c] != 12345.0f)
        throw std::runtime_error("epilogue kernel wrote outside its rows x cols block");
  farray y({rows, cols});
  float* yp = y.mutable_data();
  for (ptrdiff_t r = 0; r < rows; ++r) std::memcpy(yp + r * cols, &ybuf[r * ld], 4 * cols);
  return std::move(y);
}

py::array softmax(farray x, std::optional<std::string> isa, bool inplace) {
  const EltwiseConfig& k = eltwise_of(isa);
  if (x.ndim() != 2) raise("ShapeError", "softmax: x must be 2-D (rows, cols), got shape " + shape_str(x));
  const ptrdiff_t rows = x.shape(0), cols = x.shape(1);
  farray y({rows, cols});
  const float* xp = x.data();
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    if (inplace) {
      std::memcpy(yp, xp, sizeof(float) * rows * cols);
      k.softmax(rows, cols, yp, yp);
    } else {
      k.softmax(rows, cols, xp, yp);
    }
  }
  return std::move(y);
}

}  // namespace

void bind_testing_eltwise(py::module_& testing) {
  const float inf = std::numeric_limits<float>::infinity();
  testing.def("add", &add, py::arg("a"), py::arg("b"), py::arg("sa") = 1, py::arg("sb") = 1,
              py::arg("isa") = py::none(), py::arg("n") = py::none(),
              "y[i] = a[i*sa] + b[i*sb] (flat); a stride-0 operand holds one element.");
  testing.def("activation", &activation, py::arg("x"), py::arg("act"), py::arg("lo") = -inf,
              py::arg("hi") = inf, py::arg("isa") = py::none(), py::arg("inplace") = false,
              "Elementwise activation of any-shaped x.");
  testing.def("epilogue", &epilogue, py::arg("y"), py::arg("bias") = py::none(),
              py::arg("residual") = py::none(), py::arg("act") = "none", py::arg("lo") = -inf,
              py::arg("hi") = inf, py::arg("residual_after_act") = false,
              py::arg("isa") = py::none(), py::arg("ld_pad") = 0,
              "Applies an Epilogue (bias -> residual -> act -> residual) to a 2-D block.");
  testing.def("softmax", &softmax, py::arg("x"), py::arg("isa") = py::none(),
              py::arg("inplace") = false, "Softmax over the last axis of a 2-D array.");
}

}  // namespace pyrt
